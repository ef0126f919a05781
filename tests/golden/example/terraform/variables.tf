# Rendered by ccp 0.1.0 for cluster demo.
# Values come from terraform.tfvars.json beside this file, except the password: ccp passes it
# as the environment variable TF_VAR_vsphere_password and never writes it to disk.

variable "vsphere_password" {
  description = "vCenter password (from the environment: TF_VAR_vsphere_password)."
  type        = string
  sensitive   = true
}

variable "vsphere" {
  description = "Where the cluster's VMs go."
  type = object({
    server        = string
    user          = string
    insecure      = bool
    datacenter    = string
    cluster       = string
    resource_pool = string
    datastore     = string
    network       = string
    folder        = string
    template      = string
  })
}

variable "cluster_name" {
  type = string
}

variable "nodes" {
  description = "One entry per VM, keyed by VM name."
  type = map(object({
    role     = string
    address  = string
    cpus     = number
    memory   = number
    disk_gib = number
  }))
}
