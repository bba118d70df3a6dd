"""Port-forward streams never borrow the ApiClient other threads use.

kubernetes.stream swaps ``api_client.call_api`` for a websocket call while a stream opens; a list
from another thread through the same client then fails ("Missing required parameter `ports`",
seen in e2e when `labctl grade --reach port-forward` recorded attempts during a forward).
"""

from __future__ import annotations

from typing import Any

import kubernetes.stream
import pytest
from kubernetes import client as k8s_client

from labctl.kube import Kube


def test_each_stream_has_a_client_of_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    configuration = k8s_client.Configuration()
    configuration.host = "https://127.0.0.1:6443"
    kube = Kube(k8s_client.ApiClient(configuration))
    used: list[k8s_client.ApiClient] = []

    def portforward(api_method: Any, name: str, namespace: str, **kwargs: Any) -> str:
        used.append(api_method.__self__.api_client)
        assert (name, namespace, kwargs) == ("mlflow-0", "c1-ada", {"ports": "5000"})
        return "stream"

    monkeypatch.setattr(kubernetes.stream, "portforward", portforward)
    assert kube.port_forward("c1-ada", "mlflow-0", 5000) == "stream"
    assert kube.port_forward("c1-ada", "mlflow-0", 5000) == "stream"
    assert all(client is not kube._api_client for client in used)
    assert used[0] is not used[1]
    assert all(client.configuration is configuration for client in used)  # same cluster and credentials
