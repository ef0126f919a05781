"""What ccp knows about one cluster, below the phases: the facts phases, backup, upgrade and diagnose
all read (facts.py: roles, the API endpoint, the kubeconfig, the nodes gone from the config, the
control plane ccp acts through, the Kubernetes clients of a run) and the helpers the host phases
share (hostwork.py). Read through the run's ClusterContext; nothing here imports a phase."""
