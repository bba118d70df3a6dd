"""Publishing labs into a cluster: one immutable ``Lab`` per version, hidden data beside the controller.

A Lab object carries what a learner may read (definition, README, setup objects, starter files)
and is readable by anyone signed in. The hidden grader data goes into a Secret in the controller's
namespace, which learners cannot read. A version, once published, never changes (an admission
policy enforces it): publishing the same content again is ``unchanged``; different content under
the same version is refused, naming the lab, before anything is written.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labctl.api.labs import LabSpec, lab_object_name
from labctl.api.v1alpha1 import API_VERSION
from labctl.catalog.load import LabFolder
from labctl.core.errors import UsageError
from labctl.core.labels import GROUP, MANAGED_BY
from labctl.kube import Kube
from labctl.provision.tenancy import CONTROLLER_NAMESPACE

LAB_LABEL = f"{GROUP}/lab"  # <level>.<name>: label values cannot hold '/'
VERSION_LABEL = f"{GROUP}/lab-version"
MAX_STARTER_BYTES = 256 * 1024


@dataclass(frozen=True)
class Rendered:
    lab: dict[str, Any]
    hidden: dict[str, Any] | None

    @property
    def name(self) -> str:
        return str(self.lab["metadata"]["name"])


def hidden_secret_name(lab_id: str, version: str) -> str:
    return f"lab-hidden.{lab_object_name(lab_id, version)}"


def _starter_files(folder: Path) -> dict[str, str]:
    files: dict[str, str] = {}
    root = folder / "files"
    for path in sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        rel = path.relative_to(root).as_posix()
        try:
            files[rel] = path.read_text()
        except UnicodeDecodeError:
            raise UsageError(
                f"{path}: starter files are text (learners fetch them with labctl lab files)"
            ) from None
    if sum(len(text) for text in files.values()) > MAX_STARTER_BYTES:
        raise UsageError(f"{root}: starter files exceed {MAX_STARTER_BYTES // 1024} KiB together")
    return files


def _digest(spec: dict[str, Any], hidden: dict[str, bytes]) -> str:
    """sha256 over the spec (as published) and the hidden files: what "same content" means."""
    h = hashlib.sha256(json.dumps(spec, sort_keys=True, separators=(",", ":")).encode())
    for name in sorted(hidden):
        h.update(name.encode() + b"\0" + hashlib.sha256(hidden[name]).digest())
    return f"sha256:{h.hexdigest()}"


def render(folder: LabFolder) -> Rendered:
    """The Lab object and its hidden-data Secret (None when the lab has no hidden data)."""
    lab = folder.lab
    hidden = folder.hidden_files()
    secret_name = hidden_secret_name(lab.id, lab.version) if hidden else None
    spec: dict[str, Any] = {
        "id": lab.id,
        "version": lab.version,
        "definition": lab.model_dump(by_alias=True, exclude_defaults=False, mode="json"),
        "readme": folder.readme,
        "setup": list(folder.setup),
        "files": _starter_files(folder.path),
        "hiddenSecret": secret_name,
    }
    spec["digest"] = _digest(spec, hidden)
    LabSpec.model_validate(spec)  # what the CRD will accept, checked before anything is written
    labels = {**MANAGED_BY, LAB_LABEL: lab.id.replace("/", "."), VERSION_LABEL: lab.version}
    lab_obj = {
        "apiVersion": API_VERSION,
        "kind": "Lab",
        "metadata": {"name": lab_object_name(lab.id, lab.version), "labels": labels},
        "spec": spec,
    }
    secret = None
    if secret_name:
        secret = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": secret_name, "namespace": CONTROLLER_NAMESPACE, "labels": labels},
            "type": "Opaque",
            "data": {name: base64.b64encode(data).decode() for name, data in sorted(hidden.items())},
        }
    return Rendered(lab_obj, secret)


def publish(kube: Kube, folders: Sequence[LabFolder]) -> list[tuple[str, str]]:
    """Publish every lab in ``folders`` (already validated): ``[(lab object name, action)]``.

    Refuses, writing nothing, when any version is already published with other content."""
    rendered = [render(folder) for folder in folders]
    existing = {r.name: kube.get(API_VERSION, "Lab", r.name) for r in rendered}
    clashes = [
        f"{folder.path / 'lab.yaml'}: version: {folder.lab.id} {folder.lab.version} is already published "
        "with different content; a published version never changes: bump version"
        for folder, r in zip(folders, rendered, strict=True)
        if (old := existing[r.name]) is not None and old["spec"].get("digest") != r.lab["spec"]["digest"]
    ]
    if clashes:
        raise UsageError("\n".join(clashes))
    done = []
    for r in rendered:
        if r.hidden is not None:  # first: the Lab names it
            kube.apply(r.hidden)
        if existing[r.name] is None:
            kube.apply(r.lab)
            done.append((r.name, "created"))
        else:
            done.append((r.name, "unchanged"))
    return done


def published(kube: Kube, lab_id: str | None = None) -> list[LabSpec]:
    """Published labs (every version), newest version last per lab."""
    selector = f"{LAB_LABEL}={lab_id.replace('/', '.')}" if lab_id else None
    items = kube.list(API_VERSION, "Lab", label_selector=selector)
    specs = [LabSpec.model_validate(item["spec"]) for item in items]
    return sorted(specs, key=lambda s: (s.id, tuple(int(p) for p in s.version.split("."))))


def newest(kube: Kube) -> list[LabSpec]:
    """The newest published version of every lab, by id."""
    found = {spec.id: spec for spec in published(kube)}  # oldest first: the newest wins
    return list(found.values())


def latest(kube: Kube, lab_id: str) -> LabSpec | None:
    versions = published(kube, lab_id)
    return versions[-1] if versions else None


def hidden_files(kube: Kube, spec: LabSpec) -> dict[str, bytes]:
    """The lab's hidden data, read from the controller's namespace (graders' side only)."""
    if not spec.hidden_secret:
        return {}
    secret = kube.get("v1", "Secret", spec.hidden_secret, CONTROLLER_NAMESPACE)
    if secret is None:
        raise UsageError(
            f"lab {spec.id} {spec.version}: its hidden data (Secret {CONTROLLER_NAMESPACE}/"
            f"{spec.hidden_secret}) is missing: publish the lab again"
        )
    return {name: base64.b64decode(value) for name, value in (secret.get("data") or {}).items()}
