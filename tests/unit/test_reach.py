"""Which URLs graders port-forward, and to which pod and port (pure logic; e2e does it for real)."""

from __future__ import annotations

from typing import Any

import pytest

from graders.core import NoRoute, as_is
from labctl.grading import reach
from labctl.grading.reach import PortForwards, reaching, service_of, target

SERVICE = {
    "metadata": {"name": "model", "namespace": "c1-ada"},
    "spec": {"ports": [{"name": "http", "port": 80, "targetPort": "web"}, {"name": "metrics", "port": 9100}]},
}


def endpoint_slice(pods: list[tuple[str, bool | None]], ports: list[tuple[str, int]]) -> dict[str, Any]:
    return {
        "endpoints": [
            {
                "targetRef": {"kind": "Pod", "name": name},
                "conditions": {} if ready is None else {"ready": ready},
            }
            for name, ready in pods
        ],
        "ports": [{"name": name, "port": port} for name, port in ports],
    }


@pytest.mark.parametrize(
    ("url", "found"),
    [
        ("http://mlflow.c1-ada.svc:5000/api", ("c1-ada", "mlflow", 5000)),
        ("http://model.c1-ada.svc.cluster.local/v1", ("c1-ada", "model", 80)),
        ("https://model.c1-ada.svc.cluster.local./", ("c1-ada", "model", 443)),
        ("http://127.0.0.1:8080", None),
        ("http://model.example.com:80", None),
        ("http://model.c1-ada.svc.other.domain", None),
    ],
)
def test_only_cluster_dns_names_of_services_are_forwarded(url: str, found: tuple | None) -> None:
    got = service_of(url)
    assert (got[:3] if got else None) == found


def test_the_target_is_a_ready_pod_and_the_port_of_the_same_name() -> None:
    slices = [
        endpoint_slice([("old", False)], [("http", 8080)]),
        endpoint_slice([("new", True), ("newer", None)], [("http", 8080), ("metrics", 9100)]),
    ]
    assert target(SERVICE, slices, 80) == ("new", 8080)
    assert target(SERVICE, slices, 9100) == ("new", 9100)


@pytest.mark.parametrize(
    ("slices", "port", "problem"),
    [
        ([], 80, "Service c1-ada/model has no ready pod behind port 80"),
        ([endpoint_slice([("old", False)], [("http", 8080)])], 80, "has no ready pod behind port 80"),
        ([endpoint_slice([("p", True)], [("metrics", 9100)])], 80, "has no ready pod behind port 80"),
        ([], 8080, r"does not expose port 8080 \(it exposes 80, 9100\)"),
    ],
)
def test_no_target_is_no_route(slices: list[dict[str, Any]], port: int, problem: str) -> None:
    with pytest.raises(NoRoute, match=problem):
        target(SERVICE, slices, port)


def test_other_urls_pass_unchanged_without_touching_the_cluster() -> None:
    forwards = PortForwards(kube=None)  # type: ignore[arg-type]  # never used for these URLs
    assert forwards("http://127.0.0.1:8080/x?y=1") == "http://127.0.0.1:8080/x?y=1"
    assert forwards("s3://bucket/key") == "s3://bucket/key"


def test_modes(monkeypatch: pytest.MonkeyPatch) -> None:
    kube: Any = object()
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with reaching(kube, "auto") as outside:
        assert isinstance(outside, PortForwards)
    with reaching(kube, "cluster-dns") as dns, reaching(None, "port-forward") as no_cluster:
        assert dns is as_is and no_cluster is as_is
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    assert reach.in_cluster()
    with reaching(kube, "auto") as inside, reaching(kube, "port-forward") as forced:
        assert inside is as_is and isinstance(forced, PortForwards)
