"""The learner's Alertmanager: receives their Prometheus's alerts and keeps them readable.

One route to one receiver with no integrations: nothing leaves the cluster (there is nowhere
to send to), and every alert stays visible through Alertmanager's API (``GET /api/v2/alerts``),
which is what a grader reads. Single replica, so clustering (gossip on 9094) is switched off.
"""

from __future__ import annotations

import functools

import yaml

from labctl.provision.stacks.common import (
    CONFIG_HASH_ANNOTATION,
    Object,
    Stack,
    config_hash,
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
)
from labctl.provision.stacks.settings import Component

COMPONENT: Component = "alertmanager"
SERVICE = COMPONENT
PORT = 9093
CONFIG_MAP = "alertmanager-config"
CONFIG_DIR = "/etc/alertmanager"
DATA = "/alertmanager"
RECEIVER = "learner"


@functools.lru_cache(maxsize=1)  # constant text; dumping it is most of a render's time
def alertmanager_config() -> str:
    """alertmanager.yml: group by alert name, notify quickly (a lab waits on it), repeat rarely."""
    config = {
        "route": {
            "receiver": RECEIVER,
            "group_by": ["alertname"],
            "group_wait": "10s",
            "group_interval": "1m",
            "repeat_interval": "1h",
        },
        "receivers": [{"name": RECEIVER}],
    }
    return yaml.safe_dump(config, sort_keys=False)


def render(stack: Stack) -> list[Object]:
    settings = stack.settings
    text = alertmanager_config()
    data = scratch_volume("data", settings.storage.alertmanager)
    server = container(
        "alertmanager",
        settings.images.alertmanager,
        settings.resources.alertmanager,
        args=[
            f"--config.file={CONFIG_DIR}/alertmanager.yml",
            f"--storage.path={DATA}",
            f"--web.listen-address=:{PORT}",
            # Empty: no gossip. It would also fail to start on pod IPs outside RFC 1918 ranges.
            "--cluster.listen-address=",
        ],
        ports=[("http", PORT)],
        mounts=[("config", CONFIG_DIR, True), ("data", DATA, False)],
        # Silences and the notification log (KiB for one learner) on the data emptyDir; a log
        # line per notification cycle.
        disk=disk_for("16Mi", settings.storage.container_logs, data),
        probes={
            # /-/ready waits for the configuration to load; /-/healthy only for the process.
            "readinessProbe": readiness(http_get("/-/ready", "http")),
            "livenessProbe": liveness(http_get("/-/healthy", "http")),
        },
    )
    volumes = [config_map_volume("config", CONFIG_MAP), data]
    annotations = {
        # A changed configuration rolls the pod (it changes only with labctl itself).
        CONFIG_HASH_ANNOTATION: config_hash(text),
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(PORT),
    }
    return [
        config_map(stack, COMPONENT, CONFIG_MAP, {"alertmanager.yml": text}),
        deployment(stack, COMPONENT, pod_spec(stack, [server], volumes), annotations=annotations),
        service(stack, COMPONENT, [("http", PORT)]),
        # Its receiver has no integrations and gossip is off: it sends nothing anywhere. (Prometheus
        # comes to it; graders read alerts from its API.)
        egress_policy(stack, COMPONENT, []),
    ]
