"""labctl: orchestrate hands-on MLOps labs on Kubernetes."""

__version__ = "0.1.0"
