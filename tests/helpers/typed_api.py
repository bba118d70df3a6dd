"""The Kubernetes client's typed API on a Kube's connection, for tests that attack or inspect
the cluster in ways labctl itself never does (a watch as a learner, a dry-run create, a raw
TokenRequest, impersonation). labctl's own code goes through :class:`labctl.kube.Kube` only."""

from __future__ import annotations

from kubernetes import client as k8s_client

from labctl.kube import Kube


def api_client(kube: Kube) -> k8s_client.ApiClient:
    """A fresh ApiClient with ``kube``'s server and credentials (its headers are the test's own)."""
    return k8s_client.ApiClient(kube.configuration)


def core_api(kube: Kube) -> k8s_client.CoreV1Api:
    return k8s_client.CoreV1Api(api_client(kube))
