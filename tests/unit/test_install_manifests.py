"""The checked-in install manifests are exactly what `labctl install` applies."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from labctl.cli.install import _node_selector
from labctl.core.errors import UsageError
from labctl.provision.install import render_controller

ROOT = Path(__file__).resolve().parents[2]


def test_install_manifests_are_up_to_date() -> None:
    spec = importlib.util.spec_from_file_location(
        "gen_install_manifests", ROOT / "hack" / "gen-install-manifests.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    files = module.render_files()
    assert {
        "crds/cohorts.yaml",
        "crds/learners.yaml",
        "crds/gradeattempts.yaml",
        "controller/controller.yaml",
    } <= set(files)
    stale = [
        p
        for p, text in files.items()
        if not (ROOT / "manifests" / p).exists() or (ROOT / "manifests" / p).read_text() != text
    ]
    assert not stale, f"run hack/gen-install-manifests.py: {', '.join(stale)} out of date"


def test_the_controller_pod_goes_where_the_node_selector_says() -> None:
    selector = {"labctl.dev/real-node": "lab"}
    (deployment,) = [o for o in render_controller(node_selector=selector) if o["kind"] == "Deployment"]
    assert deployment["spec"]["template"]["spec"]["nodeSelector"] == selector
    (default,) = [o for o in render_controller() if o["kind"] == "Deployment"]
    assert "nodeSelector" not in default["spec"]["template"]["spec"]


def test_the_controller_is_probed_bounded_and_reachable_only_for_its_metrics() -> None:
    objects = render_controller()
    (deployment,) = [o for o in objects if o["kind"] == "Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    # Ready when its Service's port answers; alive while kopf's loop is: a busy controller stays.
    assert container["readinessProbe"]["httpGet"] == {"path": "/metrics", "port": "metrics"}
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    resources = container["resources"]
    assert resources["requests"]["ephemeral-storage"] == "32Mi"
    tmp = next(v for v in pod["volumes"] if v["name"] == "tmp")["emptyDir"]["sizeLimit"]
    assert (tmp, resources["limits"]["ephemeral-storage"]) == ("64Mi", "128Mi")  # /tmp + its logs
    assert container["securityContext"]["runAsGroup"] == container["securityContext"]["runAsUser"]
    policies = {o["metadata"]["name"]: o for o in objects if o["kind"] == "NetworkPolicy"}
    assert set(policies) == {"labctl-controller-ingress", "labctl-controller-egress"}
    for each in policies.values():
        assert each["spec"]["podSelector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    policy = policies["labctl-controller-ingress"]
    assert policy["spec"]["ingress"] == [
        {"from": [{"namespaceSelector": {"matchLabels": {"labctl.dev/monitoring": "true"}}}],
         "ports": [{"port": "metrics"}]}
    ]  # fmt: skip
    # Out: any pod and any address but link-local and cloud metadata (the node's credentials).
    (rule,) = policies["labctl-controller-egress"]["spec"]["egress"]
    v4 = next(p["ipBlock"] for p in rule["to"] if p.get("ipBlock", {}).get("cidr") == "0.0.0.0/0")
    assert {"169.254.0.0/16", "100.100.100.200/32"} <= set(v4["except"])


@pytest.mark.parametrize(
    ("flags", "problem"),
    [
        (("pool",), "--node-selector 'pool': expected LABEL=VALUE"),
        (("bad key=x",), "--node-selector: 'bad key' is not a label key"),
        (("pool=-x",), "--node-selector: pool: '-x' is not a label value"),
    ],
)
def test_bad_node_selector_flags_are_named(flags: tuple[str, ...], problem: str) -> None:
    with pytest.raises(UsageError) as bad:
        _node_selector(flags)
    assert str(bad.value).startswith(problem)
    assert _node_selector(("b=2", "a=1")) == {"a": "1", "b": "2"}
