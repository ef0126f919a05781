# Rendered by ccp 0.1.0 for cluster demo. `ccp render` rewrites this file.
terraform {
  required_version = ">= 1.5.0"

  # ccp passes the state path at init: -backend-config=path=<state>/terraform/terraform.tfstate
  backend "local" {}

  required_providers {
    vsphere = {
      source  = "vmware/vsphere"
      version = "~> 2.10"
    }
  }
}
