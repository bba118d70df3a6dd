"""The per-learner stacks, rendered with no cluster: labels, determinism, Pod Security, settings."""

from __future__ import annotations

import base64
import importlib.util
import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from labctl.core.labels import MANAGED_BY
from labctl.provision.install import controller_rules
from labctl.provision.learner import render_learner_objects
from labctl.provision.quota import PROFILES
from labctl.provision.stacks import (
    STACK_COMPONENTS,
    ObjectStoreCredentials,
    StackSettings,
    enabled_components,
    mlflow_server,
    render_stacks,
    stack_readiness,
)
from labctl.provision.stacks.settings import parse_quantity, resources
from labctl.provision.tenancy import learner_labels

ROOT = Path(__file__).resolve().parents[2]
NS = "c1-ada-0a1b2c"
LABELS = learner_labels("c1", NS)
CREDS = ObjectStoreCredentials(access_key="labAKIA0123456789", secret_key="s3cr3t-s3cr3t-s3cr3t")
RESTRICTED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim"}
RESTRICTED_VOLUMES |= {"projected", "secret"}


def render(**settings: Any) -> list[dict[str, Any]]:
    return render_stacks(NS, LABELS, CREDS, StackSettings(**settings))


def of_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def pod_specs(objects: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, dep in of_kind(objects, "Deployment").items():
        yield name, dep["spec"]["template"]["spec"]


def all_containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [*spec.get("initContainers", []), *spec["containers"]]


def restricted_violations(spec: dict[str, Any]) -> list[str]:
    """The Pod Security ``restricted`` rules that can be checked on a pod spec alone."""
    problems = [f"{key}: true" for key in ("hostNetwork", "hostPID", "hostIPC") if spec.get(key)]
    problems += [
        f"volume {v['name']} is {sorted(set(v) - {'name'})}"
        for v in spec.get("volumes", [])
        if not set(v) - {"name"} <= RESTRICTED_VOLUMES
    ]
    pod_sc = spec.get("securityContext", {})
    if pod_sc.get("runAsUser") == 0:
        problems.append("pod runs as uid 0")
    for c in all_containers(spec):
        sc, where = c.get("securityContext", {}), f"container {c['name']}"
        if sc.get("privileged"):
            problems.append(f"{where} is privileged")
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{where} may escalate privileges")
        if "ALL" not in sc.get("capabilities", {}).get("drop", []):
            problems.append(f"{where} does not drop ALL capabilities")
        if set(sc.get("capabilities", {}).get("add", [])) - {"NET_BIND_SERVICE"}:
            problems.append(f"{where} adds capabilities")
        if not (sc.get("runAsNonRoot") or pod_sc.get("runAsNonRoot")):
            problems.append(f"{where} may run as root")
        if sc.get("runAsUser") == 0:
            problems.append(f"{where} runs as uid 0")
        seccomp = (sc.get("seccompProfile") or pod_sc.get("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            problems.append(f"{where} has seccomp profile {seccomp}")
        if any("hostPort" in p for p in c.get("ports", [])):
            problems.append(f"{where} uses a hostPort")
    return problems


# -- labels and determinism ----------------------------------------------------------------


def test_every_object_carries_the_learner_labels_and_its_component() -> None:
    objects = render()
    assert {o["metadata"]["labels"]["labctl.dev/stack"] for o in objects} == set(STACK_COMPONENTS)
    for obj in objects:
        labels = obj["metadata"]["labels"]
        assert labels.items() >= LABELS.items(), obj["metadata"]["name"]
        assert labels["app.kubernetes.io/managed-by"] == "labctl"
        assert labels["app.kubernetes.io/name"] and labels["app.kubernetes.io/component"]
        assert obj["metadata"]["namespace"] == NS
    for _, dep in of_kind(objects, "Deployment").items():
        assert dep["spec"]["template"]["metadata"]["labels"] == dep["metadata"]["labels"]


def test_rendering_is_deterministic_and_shares_no_sub_objects() -> None:
    first = json.dumps(render(), sort_keys=False)
    again = render_stacks(
        NS, dict(LABELS), ObjectStoreCredentials(CREDS.access_key, CREDS.secret_key), StackSettings()
    )
    assert json.dumps(again, sort_keys=False) == first
    # A sub-dict shared between objects would be changed through both, and YAML shows it as &id.
    assert "&id" not in yaml.safe_dump_all(render())
    assert render_stacks(NS, LABELS, ObjectStoreCredentials("other", "key"), StackSettings()) != render()


def test_learner_objects_include_the_stacks() -> None:
    learner = {
        "metadata": {"name": NS},
        "spec": {"cohort": "c1", "email": "ada@uni.edu", "level": "foundation"},
    }
    objects = render_learner_objects(learner, key=b"k")
    deployments = of_kind(objects, "Deployment")
    assert set(deployments) == set(STACK_COMPONENTS)
    assert all(o["metadata"]["labels"].items() >= MANAGED_BY.items() for o in objects)


# -- Pod Security, resources, probes, tokens -----------------------------------------------


def test_every_pod_passes_pod_security_restricted() -> None:
    for name, spec in pod_specs(render()):
        assert restricted_violations(spec) == [], name


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda s: s["containers"][0]["securityContext"].update(privileged=True), "is privileged"),
        (lambda s: s["volumes"].append({"name": "h", "hostPath": {"path": "/"}}), "hostPath"),
        (lambda s: s.update(hostNetwork=True), "hostNetwork"),
        (lambda s: s["securityContext"].update(runAsUser=0), "uid 0"),
        (lambda s: s["containers"][0]["securityContext"].pop("allowPrivilegeEscalation"), "escalate"),
        (lambda s: s["containers"][0]["securityContext"]["capabilities"].update(add=["SYS_ADMIN"]), "adds"),
        (
            lambda s: (
                [c["securityContext"].pop("seccompProfile") for c in s["containers"]]
                and s["securityContext"].pop("seccompProfile")
            ),
            "seccomp",
        ),
    ],
)
def test_the_restricted_checker_catches_violations(change: Any, problem: str) -> None:
    spec = dict(pod_specs(render()))["alertmanager"]
    change(spec)
    assert any(problem in p for p in restricted_violations(spec))


