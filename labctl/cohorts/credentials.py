"""Short-lived kubeconfigs for learners: a TokenRequest for their ServiceAccount."""

from __future__ import annotations

import base64
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client as k8s_client

from labctl.core.errors import LabctlError
from labctl.kube import Kube, with_retries
from labctl.provision.tenancy import LEARNER_SA


def request_token(
    kube: Kube, namespace: str, *, duration: timedelta, service_account: str = LEARNER_SA
) -> str:
    """A bound token for the ServiceAccount, valid for ``duration`` (the server may shorten it)."""
    body = k8s_client.AuthenticationV1TokenRequest(
        spec=k8s_client.V1TokenRequestSpec(audiences=[], expiration_seconds=int(duration.total_seconds()))
    )
    result = with_retries(
        lambda: kube.core().create_namespaced_service_account_token(service_account, namespace, body),
        what=f"create token for ServiceAccount {namespace}/{service_account}",
    )
    if result.status is None or not result.status.token:
        raise LabctlError(
            f"the API server returned no token for ServiceAccount {namespace}/{service_account}"
        )
    return str(result.status.token)


def render_kubeconfig(kube: Kube, *, namespace: str, token: str, cluster_name: str) -> dict[str, Any]:
    """A kubeconfig whose only context is the learner's namespace on this cluster."""
    conf = kube.api_client.configuration
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
