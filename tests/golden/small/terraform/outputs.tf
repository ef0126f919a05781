# Rendered by ccp 0.1.0 for cluster lab.

output "nodes" {
  description = "Per VM: its role, the static address ccp assigned, and what vSphere reports."
  value = {
    for name, vm in vsphere_virtual_machine.node : name => {
      role          = var.nodes[name].role
      address       = var.nodes[name].address
      uuid          = vm.uuid
      moid          = vm.moid
      guest_address = vm.default_ip_address
    }
  }
}
