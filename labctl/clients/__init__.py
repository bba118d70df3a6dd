"""Clients of the services labctl talks to over HTTP besides the Kubernetes API (which is
:mod:`labctl.kube`'s): one module per service, each the only one that speaks its API, each
retrying by :mod:`labctl.core.retry`'s policy. Beside ``labctl.kube`` in the layers: it imports
only :mod:`labctl.core`."""
