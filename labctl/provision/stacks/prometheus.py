"""The learner's Prometheus: scrapes annotated pods of their own namespace, evaluates the alert
rules they write, and sends alerts to their Alertmanager.

Rules: the learner creates a ConfigMap named ``alert-rules`` (each key a rule file ending in
``.yaml`` or ``.yml``); it is mounted as an optional volume, so Prometheus starts without it
and the kubelet fills the directory in when it appears or changes.

Reload: the kubelet refreshes mounted ConfigMaps but Prometheus reads rule files only at start
and on reload. A prometheus-config-reloader sidecar watches the rule and config directories and
POSTs ``/-/reload`` (``--web.enable-lifecycle``). Chosen over Prometheus's own
``auto-reload-config`` feature because that needs a recent Prometheus, and older ones (Debian's
2.42, say) ignore unknown feature flags silently: rules would never reload. The reloader is one
small process (~10 MB; the local image has labctl's own, with the same flags) and works with
every Prometheus version. The local Prometheus image is 3.5 built from its Go module: Debian's
2.42 is built without Kubernetes service discovery, which the scrape configuration uses.
A rule file that does not parse is rejected by the reload and the previous rules stay loaded.
"""

from __future__ import annotations

import functools
from decimal import Decimal

import yaml

from labctl.provision import network
from labctl.provision.stacks import alertmanager
from labctl.provision.stacks.common import (
    Object,
    Stack,
    config_map,
    config_map_volume,
    container,
    deployment,
    disk_for,
    egress_policy,
    http_get,
    liveness,
    pod_spec,
    readiness,
    scratch_volume,
    service,
    tcp_socket,
)
from labctl.provision.stacks.settings import Component, StackSettings, parse_quantity

COMPONENT: Component = "prometheus"
SERVICE = COMPONENT
PORT = 9090
RELOADER_PORT = 8080
CONFIG_MAP = "prometheus-config"
RULES_CONFIG_MAP = "alert-rules"  # written by the learner, never by labctl
CONFIG_DIR = "/etc/prometheus/config"
RULES_DIR = "/etc/prometheus/rules"
DATA = "/prometheus"
SCRAPE_ANNOTATIONS = {"prometheus.io/scrape": "true", "prometheus.io/port": str(PORT)}

_POD_META = "__meta_kubernetes_pod_"
_PORT_AND_IP = [f"{_POD_META}annotation_prometheus_io_port", f"{_POD_META}ip"]


def _pods_job() -> Object:
    """Pods of the learner's namespace annotated ``prometheus.io/scrape: "true"``; the usual
    ``prometheus.io/port``, ``/path`` and ``/scheme`` annotations say where."""
    relabel: list[Object] = [
        {"source_labels": [f"{_POD_META}annotation_prometheus_io_scrape"], "regex": "true", "action": "keep"},
        {
            "source_labels": [f"{_POD_META}phase"],
            "regex": "Pending|Succeeded|Failed|Unknown",
            "action": "drop",
        },
        {
            "source_labels": [f"{_POD_META}annotation_prometheus_io_scheme"],
            "regex": "(https?)",
            "target_label": "__scheme__",
        },
        {
            "source_labels": [f"{_POD_META}annotation_prometheus_io_path"],
            "regex": "(.+)",
            "target_label": "__metrics_path__",
        },
        # The annotated port on the pod's IP, IPv4 or (bracketed) IPv6.
        {
            "source_labels": list(_PORT_AND_IP),
            "regex": r"(\d+);(\d+\.\d+\.\d+\.\d+)",
            "replacement": "$2:$1",
            "target_label": "__address__",
        },
        {
            "source_labels": list(_PORT_AND_IP),
            "regex": r"(\d+);([0-9a-fA-F:.]*:[0-9a-fA-F:.]*)",
            "replacement": "[$2]:$1",
            "target_label": "__address__",
        },
        {"action": "labelmap", "regex": f"{_POD_META}label_(.+)"},
        {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
        {"source_labels": [f"{_POD_META}name"], "target_label": "pod"},
    ]
    return {
        "job_name": "pods",
        # own_namespace: the namespace Prometheus runs in, and its Role allows no other.
        "kubernetes_sd_configs": [{"role": "pod", "namespaces": {"own_namespace": True}}],
        "relabel_configs": relabel,
    }


# Cached: YAML dumping is most of a render's time, and every learner shares this text.
@functools.lru_cache(maxsize=16)
def prometheus_config(settings: StackSettings) -> str:
    """prometheus.yml. The same for every learner: nothing in it names the namespace."""
    monitoring = settings.monitoring
    config: Object = {
        "global": {
            "scrape_interval": monitoring.scrape_interval,
            "evaluation_interval": monitoring.evaluation_interval,
        },
        "rule_files": [f"{RULES_DIR}/*.yaml", f"{RULES_DIR}/*.yml"],
    }
    if settings.is_enabled(alertmanager.COMPONENT):
        target = f"{alertmanager.SERVICE}:{alertmanager.PORT}"
        config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [target]}]}]}
    config["scrape_configs"] = [_pods_job()]
    return yaml.safe_dump(config, sort_keys=False)


