"""cluster.yaml: the typed model (model.py), the loader with file:line:col errors (load.py),
and the bill of materials per supported Kubernetes version (versions.py, bom.yaml)."""
