"""Talking to machines: SSH to the nodes (ssh.py) and the Kubernetes API (kube.py)."""
