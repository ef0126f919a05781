"""ccp: a turnkey Kubernetes platform installer for vSphere."""

__version__ = "0.1.0"
