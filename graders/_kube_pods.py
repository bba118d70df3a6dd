"""What a pod's spec and history say about its placement: pure functions of the objects, no I/O.

:mod:`graders.kube_checks` reads the objects; these judge them: which node labels a pod's spec
requires (``nodeSelector`` or required node affinity), whether a client pinned it to a node
(``spec.nodeName`` written by someone rather than bound by the scheduler), what a node's labels
lack or carry, and whether an object is newer than a moment (the session's start).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

Obj = dict[str, Any]
Labels = dict[str, str | None]  # None: the label with any value


def label_text(key: str, value: str | None) -> str:
    return key if value is None else f"{key}={value}"


def lacking(labels: dict[str, str], wanted: Labels) -> list[str]:
    """The wanted labels a node does not carry (``key=value``, or ``key`` for any value)."""
    return [
        label_text(k, v) for k, v in wanted.items() if k not in labels or (v is not None and labels[k] != v)
    ]


def carrying(labels: dict[str, str], unwanted: Labels) -> list[str]:
    """The unwanted labels a node does carry, as the node has them."""
    return [f"{k}={labels[k]}" for k, v in unwanted.items() if k in labels and (v is None or labels[k] == v)]


def _term_requires(term: Obj, key: str, value: str | None) -> bool:
    for expression in term.get("matchExpressions") or []:
        if expression.get("key") != key:
            continue
        operator, values = expression.get("operator"), expression.get("values") or []
        if value is None and (operator == "Exists" or (operator == "In" and values)):
            return True
        if value is not None and operator == "In" and values and all(v == value for v in values):
            return True
    return False


def requires_label(spec: Obj, key: str, value: str | None) -> bool:
    """Whether a pod spec lets the scheduler use only nodes with the label: by ``nodeSelector``,
    or by required node affinity whose every term (terms are ORed) asks for it."""
    selector = spec.get("nodeSelector") or {}
    if key in selector and (value is None or selector[key] == value):
        return True
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    terms = required.get("nodeSelectorTerms") or []
    return bool(terms) and all(_term_requires(term, key, value) for term in terms)


def unselected(spec: Obj, wanted: Labels) -> list[str]:
    """The wanted node labels a pod spec does not require."""
    return [label_text(k, v) for k, v in wanted.items() if not requires_label(spec, k, v)]


def _owns_node_name(entry: Obj) -> bool:
    spec = ((entry.get("fieldsV1") or {}).get("f:spec")) or {}
    return "f:nodeName" in spec


def pinned_by(pod: Obj, template: Obj | None = None) -> str | None:
    """Why a pod's node was not the scheduler's choice, or None when the scheduler bound it.

    The scheduler binds through the ``binding`` subresource, which leaves no managedFields entry;
    a pod created (or applied) with ``spec.nodeName`` names the client that wrote the field. A
    Job's template with ``nodeName`` pins every pod it makes."""
    if template is not None and ((template.get("spec") or {}).get("nodeName")):
        return f"its Job's pod template sets spec.nodeName: {template['spec']['nodeName']}"
    for entry in (pod.get("metadata") or {}).get("managedFields") or []:
        if entry.get("subresource") in (None, "") and _owns_node_name(entry):
            who = entry.get("manager") or "a client"
            return f"spec.nodeName was written by {who}, not bound by the scheduler"
    return None


def created(obj: Obj) -> dt.datetime | None:
    stamp = (obj.get("metadata") or {}).get("creationTimestamp")
    try:
        return dt.datetime.fromisoformat(stamp) if stamp else None
    except ValueError:
        return None


def older_than(obj: Obj, moment: dt.datetime) -> bool:
    """Created before ``moment``. creationTimestamp has whole seconds: an object made in the same
    second as ``moment`` counts as newer."""
    when = created(obj)
    return when is not None and when < moment.replace(microsecond=0)


def stamp(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def stale(what: str, obj: Obj, moment: dt.datetime) -> str:
    """What a learner is told about an object older than their session."""
    return (
        f"{what} was created at {stamp(created(obj) or moment)}, before your session started "
        f"({stamp(moment)}): delete it and create it again as the lab asks"
    )
