"""Building blocks every stack component is made of: labels, restricted pods, volumes, probes.

Every helper returns fresh dicts: objects are handed to the caller, who may change them, and
one learner's objects must never alias another's.
"""

from __future__ import annotations

import copy
import hashlib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from labctl.core.labels import GROUP, MANAGED_BY
from labctl.provision import network
from labctl.provision.stacks.settings import Component, Resources, StackSettings, parse_quantity

STACK_LABEL = f"{GROUP}/stack"
CONFIG_HASH_ANNOTATION = f"{GROUP}/config-hash"
NAME_LABEL = "app.kubernetes.io/name"
COMPONENT_LABEL = "app.kubernetes.io/component"

# component -> (the software it runs, its role in the learner's environment)
APPS: dict[Component, tuple[str, str]] = {
    "mlflow": ("mlflow", "tracking-server"),
    "object-store": ("versitygw", "object-store"),
    "prometheus": ("prometheus", "monitoring"),
    "alertmanager": ("alertmanager", "alerting"),
}

Object = dict[str, Any]


@dataclass(frozen=True)
class Stack:
    """What every component renders from: the learner's namespace and labels, the settings."""

    namespace: str
    labels: Mapping[str, str]
    settings: StackSettings

    def labels_for(self, component: Component) -> dict[str, str]:
        app, role = APPS[component]
        return {
            **self.labels,
            **MANAGED_BY,
            NAME_LABEL: app,
            COMPONENT_LABEL: role,
            STACK_LABEL: component,
        }

    def meta(self, name: str, component: Component, annotations: Mapping[str, str] | None = None) -> Object:
        meta: Object = {"name": name, "namespace": self.namespace, "labels": self.labels_for(component)}
        if annotations:
            meta["annotations"] = dict(annotations)
        return meta


def selector(component: Component) -> dict[str, str]:
    """Pods of one component. ``managed-by: labctl`` is in it because the admission policy stops
    learners from creating objects with that label: a pod of theirs cannot join our Services."""
    return {**MANAGED_BY, STACK_LABEL: component}


def config_hash(*texts: str) -> str:
    """A short digest of configuration text, put on a pod template so a change rolls the pod."""
    digest = hashlib.sha256()
    for text in texts:
        digest.update(text.encode())
    return digest.hexdigest()[:16]


def container_security() -> Object:
    """Pod Security ``restricted`` for one container, plus a read-only root filesystem."""
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def http_get(path: str, port: str) -> Object:
    return {"httpGet": {"path": path, "port": port}}


def tcp_socket(port: str) -> Object:
    """For liveness where a server has no second health path: the process still accepts."""
    return {"tcpSocket": {"port": port}}


def readiness(check: Object) -> Object:
    """Readiness, "can it serve now?": asked often, given up on soon. An unready pod only leaves
    its Service's endpoints until it answers again; nothing is restarted."""
    return {**check, "periodSeconds": 10, "timeoutSeconds": 3, "failureThreshold": 3}


def liveness(check: Object) -> Object:
    """Liveness, "is the process wedged?": asked rarely, waited for. A restart loses the work in
    hand and piles the load onto a cold start, so a server merely busy must survive: it takes
    2.5 minutes without an answer (5 misses, 10 s allowed each) to restart one. The check must
    differ from readiness: with the same one, a server kept busy long enough is restarted too."""
    return {**check, "periodSeconds": 30, "timeoutSeconds": 10, "failureThreshold": 5}


