"""Short-lived kubeconfigs for learners: a TokenRequest for their ServiceAccount."""

from __future__ import annotations

import base64
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

from labctl.core.errors import LabctlError
from labctl.kube import Kube, ObjectRef
from labctl.provision.tenancy import LEARNER_SA


def request_token(
    kube: Kube, namespace: str, *, duration: timedelta, service_account: str = LEARNER_SA
) -> str:
    """A bound token for the ServiceAccount, valid for ``duration`` (the server may shorten it)."""
    request = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {"audiences": [], "expirationSeconds": int(duration.total_seconds())},
    }
    account = ObjectRef("v1", "ServiceAccount", service_account, namespace)
    token = kube.create(request, of=account, subresource="token").get("status", {}).get("token")
    if not token:
        raise LabctlError(f"the API server returned no token for {account}")
    return str(token)


def render_kubeconfig(kube: Kube, *, namespace: str, token: str, cluster_name: str) -> dict[str, Any]:
    """A kubeconfig whose only context is the learner's namespace on this cluster."""
    conf = kube.configuration
    cluster: dict[str, Any] = {"server": conf.host}
    if conf.ssl_ca_cert:
        cluster["certificate-authority-data"] = base64.b64encode(Path(conf.ssl_ca_cert).read_bytes()).decode()
    elif not conf.verify_ssl:
        cluster["insecure-skip-tls-verify"] = True
    user = f"{namespace}-learner"
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster_name, "cluster": cluster}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [
            {"name": namespace, "context": {"cluster": cluster_name, "user": user, "namespace": namespace}}
        ],
        "current-context": namespace,
    }


def learner_kubeconfig(
    kube: Kube, namespace: str, *, duration: timedelta, cluster_name: str = "labctl"
) -> str:
    token = request_token(kube, namespace, duration=duration)
    return yaml.safe_dump(
        render_kubeconfig(kube, namespace=namespace, token=token, cluster_name=cluster_name), sort_keys=False
    )
