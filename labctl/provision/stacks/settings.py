"""Settings of the per-learner stacks: which components run, their images, resources and storage.

Every image, resource and storage size is a setting: air-gapped clusters point the images at
their own registry, and a lab level that needs no monitoring turns it off. The defaults are
sized for many learners per node: requests near each server's idle footprint (what the
scheduler packs by), limits with headroom for a lab's bursts. All five pods of one learner
request about 0.1 CPU and 0.57 GiB, and fit the ``small`` quota profile with most of it left.

Image contract (what a locally built image must provide, see issue 6): the object store,
Prometheus, Alertmanager and the config reloader run their image's ENTRYPOINT with our
arguments; the object-store image also has ``mkdir``; the MLflow image has ``python`` on its
PATH, with ``mlflow``, ``uvicorn`` and ``boto3`` importable (see ``mlflow_server.LAUNCHER``).
"""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Literal, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from labctl.core.typed_yaml import load_model
from labctl.provision.stacks.local_images import LOCAL_IMAGES

Component = Literal["mlflow", "object-store", "prometheus", "alertmanager"]
STACK_COMPONENTS: tuple[Component, ...] = get_args(Component)

# A Kubernetes resource quantity ("100m", "512Mi", "1", "1.5Gi") and a Prometheus duration ("24h").
Quantity = Annotated[str, StringConstraints(pattern=r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|Ki|Mi|Gi|Ti|Pi)?$")]
Duration = Annotated[str, StringConstraints(pattern=r"^[0-9]+(ms|s|m|h|d|w)$")]
# A label key (optional DNS-subdomain prefix, then a name of up to 63 characters) and value.
_LABEL_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
_LABEL_KEY = re.compile(rf"^([a-z0-9]([-a-z0-9.]{{0,251}}[a-z0-9])?/)?{_LABEL_NAME}$")
_LABEL_VALUE = re.compile(rf"^({_LABEL_NAME})?$")

_SUFFIXES: dict[str, Decimal] = {
    "": Decimal(1),
    "m": Decimal("0.001"),
    **{suffix: Decimal(10) ** (3 * power) for power, suffix in enumerate("kMGTP", start=1)},
    **{f"{suffix}i": Decimal(2) ** (10 * power) for power, suffix in enumerate("KMGTP", start=1)},
}
_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)([a-zA-Z]*)$")


def parse_quantity(quantity: str) -> Decimal:
    """The value of a Kubernetes quantity: ``parse_quantity("512Mi") == 536870912``."""
    match = _QUANTITY.match(quantity)
    if not match or match.group(2) not in _SUFFIXES:
        raise ValueError(f"not a Kubernetes quantity: {quantity!r}")
    return Decimal(match.group(1)) * _SUFFIXES[match.group(2)]


class _Settings(BaseModel):
    # Frozen: settings are shared by every learner's render and must not change under it.
    # extra="forbid": a typo in an admin's settings file is an error, not a silent default.
    model_config = ConfigDict(frozen=True, extra="forbid")


class Amounts(_Settings):
    cpu: Quantity
    memory: Quantity


class Resources(_Settings):
    """Requests (what the scheduler reserves) and limits (where the kernel stops the container)."""

    requests: Amounts
    limits: Amounts

    @model_validator(mode="after")
    def _requests_within_limits(self) -> Resources:
        for name in ("cpu", "memory"):
            request, limit = getattr(self.requests, name), getattr(self.limits, name)
            if parse_quantity(request) > parse_quantity(limit):
                raise ValueError(f"{name} request {request} is above its limit {limit}")
        return self

    def as_dict(self) -> dict[str, dict[str, str]]:
        return {"requests": self.requests.model_dump(), "limits": self.limits.model_dump()}


def resources(cpu: str, memory: str, cpu_limit: str, memory_limit: str) -> Resources:
    """``Resources`` from four quantities, requests first."""
    return Resources(
        requests=Amounts(cpu=cpu, memory=memory), limits=Amounts(cpu=cpu_limit, memory=memory_limit)
    )


class StackImages(_Settings):
    """Upstream images by default; air-gapped clusters override them with their registry's."""

    mlflow: str = "ghcr.io/mlflow/mlflow:v3.17.0-full"  # -full: has boto3 for S3 artifacts
    object_store: str = "docker.io/versity/versitygw:v1.7.0"
    prometheus: str = "quay.io/prometheus/prometheus:v3.5.0"
    alertmanager: str = "quay.io/prometheus/alertmanager:v0.28.1"
    config_reloader: str = "quay.io/prometheus-operator/prometheus-config-reloader:v0.85.0"

    @classmethod
    def local(cls) -> StackImages:
        """The images ``labctl images build`` makes on this machine (no registry: labctl.localcluster.images),
        for a sim with a real node. The same as ``manifests/stack-settings/local-images.yaml``."""
        return cls(
            mlflow=LOCAL_IMAGES["mlflow"],
            object_store=LOCAL_IMAGES["object-store"],
            prometheus=LOCAL_IMAGES["prometheus"],
            alertmanager=LOCAL_IMAGES["alertmanager"],
            config_reloader=LOCAL_IMAGES["config-reloader"],
        )


