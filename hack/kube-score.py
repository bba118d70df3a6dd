#!/usr/bin/env python3
"""kube-score over every manifest labctl renders (`make lint` runs it).

    .venv/bin/python hack/kube-score.py              # render, score; exit 1 naming each failure
    .venv/bin/python hack/kube-score.py --keep DIR   # and leave the rendered files in DIR

The manifests come from labctl's own renderers, as a cluster would get them: one learner's
objects for every quota profile (and for the shipped stack settings), the install manifests
(CRDs, admission policies, controller, sandbox namespace, one sandbox Pod) and every lab's
setup objects. A test that kube-score reports at WARNING or worse fails the lint, unless
hack/kube-score.yaml ignores it (everywhere, or for named objects), with its reason: the one
place for ignores (kube-score's per-object ``kube-score/ignore`` annotations are turned off).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
CONFIG = REPO / "hack" / "kube-score.yaml"
# The kinds kube-score scores (its parser skips every other kind): each rendered one must be in
# its report, so a file it could not read fails the lint instead of passing unscored.
SCORED_KINDS = {
    "Pod", "Job", "CronJob", "Deployment", "StatefulSet", "DaemonSet", "NetworkPolicy", "Service",
    "PodDisruptionBudget", "Ingress", "HorizontalPodAutoscaler",
}  # fmt: skip
SECTIONS = ("ignore", "enable", "ignore_objects")
WARNING = 5  # kube-score's grades: 1 critical, 5 warning, 7 almost OK, 10 OK


@dataclass(frozen=True)
class ObjectIgnore:
    """One test switched off for the objects of one kind and name (in any namespace)."""

    test: str
    kind: str
    name: str
    reason: str

    def __str__(self) -> str:
        return f"{self.test} on {self.kind} {self.name}"


@dataclass(frozen=True)
class Config:
    """Tests switched off (``ignore``), for some objects only (``ignore_objects``), and optional
    tests switched on (``enable``), each with why."""

    ignore: dict[str, str]
    enable: dict[str, str]
    objects: tuple[ObjectIgnore, ...] = ()


@dataclass(frozen=True)
class Failure:
    file: str
    kind: str
    namespace: str
    name: str
    test: str  # kube-score's test id
    grade: str
    detail: str

    def __str__(self) -> str:
        where = f"{self.kind} {self.namespace}/{self.name}"
        return f"{self.file}: {where}: {self.test} [{self.grade}] {self.detail}"

    def ignored_by(self, entry: ObjectIgnore) -> bool:
        return (self.test, self.kind, self.name) == (entry.test, entry.kind, entry.name)


def _learner(name: str, profile: str, settings: Any = None) -> list[dict[str, Any]]:
    from labctl.provision.learner import render_learner_objects

    learner = {
        "metadata": {"name": name},
        "spec": {"cohort": "lint", "email": "ada@uni.edu", "level": "foundation", "quotaProfile": profile},
    }
    return render_learner_objects(learner, key=b"lint", stack_settings=settings)


def _sandbox_pod() -> dict[str, Any]:
    """One run's Pod, as the in-cluster grader makes it (its namespace's policies need a pod to select)."""
    from labctl.provision.install import DEFAULT_IMAGE
    from labctl.sandbox import pod
    from labctl.sandbox._common import Limits

    request = pod.Request(
        name="labctl-sandbox-0a1b2c", nonce="0" * 16, image=DEFAULT_IMAGE, uid=pod.UID_BASE + 1,
        argv=("python", "train.py"), env=(("HOME", "/scratch/home"),), limits=Limits(), wall_s=120,
        input_names=("test.csv",),
    )  # fmt: skip
    return pod.render_pod(request)


def render_manifests() -> dict[str, list[dict[str, Any]]]:
    """File name -> the objects labctl renders for it."""
    from labctl.catalog.load import load_catalog
    from labctl.provision.install import DEFAULT_IMAGE, render_install
    from labctl.provision.quota import PROFILES
    from labctl.provision.stacks import load_stack_settings

    files = {f"learner-{p}.yaml": _learner(f"lint-{p}", p) for p in PROFILES}
    # What the shipped settings change in a stack: images, a node selector; no claims on a sim.
    shipped = {
        "local-images": load_stack_settings(REPO / "manifests/stack-settings/local-images.yaml"),
        "demo": load_stack_settings(REPO / "hack/demo/stack-settings.yaml"),
    }
    for name, settings in shipped.items():
        files[f"learner-small-{name}.yaml"] = _learner(f"lint-{name}", "small", settings)
    # Without claims (a cluster with no volume provisioner) the stacks' data is on the node's disk.
    no_claims = shipped["local-images"].model_copy(update={"persistence": False})
    files["learner-small-no-claims.yaml"] = _learner("lint-no-claims", "small", no_claims)
    files["install.yaml"] = [*render_install(controller=True, image=DEFAULT_IMAGE), _sandbox_pod()]
    for lab in load_catalog([REPO / "labs"]):
        if lab.setup:  # applied into a learner's namespace (sessions/reconcile.py)
            namespace = "lint-small"
            objs = [{**o, "metadata": {**o["metadata"], "namespace": namespace}} for o in lab.setup]
            files[f"lab-{lab.id.replace('/', '-')}.yaml"] = objs
    return files


def write_manifests(files: dict[str, list[dict[str, Any]]], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, objs in files.items():
        (out / name).write_text(yaml.safe_dump_all(objs, sort_keys=False))
        paths.append(out / name)
    return paths


def load_config(path: Path, known: set[str]) -> Config:
    """The ignores and enabled optional tests; each must be a known test id with a reason."""
    data = yaml.safe_load(path.read_text()) or {}
    problems = [f"{path}: unknown key {key!r} ({', '.join(SECTIONS)})" for key in data if key not in SECTIONS]
    objects = _object_ignores(path, data.get("ignore_objects") or [], known, problems)
    sections: dict[str, dict[str, str]] = {}
    for section in ("ignore", "enable"):
        entries = data.get(section) or {}
        for test, reason in entries.items():
            if test not in known:
                problems.append(f"{path}: {section}.{test}: not a kube-score test (kube-score list)")
            if not isinstance(reason, str) or not reason.strip():
                problems.append(f"{path}: {section}.{test}: say why")
        sections[section] = dict(entries)
    if problems:
        raise SystemExit("\n".join(problems))
    return Config(ignore=sections["ignore"], enable=sections["enable"], objects=objects)


def _object_ignores(
    path: Path, entries: list[Any], known: set[str], problems: list[str]
) -> tuple[ObjectIgnore, ...]:
    found = []
    for i, entry in enumerate(entries):
        where = f"{path}: ignore_objects[{i}]"
        fields = entry if isinstance(entry, dict) else {}
        if set(fields) != {"test", "kind", "name", "reason"}:
            problems.append(f"{where}: give test, kind, name and reason")
            continue
        if fields["test"] not in known:
            problems.append(f"{where}.test: {fields['test']!r} is not a kube-score test (kube-score list)")
        if not isinstance(fields["reason"], str) or not fields["reason"].strip():
            problems.append(f"{where}.reason: say why")
        found.append(ObjectIgnore(**{k: str(v) for k, v in fields.items()}))
    return tuple(found)


def known_tests(binary: Path) -> set[str]:
    out = subprocess.run([str(binary), "list"], capture_output=True, text=True, check=True).stdout
    return {line.split(",", 1)[0] for line in out.splitlines() if line}


def kubernetes_minor() -> str:
    from labctl.localcluster.toolchain.versions import KUBERNETES

    return ".".join(KUBERNETES.split(".")[:2])  # v1.36.3 -> v1.36


def score(binary: Path, paths: list[Path], config: Config) -> tuple[list[Failure], set[tuple[str, str, str]]]:
    """kube-score's failures over ``paths`` and the (kind, namespace, name) of every object it scored."""
    cmd = [
        str(binary), "score", "--output-format", "json", "--kubernetes-version", kubernetes_minor(),
        "--disable-ignore-checks-annotations", "--exit-one-on-warning",
        *(f"--ignore-test={t}" for t in config.ignore),
        *(f"--enable-optional-test={t}" for t in config.enable),
        *map(str, paths),
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError:
        raise SystemExit(f"kube-score exited {proc.returncode} without a report:\n{proc.stderr}") from None
    failures, scored = [], set()
    for obj in report or []:
        meta, kind = obj["object_meta"], obj["type_meta"]
        scored.add((kind["kind"], meta.get("namespace") or "", meta["name"]))
        for check in obj["checks"]:
            if check["skipped"] or check["grade"] > WARNING:
                continue
            grade = "CRITICAL" if check["grade"] < WARNING else "WARNING"
            for comment in check["comments"] or [{"path": "", "summary": check["check"]["name"]}]:
                path, summary = comment["path"], comment["summary"]
                detail = f"{path} -> {summary}" if path else summary
                file = f"{Path(obj['file_name']).name}:{obj['file_row']}"
                ns, name = meta.get("namespace") or "", meta["name"]
                failures.append(Failure(file, kind["kind"], ns, name, check["check"]["id"], grade, detail))
    if proc.returncode != 0 and not failures:
        raise SystemExit(f"kube-score exited {proc.returncode} but reported no failure:\n{proc.stderr}")
    return failures, scored


def unscored(files: dict[str, list[dict[str, Any]]], scored: set[tuple[str, str, str]]) -> list[str]:
    """Rendered objects of a kind kube-score scores that are missing from its report."""
    return [
        f"{name}: {o['kind']} {o['metadata'].get('namespace') or ''}/{o['metadata']['name']}"
        for name, objs in files.items()
        for o in objs
        if o["kind"] in SCORED_KINDS
        and (o["kind"], o["metadata"].get("namespace") or "", o["metadata"]["name"]) not in scored
    ]


def _order(failure: Failure) -> tuple[str, int, str]:
    name, _, row = failure.file.partition(":")
    return name, int(row or 0), failure.test


def lint(
    binary: Path,
    out: Path,
    *,
    files: dict[str, list[dict[str, Any]]] | None = None,
    config_path: Path = CONFIG,
) -> tuple[int, str]:
    """Render (or take ``files``), write them to ``out``, score them: (exit code, report text)."""
    files = render_manifests() if files is None else files
    config = load_config(config_path, known_tests(binary))
    failures, scored = score(binary, write_manifests(files, out), config)
    kept = [f for f in failures if not any(f.ignored_by(entry) for entry in config.objects)]
    lines = [str(f) for f in sorted(kept, key=_order)]
    lines += [f"{m}: not scored by kube-score (could it read the file?)" for m in unscored(files, scored)]
    # An object ignore that hides nothing is stale: the renderer changed, the reason went with it.
    lines += [
        f"{config_path.name}: ignore_objects: {entry} matched no finding: remove it"
        for entry in config.objects
        if not any(f.ignored_by(entry) for f in failures)
    ]
    total = sum(len(objs) for objs in files.values())
    summary = (
        f"kube-score: {total} objects rendered in {len(files)} files, {len(scored)} scored, "
        f"{len(config.ignore)} tests ignored, {len(failures) - len(kept)} findings ignored on "
        f"{len(config.objects)} objects ({config_path.name}), {len(lines)} failures"
    )
    return (1 if lines else 0), "\n".join([*lines, summary])


def main(argv: list[str]) -> int:
    from labctl.localcluster.toolchain.paths import binary

    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--keep", type=Path, help="write the rendered manifests here and keep them")
    args = parser.parse_args(argv)
    kube_score = binary("kube-score")
    if not kube_score.exists():
        build = ".venv/bin/labctl toolchain build --group kube-score"
        print(f"{kube_score} is missing: run {build}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="labctl-kube-score-") as scratch:
        code, report = lint(kube_score, args.keep or Path(scratch))
    print(report, file=sys.stderr if code else sys.stdout)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
