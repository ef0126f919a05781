"""The offline bundle: what an air-gapped install needs, assembled from local files and verified
against cluster.yaml before the install starts."""