def retention_size(storage: str) -> str:
    """70 % of the data volume: blocks and WAL stay below the emptyDir limit, so the kubelet
    never evicts Prometheus for filling it (Prometheus's MB are MiB)."""
    return f"{int(parse_quantity(storage) * Decimal('0.7')) // 2**20}MB"


def _rbac(stack: Stack) -> list[Object]:
    """Service discovery in the learner's namespace, nothing else (a subset of the learner's own rights)."""
    meta = stack.meta(COMPONENT, COMPONENT)
    return [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": meta,
            "automountServiceAccountToken": False,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": stack.meta(COMPONENT, COMPONENT),
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": ["pods", "services", "endpoints"],
                    "verbs": ["get", "list", "watch"],
                }
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": stack.meta(COMPONENT, COMPONENT),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": COMPONENT},
            "subjects": [{"kind": "ServiceAccount", "name": COMPONENT, "namespace": stack.namespace}],
        },
    ]


def _containers(settings: StackSettings, data: Object) -> list[Object]:
    logs = settings.storage.container_logs
    server = container(
        "prometheus",
        settings.images.prometheus,
        settings.resources.prometheus,
        args=[
            f"--config.file={CONFIG_DIR}/prometheus.yml",
            f"--storage.tsdb.path={DATA}",
            f"--storage.tsdb.retention.time={settings.monitoring.retention}",
            f"--storage.tsdb.retention.size={retention_size(settings.storage.prometheus)}",
            f"--web.listen-address=:{PORT}",
            "--web.enable-lifecycle",  # /-/reload, for the reloader
        ],
        ports=[("http", PORT)],
        mounts=[("config", CONFIG_DIR, True), ("rules", RULES_DIR, True), ("data", DATA, False)],
        # The TSDB is on the data emptyDir (retention keeps it under 70 % of it). One namespace
        # of targets for a day is a few thousand series: blocks, WAL and head chunks of a few
        # tens of MiB (twice that while a compaction writes), and logs of reloads and compactions.
        disk=disk_for("128Mi", logs, data),
        probes={
            # /-/ready fails while the WAL is replayed at start; /-/healthy answers throughout,
            # so a long replay is not mistaken for a wedged process.
            "readinessProbe": readiness(http_get("/-/ready", "http")),
            "livenessProbe": liveness(http_get("/-/healthy", "http")),
        },
    )
    reloader = container(
        "config-reloader",
        settings.images.config_reloader,
        settings.resources.config_reloader,
        args=[
            f"--watched-dir={CONFIG_DIR}",
            f"--watched-dir={RULES_DIR}",
            f"--reload-url=http://127.0.0.1:{PORT}/-/reload",
            f"--watch-interval={settings.monitoring.rule_reload_interval}",
            f"--listen-address=:{RELOADER_PORT}",
        ],
        ports=[("reloader", RELOADER_PORT)],
        mounts=[("config", CONFIG_DIR, True), ("rules", RULES_DIR, True)],
        disk=disk_for("8Mi", logs),  # reads mounted files, POSTs a URL: a log line per reload
        probes={
            # One health path (/healthz): liveness asks only whether it still accepts connections.
            "readinessProbe": readiness(http_get("/healthz", "reloader")),
            "livenessProbe": liveness(tcp_socket("reloader")),
        },
    )
    return [server, reloader]


def render(stack: Stack) -> list[Object]:
    settings = stack.settings
    data = scratch_volume("data", settings.storage.prometheus)  # short retention: not worth a claim
    volumes = [
        config_map_volume("config", CONFIG_MAP),
        config_map_volume("rules", RULES_CONFIG_MAP, optional=True),
        data,
    ]
    spec = pod_spec(stack, _containers(settings, data), volumes, service_account=COMPONENT)
    return [
        *_rbac(stack),
        config_map(stack, COMPONENT, CONFIG_MAP, {"prometheus.yml": prometheus_config(settings)}),
        # No config hash on the template: the reloader applies config changes without a restart,
        # which would lose the metrics on the emptyDir.
        deployment(stack, COMPONENT, spec, annotations=SCRAPE_ANNOTATIONS),
        service(stack, COMPONENT, [("http", PORT)]),
        egress_policy(stack, COMPONENT, _egress()),
    ]


def _egress() -> list[Object]:
    """Scrape targets are pods of the learner's namespace on whatever port they annotate (their
    model server included), and Alertmanager is named by its Service (DNS). Service discovery
    reads the API server: that rule is labctl.provision.egress's, kept current with its address.
    The reloader sidecar POSTs to 127.0.0.1, which no NetworkPolicy sees."""
    return [network.dns_rule(), network.own_namespace_rule()]