def test_every_container_has_requests_limits_and_every_server_probes() -> None:
    for name, spec in pod_specs(render()):
        for c in all_containers(spec):
            for kind in ("requests", "limits"):
                # ephemeral-storage too: the learner's quota counts it (the node's disk is shared)
                assert set(c["resources"][kind]) == {"cpu", "memory", "ephemeral-storage"}, (name, c["name"])
            for resource, request in c["resources"]["requests"].items():
                assert parse_quantity(request) <= parse_quantity(c["resources"]["limits"][resource])
            assert c["imagePullPolicy"] == "IfNotPresent"  # locally loaded images, air-gapped registries
        for c in spec["containers"]:
            assert "readinessProbe" in c and "livenessProbe" in c, (name, c["name"])


def probe_check(probe: dict[str, Any]) -> tuple[str, Any]:
    """What a probe asks (as kube-score compares them: an HTTP path and port, a TCP port, a command)."""
    (kind,) = set(probe) & {"httpGet", "tcpSocket", "exec", "grpc"}
    return kind, probe[kind]


def test_liveness_and_readiness_differ_so_a_busy_server_is_not_restarted() -> None:
    """kube-score's "same readiness and liveness probe": a liveness that asks what readiness asks
    restarts a server that is merely busy. Liveness asks something cheaper (or only whether the
    port accepts), less often, waits longer and tolerates more misses."""
    for name, spec in pod_specs(render()):
        for c in spec["containers"]:
            ready, live = c["readinessProbe"], c["livenessProbe"]
            assert probe_check(ready) != probe_check(live), (name, c["name"])
            assert live["periodSeconds"] > ready["periodSeconds"], (name, c["name"])
            assert live["failureThreshold"] > ready["failureThreshold"], (name, c["name"])
            assert live["timeoutSeconds"] > ready["timeoutSeconds"], (name, c["name"])
            # a restart only after minutes of silence: a busy server answers late, not never
            assert live["periodSeconds"] * live["failureThreshold"] >= 120, (name, c["name"])
            assert ready["periodSeconds"] <= 10, (name, c["name"])  # back in the Service soon
    checks = {
        c["name"]: probe_check(c["livenessProbe"]) for _, s in pod_specs(render()) for c in s["containers"]
    }
    assert checks == {
        "mlflow": ("httpGet", {"path": "/health", "port": "http"}),
        "versitygw": ("tcpSocket", {"port": "s3"}),  # no second health path: does it still accept
        "prometheus": ("httpGet", {"path": "/-/healthy", "port": "http"}),
        "config-reloader": ("tcpSocket", {"port": "reloader"}),
        "alertmanager": ("httpGet", {"path": "/-/healthy", "port": "http"}),
    }