class StackResources(_Settings):
    """Per container. Requests follow measured idle memory, so a node is packed by what is used."""

    # One uvicorn process, no `mlflow server` launcher (mlflow_server): ~225 MiB idle, ~250 MiB
    # after runs, models and artifacts went through it. CPU limit 1: its start is import-bound
    # and a tighter limit makes it slow to become ready.
    mlflow: Resources = resources("50m", "320Mi", "1", "1Gi")
    # versitygw idles at a few tens of MB; uploads stream through it.
    object_store: Resources = resources("10m", "64Mi", "250m", "256Mi")
    # ~40 MB idle; one namespace of targets and a day of retention stay far below the limit.
    prometheus: Resources = resources("25m", "128Mi", "250m", "512Mi")
    alertmanager: Resources = resources("10m", "48Mi", "100m", "128Mi")
    config_reloader: Resources = resources("5m", "24Mi", "20m", "48Mi")
    bucket_init: Resources = resources("10m", "16Mi", "50m", "32Mi")  # mkdir, then exits


class StackStorage(_Settings):
    """Volume sizes. mlflow and object_store are claims (PVCs); the rest are emptyDir size limits.

    Each container's ephemeral-storage limit is derived from these: the emptyDirs it writes plus
    ``container_logs`` (common.disk_for), so a larger volume here never gets its pod evicted.
    """

    mlflow: Quantity = "1Gi"  # the sqlite tracking and registry database
    object_store: Quantity = "5Gi"  # the dvc and mlflow buckets: lab data sets and models are small
    prometheus: Quantity = "1Gi"  # TSDB; retention is also capped below this (see MonitoringSettings)
    alertmanager: Quantity = "64Mi"  # silences and the notification log
    mlflow_scratch: Quantity = "1Gi"  # /tmp: artifacts pass through it on their way to the store
    # Room for one container's logs, which count as its ephemeral storage. The kubelet rotates
    # them at containerLogMaxSize (10Mi by default) and keeps containerLogMaxFiles (5), all but
    # the newest compressed: ~30Mi at most. Raise it where the cluster keeps larger logs.
    container_logs: Quantity = "64Mi"


class MonitoringSettings(_Settings):
    """Prometheus for one learner: short retention, frequent enough for a lab's alert to fire."""

    retention: Duration = "24h"
    scrape_interval: Duration = "15s"
    evaluation_interval: Duration = "15s"
    # How often the reloader re-hashes the rule files, on top of its file watch. A rule the learner
    # writes reaches Prometheus after the kubelet's ConfigMap sync (up to about a minute) plus this.
    rule_reload_interval: Duration = "15s"


class StackSettings(_Settings):
    """Everything render_stacks needs besides the learner: one object for the whole cluster."""

    enabled: tuple[Component, ...] = STACK_COMPONENTS
    images: StackImages = StackImages()
    resources: StackResources = StackResources()
    storage: StackStorage = StackStorage()
    monitoring: MonitoringSettings = MonitoringSettings()
    # None: the cluster's default StorageClass. "" asks for no class (pre-provisioned volumes).
    storage_class: str | None = None
    # False renders emptyDir instead of claims: data is lost when a pod is replaced. For clusters
    # with no volume provisioner (the simulated one) and throwaway demos.
    persistence: bool = True
    run_as_user: int = Field(default=10001, ge=1)
    fs_group: int = Field(default=10001, ge=1)
    # Node labels every stack pod must match: keep the lab infrastructure on its own node pool
    # (or, on a sim with a real node, off the kwok nodes, where pods only pretend to run).
    # Written as a mapping; kept as sorted pairs because settings are hashed (see prometheus_config).
    node_selector: tuple[tuple[str, str], ...] = ()

    @field_validator("enabled")
    @classmethod
    def _unique(cls, value: tuple[Component, ...]) -> tuple[Component, ...]:
        if duplicates := sorted({c for c in value if value.count(c) > 1}):
            raise ValueError(f"components listed twice: {', '.join(duplicates)}")
        return value

    @field_validator("node_selector", mode="before")
    @classmethod
    def _pairs(cls, value: object) -> object:
        if isinstance(value, tuple):  # already pairs (model_copy, code)
            value = dict(value)
        if not isinstance(value, dict):
            raise ValueError("a mapping of node label to value, e.g. {pool: labs}")
        return node_selector_pairs(value)

    def is_enabled(self, component: Component) -> bool:
        return component in self.enabled


def node_selector_pairs(selector: dict[object, object]) -> tuple[tuple[str, str], ...]:
    """A node selector as sorted (label, value) pairs; a ValueError names a bad key or value."""
    for key, label in selector.items():
        if not isinstance(key, str) or not _LABEL_KEY.match(key):
            raise ValueError(f"{key!r} is not a label key")
        if not isinstance(label, str) or not _LABEL_VALUE.match(label):
            raise ValueError(f"{key}: {label!r} is not a label value (quote numbers and booleans)")
    return tuple(sorted((str(k), str(v)) for k, v in selector.items()))


def load_stack_settings(path: Path) -> StackSettings:
    """StackSettings from a YAML file; a bad file is a UsageError naming the file and field."""
    return load_model(path, StackSettings, what="stack settings")
