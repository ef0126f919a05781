"""The generic phase engine: it knows nothing about Kubernetes or vSphere."""
