# Rendered by ccp 0.1.0 for cluster lab. `ccp render` rewrites this file.

provider "vsphere" {
  vsphere_server       = var.vsphere.server
  user                 = var.vsphere.user
  password             = var.vsphere_password
  allow_unverified_ssl = var.vsphere.insecure
}

data "vsphere_datacenter" "dc" {
  name = var.vsphere.datacenter
}

data "vsphere_compute_cluster" "cluster" {
  name          = var.vsphere.cluster
  datacenter_id = data.vsphere_datacenter.dc.id
}

data "vsphere_resource_pool" "pool" {
  count         = var.vsphere.resource_pool == "" ? 0 : 1
  name          = var.vsphere.resource_pool
  datacenter_id = data.vsphere_datacenter.dc.id
}

data "vsphere_datastore" "datastore" {
  name          = var.vsphere.datastore
  datacenter_id = data.vsphere_datacenter.dc.id
}

data "vsphere_network" "network" {
  name          = var.vsphere.network
  datacenter_id = data.vsphere_datacenter.dc.id
}

data "vsphere_virtual_machine" "template" {
  name          = var.vsphere.template
  datacenter_id = data.vsphere_datacenter.dc.id
}

locals {
  resource_pool_id = var.vsphere.resource_pool == "" ? data.vsphere_compute_cluster.cluster.resource_pool_id : data.vsphere_resource_pool.pool[0].id
  cloud_init_dir   = "${path.module}/../cloud-init"
}

resource "vsphere_virtual_machine" "node" {
  for_each = var.nodes

  name             = each.key
  folder           = var.vsphere.folder
  resource_pool_id = local.resource_pool_id
  datastore_id     = data.vsphere_datastore.datastore.id
  num_cpus         = each.value.cpus
  memory           = each.value.memory
  guest_id         = data.vsphere_virtual_machine.template.guest_id
  firmware         = data.vsphere_virtual_machine.template.firmware
  scsi_type        = data.vsphere_virtual_machine.template.scsi_type
  annotation       = "managed-by=ccp cluster=${var.cluster_name} role=${each.value.role}"

  # vSphere CSI identifies disks by UUID.
  enable_disk_uuid = true

  network_interface {
    network_id   = data.vsphere_network.network.id
    adapter_type = data.vsphere_virtual_machine.template.network_interface_types[0]
  }

  disk {
    label            = "disk0"
    size             = max(each.value.disk_gib, data.vsphere_virtual_machine.template.disks[0].size)
    thin_provisioned = data.vsphere_virtual_machine.template.disks[0].thin_provisioned
  }

  clone {
    template_uuid = data.vsphere_virtual_machine.template.id
  }

  # cloud-init's VMware datasource reads the guestinfo.metadata/userdata keys (the network config is
  # inside the metadata). guestinfo.ccp.* mark the VM as this cluster's: ccp never touches a VM without it.
  extra_config = {
    "guestinfo.ccp.cluster"       = var.cluster_name
    "guestinfo.ccp.role"          = each.value.role
    "guestinfo.metadata"          = filebase64("${local.cloud_init_dir}/${each.key}/meta-data")
    "guestinfo.metadata.encoding" = "base64"
    "guestinfo.userdata"          = filebase64("${local.cloud_init_dir}/${each.key}/user-data")
    "guestinfo.userdata.encoding" = "base64"
  }

  wait_for_guest_net_timeout = 10

  lifecycle {
    # cloud-init runs once; a changed user-data must not replace a running node.
    ignore_changes = [extra_config, clone]
  }
}

# Keep control planes (etcd members) and load balancers on different ESXi hosts.
resource "vsphere_compute_cluster_vm_anti_affinity_rule" "spread" {
  for_each = {
    for role in ["control-plane", "loadbalancer"] : role => [
      for name, node in var.nodes : vsphere_virtual_machine.node[name].id if node.role == role
    ] if length([for node in values(var.nodes) : node if node.role == role]) > 1
  }

  name                = "${var.cluster_name}-${each.key}-anti-affinity"
  compute_cluster_id  = data.vsphere_compute_cluster.cluster.id
  virtual_machine_ids = each.value
}