def startup(check: Object, *, within_s: int) -> Object:
    """For a slow start: liveness and readiness wait until this passes, for up to ``within_s``."""
    return {**check, "periodSeconds": 3, "timeoutSeconds": 3, "failureThreshold": within_s // 3}


@dataclass(frozen=True)
class Disk:
    """A container's ephemeral storage: what it usually writes (request), the most it may (limit)."""

    request: str
    limit: str


def disk_for(request: str, logs: str, *volumes: Object) -> Disk:
    """``request`` and a limit of ``logs`` (room for the container's logs) plus the size limit
    of every disk-backed emptyDir among ``volumes``, the ones the container writes to.

    The kubelet evicts a pod whose logs, writable layers and emptyDirs together pass the sum of
    its containers' limits: an emptyDir's size must be in a limit, or the pod is evicted before
    the emptyDir is full. Claims and memory-backed emptyDirs are not the node's disk.
    """
    total = parse_quantity(logs) + sum(
        (
            parse_quantity(v["emptyDir"]["sizeLimit"])
            for v in volumes
            if "emptyDir" in v and v["emptyDir"].get("medium") != "Memory"
        ),
        Decimal(0),
    )
    return Disk(request, f"{math.ceil(total / 2**20)}Mi")


def container(
    name: str,
    image: str,
    resources: Resources,
    *,
    command: list[str] | None = None,
    args: list[str] | None = None,
    ports: Iterable[tuple[str, int]] = (),
    env: Iterable[Object] = (),
    env_from: Iterable[Object] = (),
    mounts: Iterable[tuple[str, str, bool]] = (),
    probes: Mapping[str, Object] | None = None,
    disk: Disk,
) -> Object:
    """A container spec. ``mounts`` are (volume, path, read-only); ``probes`` maps e.g.
    ``readinessProbe`` to a probe; ``disk`` is its ephemeral storage (no container goes without:
    the learner's quota counts it)."""
    spec: Object = {"name": name, "image": image, "imagePullPolicy": "IfNotPresent"}
    if command:
        spec["command"] = list(command)
    if args:
        spec["args"] = list(args)
    if port_specs := [{"name": n, "containerPort": p, "protocol": "TCP"} for n, p in ports]:
        spec["ports"] = port_specs
    if env := copy.deepcopy(list(env)):
        spec["env"] = env
    if env_from := copy.deepcopy(list(env_from)):
        spec["envFrom"] = env_from
    spec["resources"] = amounts = resources.as_dict()
    amounts["requests"]["ephemeral-storage"] = disk.request
    amounts["limits"]["ephemeral-storage"] = disk.limit
    if mount_specs := [{"name": v, "mountPath": p, "readOnly": ro} for v, p, ro in mounts]:
        spec["volumeMounts"] = mount_specs
    # One deepcopy per probe: a single deepcopy would keep sub-dicts shared between two probes.
    spec.update({kind: copy.deepcopy(probe) for kind, probe in (probes or {}).items()})
    spec["securityContext"] = container_security()
    return spec


def pod_spec(
    stack: Stack,
    containers: list[Object],
    volumes: list[Object],
    *,
    init_containers: list[Object] | None = None,
    service_account: str | None = None,
) -> Object:
    """A restricted pod. Only a pod given a ServiceAccount gets an API token."""
    settings = stack.settings
    spec: Object = {
        "automountServiceAccountToken": service_account is not None,
        # Service links would put a variable per Service of the learner's namespace into our
        # containers (e.g. MLFLOW_PORT=tcp://...); none of our servers wants them.
        "enableServiceLinks": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": settings.run_as_user,
            "runAsGroup": settings.fs_group,
            "fsGroup": settings.fs_group,
            "fsGroupChangePolicy": "OnRootMismatch",
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }
    if service_account is not None:
        spec["serviceAccountName"] = service_account
    if settings.node_selector:
        spec["nodeSelector"] = dict(settings.node_selector)
    if init_containers:
        spec["initContainers"] = init_containers
    spec["containers"] = containers
    spec["volumes"] = volumes
    return spec


def deployment(
    stack: Stack, component: Component, spec: Object, *, annotations: Mapping[str, str] | None = None
) -> Object:
    """One replica, replaced with Recreate: the data volumes are ReadWriteOnce and a second pod
    of a sqlite or posix-backed server would corrupt what the first one writes."""
    template_meta: Object = {"labels": stack.labels_for(component)}
    if annotations:
        template_meta["annotations"] = dict(annotations)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": stack.meta(component, component),
        "spec": {
            "replicas": 1,
            "revisionHistoryLimit": 2,  # hundreds of learners: keep etcd small
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": selector(component)},
            "template": {"metadata": template_meta, "spec": spec},
        },
    }


def service(stack: Stack, component: Component, ports: Iterable[tuple[str, int]]) -> Object:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": stack.meta(component, component),
        "spec": {
            "type": "ClusterIP",
            "selector": selector(component),
            "ports": [
                {"name": name, "port": port, "targetPort": name, "protocol": "TCP"} for name, port in ports
            ],
        },
    }


def data_volume(stack: Stack, component: Component, volume: str, size: str) -> tuple[Object, list[Object]]:
    """A volume that outlives the pod (a claim), unless the settings turn persistence off.

    Returns the pod's volume and the objects to create for it (the claim, or nothing)."""
    claim_name = f"{component}-data"
    if not stack.settings.persistence:
        return scratch_volume(volume, size), []
    spec: Object = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}}
    if stack.settings.storage_class is not None:
        spec["storageClassName"] = stack.settings.storage_class
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": stack.meta(claim_name, component),
        "spec": spec,
    }
    return {"name": volume, "persistentVolumeClaim": {"claimName": claim_name}}, [claim]


def scratch_volume(volume: str, size: str) -> Object:
    """An emptyDir capped at ``size``: the kubelet evicts a pod that writes past it."""
    return {"name": volume, "emptyDir": {"sizeLimit": size}}


def config_map_volume(volume: str, config_map: str, *, optional: bool = False) -> Object:
    source: Object = {"name": config_map}
    if optional:
        source["optional"] = True
    return {"name": volume, "configMap": source}


def config_map(stack: Stack, component: Component, name: str, data: Mapping[str, str]) -> Object:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": stack.meta(name, component),
        "data": dict(data),
    }


def egress_policy(stack: Stack, component: Component, rules: Iterable[Object]) -> Object:
    """What the component's pods may connect to: ``rules`` and nothing else (none: no connection).

    It selects by :func:`selector`, which a learner's pod cannot match (admission), so a learner
    cannot give their own pods a stack's egress. See labctl.provision.egress for the learner's pods.
    """
    name = f"labctl-egress-{component}"
    pods = {"matchLabels": selector(component)}
    return network.network_policy(name, stack.namespace, stack.labels_for(component), pods, list(rules))
