"""Where the machines come from: vSphere through Terraform or pyvmomi, or existing hosts."""