def test_a_slow_mlflow_start_is_not_killed_by_liveness() -> None:
    """Imports and migrations under a 1-CPU limit: a startup probe holds liveness off for minutes."""
    (server,) = dict(pod_specs(render()))["mlflow"]["containers"]
    start = server["startupProbe"]
    assert start["periodSeconds"] * start["failureThreshold"] >= 180
    assert probe_check(start) == probe_check(server["livenessProbe"])


def test_only_prometheus_gets_an_api_token() -> None:
    tokens = {name: spec["automountServiceAccountToken"] for name, spec in pod_specs(render())}
    assert tokens == {"mlflow": False, "object-store": False, "prometheus": True, "alertmanager": False}
    assert dict(pod_specs(render()))["prometheus"]["serviceAccountName"] == "prometheus"


def test_prometheus_rbac_reads_its_namespace_only_and_the_controller_may_grant_it() -> None:
    objects = render()
    role = of_kind(objects, "Role")["prometheus"]
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["pods", "services", "endpoints"], "verbs": ["get", "list", "watch"]}
    ]
    binding = of_kind(objects, "RoleBinding")["prometheus"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "prometheus", "namespace": NS}]
    # RBAC refuses to let anyone grant rights it does not hold: the in-cluster controller must.
    for rule in role["rules"]:
        for resource in rule["resources"]:
            assert any(
                rule["apiGroups"][0] in held["apiGroups"]
                and resource in held["resources"]
                and set(rule["verbs"]) <= set(held["verbs"])
                for held in controller_rules()
            ), resource


def pod_usage(spec: dict[str, Any], key: str) -> Decimal:
    """What a pod counts against a quota for ``key`` (e.g. ``limits.cpu``): init containers run
    one at a time before the others, so the larger of the two sums."""
    kind, resource = key.split(".")

    def total(containers: list[dict[str, Any]]) -> Decimal:
        return sum((parse_quantity(c["resources"][kind][resource]) for c in containers), Decimal(0))

    return max(total(spec["containers"]), total(spec.get("initContainers", [])))


def test_the_stacks_fit_the_smallest_quota_profile_with_most_of_it_left() -> None:
    objects, small = render(), PROFILES["small"]
    hard = small.hard()
    for key in ("requests.cpu", "requests.memory", "limits.cpu", "limits.memory"):
        used = sum((pod_usage(spec, key) for _, spec in pod_specs(objects)), Decimal(0))
        assert used <= parse_quantity(hard[key]) / 2, key
    for key in ("requests.ephemeral-storage", "limits.ephemeral-storage"):
        used = sum((pod_usage(spec, key) for _, spec in pod_specs(objects)), Decimal(0))
        assert used <= parse_quantity(hard[key]) / 2, key
    claims = of_kind(objects, "PersistentVolumeClaim").values()
    storage = sum(parse_quantity(c["spec"]["resources"]["requests"]["storage"]) for c in claims)
    assert storage <= parse_quantity(hard["requests.storage"]) / 2
    assert len(claims) < small.pvcs and len(of_kind(objects, "Service")) < small.services


def test_without_persistence_the_stacks_still_fit_the_smallest_quota_profile() -> None:
    """The data emptyDirs (5Gi of objects among them) must fit in the container limits, and those
    in the quota and the LimitRange's max: else the learner's stacks are never admitted."""
    small = PROFILES["small"]
    for _, spec in pod_specs(render(persistence=False)):
        for c in all_containers(spec):
            limit = parse_quantity(c["resources"]["limits"]["ephemeral-storage"])
            assert limit <= parse_quantity(small.ephemeral.limits), c["name"]
    for key in ("requests.ephemeral-storage", "limits.ephemeral-storage"):
        used = sum((pod_usage(spec, key) for _, spec in pod_specs(render(persistence=False))), Decimal(0))
        assert used <= parse_quantity(small.hard()[key]), key


