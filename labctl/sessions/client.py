"""The CLI's side of a lab session: write the learner's wish into the spec, wait for the answer.

Everything here works with a learner's own kubeconfig: it creates and patches their LabSession
(spec only) and reads its status; the controller does the rest.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from labctl.api.labs import LabSessionStatus, LabSpec, lab_object_name, session_name
from labctl.api.v1alpha1 import API_VERSION
from labctl.catalog.publish import latest, newest
from labctl.core.errors import LabctlError, UsageError
from labctl.core.suggest import did_you_mean_lab
from labctl.kube import Kube, KubeError

KIND = "LabSession"
SETTLED = ("Refused", "Ready", "Passed", "Failed", "Expired", "Stopped")


def get(kube: Kube, namespace: str, lab_id: str) -> dict[str, Any] | None:
    return kube.get(API_VERSION, KIND, session_name(lab_id), namespace)


def status_of(obj: dict[str, Any]) -> LabSessionStatus:
    return LabSessionStatus.model_validate(obj.get("status") or {})


def published_lab(kube: Kube, lab_id: str) -> LabSpec:
    spec = latest(kube, lab_id)
    if spec is None:
        raise not_published(lab_id, [s.id for s in newest(kube)])  # listed only to say what was meant
    return spec


def not_published(lab_id: str, published: Iterable[str]) -> UsageError:
    """``lab 'x' is not published ...``, with the closest published lab when one is close."""
    hint = did_you_mean_lab(lab_id, published)
    return UsageError(f"lab {lab_id!r} is not published in this cluster{hint}; labctl lab list shows what is")


def not_started(lab_id: str, started: Iterable[str]) -> UsageError:
    """``you have not started x``: the closest lab the learner did start, else how to start it."""
    hint = did_you_mean_lab(lab_id, started)
    return UsageError(f"you have not started {lab_id}{hint or f': labctl lab start {lab_id}'}")


def not_started_in(kube: Kube, namespace: str, lab_id: str) -> UsageError:
    """:func:`not_started`, hinting among the sessions in ``namespace``."""
    return not_started(lab_id, [i["spec"]["lab"] for i in kube.list(API_VERSION, KIND, namespace=namespace)])


def session_lab(kube: Kube, namespace: str, lab_id: str) -> LabSpec:
    """The lab version the learner's session runs (it keeps the one it started with)."""
    current = get(kube, namespace, lab_id)
    if current is None:
        return published_lab(kube, lab_id)
    name = lab_object_name(lab_id, current["spec"]["version"])
    lab = kube.get(API_VERSION, "Lab", name)
    if lab is None:
        raise LabctlError(f"lab {name} of your session is no longer published: ask your instructor")
    return LabSpec.model_validate(lab["spec"])


def _forbidden(exc: KubeError) -> LabctlError:
    return LabctlError(str(exc)) if exc.status != 403 else LabctlError(f"not allowed: {exc}")


def start(kube: Kube, namespace: str, lab_id: str, *, override: bool = False) -> dict[str, Any]:
    """Create the session for the lab's newest published version; a stopped, refused or expired
    one is replaced, a running one kept (idempotent)."""
    lab = published_lab(kube, lab_id)
    current = get(kube, namespace, lab_id)
    if current is not None:
        phase = status_of(current).phase
        if phase not in ("Refused", "Expired", "Stopped") and not (override and phase is None):
            return current
        kube.delete(API_VERSION, KIND, session_name(lab_id), namespace)
        kube.wait_for(
            lambda: get(kube, namespace, lab_id) is None, timeout=30, what=f"the old {lab_id} session to go"
        )
    body = {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": session_name(lab_id), "namespace": namespace},
        "spec": {"lab": lab.id, "version": lab.version, **({"override": True} if override else {})},
    }
    try:
        return kube.create(body)
    except KubeError as exc:
        raise _forbidden(exc) from None


def bump(kube: Kube, namespace: str, lab_id: str, field: str) -> int:
    """Raise ``spec.<field>`` by one (a check or reset request); returns the new value."""
    current = get(kube, namespace, lab_id)
    if current is None:
        raise not_started_in(kube, namespace, lab_id)
    wanted = int(current["spec"].get(field) or 0) + 1
    kube.patch(API_VERSION, KIND, session_name(lab_id), {"spec": {field: wanted}}, namespace=namespace)
    return wanted


def set_stopped(kube: Kube, namespace: str, lab_id: str) -> None:
    if get(kube, namespace, lab_id) is None:
        raise not_started_in(kube, namespace, lab_id)
    kube.patch(API_VERSION, KIND, session_name(lab_id), {"spec": {"stopped": True}}, namespace=namespace)


def wait(
    kube: Kube,
    namespace: str,
    lab_id: str,
    done: Callable[[LabSessionStatus], bool],
    *,
    timeout: float,
    on_change: Callable[[LabSessionStatus], None] = lambda _s: None,
) -> LabSessionStatus:
    """Poll the session's status until ``done``; ``on_change`` sees each new phase/message."""
    deadline = time.monotonic() + timeout
    last: tuple[str | None, str] | None = None
    pause = 0.05  # quick answers come back quickly; long ones are polled at most twice a second
    while True:
        obj = get(kube, namespace, lab_id)
        if obj is None:
            raise LabctlError(f"the {lab_id} session was deleted")
        status = status_of(obj)
        if (status.phase, status.message) != last:
            last = (status.phase, status.message)
            on_change(status)
        if done(status):
            return status
        if time.monotonic() > deadline:
            raise LabctlError(
                f"timed out after {timeout:.0f}s: the {lab_id} session is {status.phase or 'Pending'}"
                f"{': ' + status.message if status.message else ''} (is the labctl controller running?)"
            )
        time.sleep(pause)
        pause = min(0.5, pause * 1.5)