@pytest.mark.parametrize("name", list(PROFILES))
def test_disk_is_not_what_a_learner_runs_out_of_first(name: str) -> None:
    """Beside the stacks, each profile's ephemeral-storage quota admits at least as many pods with
    the LimitRange's defaults as its CPU quota does (or its pod count, if that is smaller)."""
    profile, specs = PROFILES[name], [spec for _, spec in pod_specs(render())]
    hard = profile.hard()

    def room(key: str, each: str) -> int:
        used = sum((pod_usage(spec, key) for spec in specs), Decimal(0))
        return int((parse_quantity(hard[key]) - used) // parse_quantity(each))

    by_cpu = min(room("requests.cpu", "100m"), room("limits.cpu", "500m"), profile.pods - len(specs))
    by_disk = min(
        room("requests.ephemeral-storage", profile.ephemeral.default_request),
        room("limits.ephemeral-storage", profile.ephemeral.default),
    )
    assert by_disk >= by_cpu > 0, (by_disk, by_cpu)


def test_every_emptydir_is_bounded_and_held_by_a_container_limit() -> None:
    """The kubelet evicts a pod past its emptyDir's sizeLimit, and past the sum of its containers'
    ephemeral-storage limits (logs and emptyDirs together): each emptyDir's size must be inside
    the limit of a container that writes it, with room for that container's logs beside it."""
    for persistence in (True, False):
        for name, spec in pod_specs(render(persistence=persistence)):
            empty_dirs = {v["name"]: v["emptyDir"] for v in spec["volumes"] if "emptyDir" in v}
            assert all(e.get("sizeLimit") for e in empty_dirs.values()), (name, empty_dirs)
            sizes = {v: parse_quantity(e["sizeLimit"]) for v, e in empty_dirs.items()}
            for c in spec["containers"]:
                written = [m["name"] for m in c.get("volumeMounts", []) if not m["readOnly"]]
                limit = parse_quantity(c["resources"]["limits"]["ephemeral-storage"])
                room = limit - sum((sizes.get(v, Decimal(0)) for v in written), Decimal(0))
                assert room >= parse_quantity("64Mi"), (name, c["name"], persistence)
            mounted = {m["name"] for c in spec["containers"] for m in c.get("volumeMounts", [])}
            assert set(sizes) <= mounted, name  # an emptyDir only an init container writes holds no limit


def test_ephemeral_storage_follows_the_volumes_it_must_hold() -> None:
    """Limits are derived from the settings' sizes: a larger scratch never gets a pod evicted early."""
    settings = {"storage": {"mlflow_scratch": "3Gi", "prometheus": "2Gi", "container_logs": "100Mi"}}
    specs = dict(pod_specs(render(**settings)))
    limits = {
        c["name"]: c["resources"]["limits"]["ephemeral-storage"]
        for spec in specs.values()
        for c in all_containers(spec)
    }
    assert limits == {
        "mlflow": "3172Mi",  # 3Gi of /tmp, 100Mi of logs
        "buckets": "16Mi",
        "versitygw": "164Mi",  # 64Mi of /tmp
        "prometheus": "2148Mi",  # the 2Gi TSDB
        "config-reloader": "100Mi",
        "alertmanager": "164Mi",  # 64Mi of silences and notification log
    }
    without_claims = dict(pod_specs(render(persistence=False)))
    (versitygw,) = without_claims["object-store"]["containers"]
    assert versitygw["resources"]["limits"]["ephemeral-storage"] == "5248Mi"  # 5Gi of objects on an emptyDir


# -- settings ------------------------------------------------------------------------------


def test_images_resources_and_storage_come_from_settings() -> None:
    settings = StackSettings.model_validate(
        {
            "images": {
                c: f"registry.local/{c}:1"
                for c in ("mlflow", "object_store", "prometheus", "alertmanager", "config_reloader")
            },
            "resources": {"mlflow": resources("10m", "300Mi", "2", "2Gi").model_dump()},
            "storage": {"object_store": "42Gi", "mlflow": "3Gi", "prometheus": "2Gi"},
            "storage_class": "fast",
        }
    )
    objects = render_stacks(NS, LABELS, CREDS, settings)
    images = {c["image"] for _, spec in pod_specs(objects) for c in all_containers(spec)}
    assert all(image.startswith("registry.local/") for image in images) and len(images) == 5
    mlflow = dict(pod_specs(objects))["mlflow"]["containers"][0]
    assert mlflow["resources"] == {
        "requests": {"cpu": "10m", "memory": "300Mi", "ephemeral-storage": "128Mi"},
        "limits": {"cpu": "2", "memory": "2Gi", "ephemeral-storage": "1088Mi"},  # 1Gi of /tmp, 64Mi of logs
    }
    claims = of_kind(objects, "PersistentVolumeClaim")
    assert claims["object-store-data"]["spec"]["resources"]["requests"]["storage"] == "42Gi"
    assert claims["mlflow-data"]["spec"]["resources"]["requests"]["storage"] == "3Gi"
    assert {c["spec"]["storageClassName"] for c in claims.values()} == {"fast"}
    prometheus = dict(pod_specs(objects))["prometheus"]
    assert {"name": "data", "emptyDir": {"sizeLimit": "2Gi"}} in prometheus["volumes"]
    assert "--storage.tsdb.retention.size=1433MB" in prometheus["containers"][0]["args"]
    assert all(
        "storageClassName" not in c["spec"] for c in of_kind(render(), "PersistentVolumeClaim").values()
    )


def test_stack_pods_go_where_the_node_selector_says() -> None:
    selector = {"labctl.dev/real-node": "demo", "pool": "labs"}
    settings = StackSettings.model_validate({"node_selector": selector})
    assert hash(settings) == hash(
        StackSettings.model_validate({"node_selector": dict(reversed(selector.items()))})
    )
    specs = dict(pod_specs(render_stacks(NS, LABELS, CREDS, settings)))
    assert len(specs) == 4 and all(spec["nodeSelector"] == selector for spec in specs.values())
    assert all("nodeSelector" not in spec for _, spec in pod_specs(render()))


def test_without_persistence_there_are_no_claims() -> None:
    objects = render(persistence=False)
    assert of_kind(objects, "PersistentVolumeClaim") == {}
    data = next(v for v in dict(pod_specs(objects))["mlflow"]["volumes"] if v["name"] == "data")
    assert data == {"name": "data", "emptyDir": {"sizeLimit": "1Gi"}}


def test_disabled_components_are_not_rendered() -> None:
    settings = StackSettings(enabled=("mlflow", "prometheus"))
    objects = render_stacks(NS, LABELS, CREDS, settings)
    assert {o["metadata"]["labels"]["labctl.dev/stack"] for o in objects} == {"mlflow", "prometheus"}
    assert enabled_components(settings) == ("mlflow", "prometheus")
    mlflow = dict(pod_specs(objects))["mlflow"]["containers"][0]
    env = {e["name"]: e["value"] for e in mlflow["env"]}
    assert env["_MLFLOW_SERVER_ARTIFACT_DESTINATION"] == "/mlflow/artifacts" and "envFrom" not in mlflow
    assert "alerting" not in yaml.safe_load(
        of_kind(objects, "ConfigMap")["prometheus-config"]["data"]["prometheus.yml"]
    )


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"images": {"mlfow": "x"}}, "Extra inputs are not permitted"),
        ({"storage": {"mlflow": "1 GB"}}, "should match pattern"),
        (
            {
                "resources": {
                    "mlflow": {
                        "requests": {"cpu": "2", "memory": "1Gi"},
                        "limits": {"cpu": "1", "memory": "1Gi"},
                    }
                }
            },
            "cpu request 2 is above its limit 1",
        ),
        ({"enabled": ["mlflow", "mlflow"]}, "components listed twice: mlflow"),
        ({"enabled": ["jupyter"]}, "Input should be 'mlflow'"),
        ({"run_as_user": 0}, "greater than or equal to 1"),
        ({"node_selector": ["pool=labs"]}, "a mapping of node label to value"),
        ({"node_selector": {"bad key": "x"}}, "'bad key' is not a label key"),
        ({"node_selector": {"pool": "-labs"}}, "pool: '-labs' is not a label value"),
        ({"node_selector": {"gpu": True}}, r"gpu: True is not a label value \(quote numbers"),
    ],
)
def test_bad_settings_are_rejected_with_a_reason(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        StackSettings.model_validate(settings)


# -- components ----------------------------------------------------------------------------


def test_services_select_their_deployments_pods_and_ports() -> None:
    objects = render()
    deployments = of_kind(objects, "Deployment")
    for name, svc in of_kind(objects, "Service").items():
        selector = svc["spec"]["selector"]
        matching = [
            d
            for d, dep in deployments.items()
            if dep["spec"]["template"]["metadata"]["labels"].items() >= selector.items()
        ]
        assert matching == [name]
        assert deployments[name]["spec"]["selector"]["matchLabels"] == selector
        assert selector.items() >= MANAGED_BY.items()  # learners cannot label their pods so
        ports = {
            p["name"] for c in deployments[name]["spec"]["template"]["spec"]["containers"] for p in c["ports"]
        }
        assert {p["targetPort"] for p in svc["spec"]["ports"]} <= ports
    assert {n: [p["port"] for p in s["spec"]["ports"]] for n, s in of_kind(objects, "Service").items()} == {
        "object-store": [7070],
        "mlflow": [5000],
        "prometheus": [9090],
        "alertmanager": [9093],
    }


def test_the_object_store_secret_has_what_dvc_and_mlflow_need() -> None:
    objects = render()
    secret = of_kind(objects, "Secret")["object-store-credentials"]
    values = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert (
        values["AWS_ACCESS_KEY_ID"] == CREDS.access_key
        and values["AWS_SECRET_ACCESS_KEY"] == CREDS.secret_key
    )
    assert (
        values["AWS_ENDPOINT_URL"] == values["MLFLOW_S3_ENDPOINT_URL"] == f"http://object-store.{NS}.svc:7070"
    )
    assert (values["DVC_BUCKET"], values["DVC_REMOTE_URL"], values["MLFLOW_BUCKET"]) == (
        "dvc",
        "s3://dvc",
        "mlflow",
    )
    # The key pair lives in the Secret only: not in any Deployment, not in a repr.
    deployments = json.dumps(of_kind(objects, "Deployment"))
    assert CREDS.secret_key not in deployments and CREDS.access_key not in deployments
    assert CREDS.secret_key not in repr(CREDS)


def test_buckets_are_made_before_the_object_store_starts() -> None:
    spec = dict(pod_specs(render()))["object-store"]
    (init,) = spec["initContainers"]
    assert init["command"] == [
        "mkdir",
        "-p",
        "/data/buckets/dvc",
        "/data/buckets/mlflow",
        "/data/buckets/submissions",
    ]
    server = spec["containers"][0]
    assert server["args"][-2:] == ["posix", "/data/buckets"]  # not the claim's root, with its lost+found
    mount = {"name": "data", "mountPath": "/data", "readOnly": False}
    assert mount in init["volumeMounts"] and mount in server["volumeMounts"]
    assert {e["name"] for e in server["env"]} == {"ROOT_ACCESS_KEY_ID", "ROOT_SECRET_ACCESS_KEY"}


def test_mlflow_is_sized_for_many_learners_and_proxies_artifacts_to_the_store() -> None:
    spec = dict(pod_specs(render()))["mlflow"]
    server = spec["containers"][0]
    # One process: uvicorn in the launcher's own process, no `mlflow server` waiting on a child.
    assert server["command"] == ["python", "-c", mlflow_server.LAUNCHER]
    assert server["args"] == ["--host=0.0.0.0", "--port=5000", "--workers=1", "mlflow.server.fastapi_app:app"]
    env = {e["name"]: e["value"] for e in server["env"]}
    # What `mlflow server --backend-store-uri=... --artifacts-destination=s3://mlflow/` hands uvicorn.
    assert {
        "_MLFLOW_SERVER_FILE_STORE": "sqlite:////mlflow/mlflow.db",
        "_MLFLOW_SERVER_REGISTRY_STORE": "sqlite:////mlflow/mlflow.db",
        "_MLFLOW_SERVER_ARTIFACT_ROOT": "mlflow-artifacts:/",
        "_MLFLOW_SERVER_SERVE_ARTIFACTS": "true",
        "_MLFLOW_SERVER_ARTIFACT_DESTINATION": "s3://mlflow/",
    }.items() <= env.items()
    assert env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"
    hosts = env["MLFLOW_SERVER_ALLOWED_HOSTS"].split(",")
    assert {"mlflow:*", f"mlflow.{NS}.svc:*", f"mlflow.{NS}.svc.*", "localhost:*"} <= set(hosts)
    assert server["envFrom"] == [{"secretRef": {"name": "object-store-credentials"}}]
    # Ready: the Flask app's worker threads answer (/version); alive: the event loop does
    # (/health, no worker thread), so a server whose threads are all busy is not restarted.
    assert server["readinessProbe"]["httpGet"] == {"path": "/version", "port": "http"}
    assert (
        server["livenessProbe"]["httpGet"]
        == server["startupProbe"]["httpGet"]
        == {
            "path": "/health",
            "port": "http",
        }
    )
    assert {"name": "data", "mountPath": "/mlflow", "readOnly": False} in server["volumeMounts"]


def test_prometheus_scrapes_its_own_namespace_and_reloads_the_learners_rules() -> None:
    objects = render()
    config = yaml.safe_load(of_kind(objects, "ConfigMap")["prometheus-config"]["data"]["prometheus.yml"])
    (job,) = config["scrape_configs"]
    assert job["kubernetes_sd_configs"] == [{"role": "pod", "namespaces": {"own_namespace": True}}]
    assert job["relabel_configs"][0] == {
        "source_labels": ["__meta_kubernetes_pod_annotation_prometheus_io_scrape"],
        "regex": "true",
        "action": "keep",
    }
    assert config["rule_files"] == ["/etc/prometheus/rules/*.yaml", "/etc/prometheus/rules/*.yml"]
    assert config["alerting"]["alertmanagers"][0]["static_configs"] == [{"targets": ["alertmanager:9093"]}]
    spec = dict(pod_specs(objects))["prometheus"]
    assert {"name": "rules", "configMap": {"name": "alert-rules", "optional": True}} in spec["volumes"]
    server, reloader = spec["containers"]
    assert (
        "--web.enable-lifecycle" in server["args"] and "--storage.tsdb.retention.time=24h" in server["args"]
    )
    assert {"--watched-dir=/etc/prometheus/rules", "--reload-url=http://127.0.0.1:9090/-/reload"} <= set(
        reloader["args"]
    )
    assert "alert-rules" not in of_kind(objects, "ConfigMap")  # the learner's to write, not ours


def test_alertmanager_keeps_alerts_readable_and_runs_alone() -> None:
    objects = render()
    config = yaml.safe_load(of_kind(objects, "ConfigMap")["alertmanager-config"]["data"]["alertmanager.yml"])
    assert config["route"]["receiver"] in {r["name"] for r in config["receivers"]}
    dep = of_kind(objects, "Deployment")["alertmanager"]
    assert "--cluster.listen-address=" in dep["spec"]["template"]["spec"]["containers"][0]["args"]
    assert dep["spec"]["template"]["metadata"]["annotations"]["labctl.dev/config-hash"]
    assert dep["spec"]["strategy"] == {"type": "Recreate"} and dep["spec"]["replicas"] == 1


# -- readiness -----------------------------------------------------------------------------


def live(
    component: str,
    *,
    ready: int = 1,
    replicas: int = 1,
    generation: int = 2,
    observed: int = 2,
    **labels: str,
) -> dict[str, Any]:
    return {
        "metadata": {
            "name": component,
            "generation": generation,
            "labels": {**MANAGED_BY, "labctl.dev/stack": component, **labels},
        },
        "spec": {"replicas": replicas},
        "status": {
            "observedGeneration": observed,
            "replicas": 1,
            "updatedReplicas": 1,
            "readyReplicas": ready,
            "availableReplicas": ready,
        },
    }


def test_readiness_from_live_deployments() -> None:
    deployments = [live("mlflow"), live("object-store", ready=0), live("prometheus", observed=1)]
    assert stack_readiness(deployments) == {
        "mlflow": True,
        "object-store": False,
        "prometheus": False,
        "alertmanager": False,
    }
    assert stack_readiness([live("mlflow", replicas=0)], expected=["mlflow"]) == {"mlflow": False}
    assert stack_readiness([], expected=[]) == {}


def test_readiness_ignores_deployments_labctl_did_not_make() -> None:
    impostor = live("mlflow", ready=0)
    impostor["metadata"]["labels"].pop("app.kubernetes.io/managed-by")
    assert stack_readiness([live("mlflow"), impostor], expected=["mlflow"]) == {"mlflow": True}
    rolling = live("mlflow")
    rolling["status"]["replicas"] = 2  # an old pod is still there
    assert stack_readiness([rolling], expected=["mlflow"]) == {"mlflow": False}


# -- checked-in manifests ------------------------------------------------------------------


def test_checked_in_manifests_are_up_to_date() -> None:
    spec = importlib.util.spec_from_file_location(
        "gen_stack_manifests", ROOT / "hack" / "gen-stack-manifests.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    stale = [
        name for name, text in module.render_files().items() if (module.OUT_DIR / name).read_text() != text
    ]
    assert not stale, f"run hack/gen-stack-manifests.py: {', '.join(stale)} out of date"
    assert sorted(p.name for p in module.OUT_DIR.glob("*.yaml")) == sorted(module.render_files())
