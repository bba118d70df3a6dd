"""DVC checks: the learner's data is tracked, pushed, their pipeline current and reproducible.

Each check grades a commit of the submitted repository (``repo``: a path, git URL or
bundle; ``rev``) in a scratch clone, with the real `dvc`. The remote is read with the
grader's own key pair, named by environment variables (``access_key_env``), so no secret
ever sits in a lab definition.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from dvc_data.hashfile.hash import file_md5
from pydantic import Field

from graders import _dvc_repo as repo_
from graders import _dvc_repro
from graders._dvc_repo import Clone, LearnerProblem, Out
from graders.core import Context, GraderError, Outcome, Params, check


class RepoParams(Params):
    repo: str = Field(description="the submitted repository: a local path, a git URL or a bundle file")
    rev: str = Field("HEAD", pattern=r"^[^-\s]\S*$", description="the commit, branch or tag to grade")


class TrackedParams(RepoParams):
    paths: tuple[str, ...] = Field(min_length=1, description="paths that must be tracked by DVC")


class RemoteParams(RepoParams):
    remote: str | None = Field(None, description="the repository's remote to check (default: its default)")
    url: str | None = Field(None, description="the remote URL to check instead of the configured one")
    endpoint_url: str | None = Field(None, description="S3 endpoint the grader reaches the remote at")
    region: str = "us-east-1"
    access_key_env: str = Field("AWS_ACCESS_KEY_ID", description="grader env var holding the access key")
    secret_key_env: str = Field("AWS_SECRET_ACCESS_KEY", description="grader env var holding the secret key")
    credentials_secret: str | None = Field(
        None,
        description="a Secret in the learner's namespace holding AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
        "(their own store's keys, e.g. object-store-credentials), read with the grader's rights; "
        "instead of the *_env variables",
    )


class MetricsParams(RemoteParams):
    keys: tuple[str, ...] = Field((), description="metrics to compare (default: every numeric one)")
    tolerance: float = Field(0.01, ge=0, description="largest absolute difference accepted")


def _failed(problem: LearnerProblem, **evidence: Any) -> Outcome:
    return Outcome(passed=False, feedback=problem.feedback, evidence={**evidence, **problem.evidence})


# --- dvc.tracked ------------------------------------------------------------------------


@check("dvc.tracked", TrackedParams)
def tracked(ctx: Context, params: TrackedParams) -> Outcome:
    """Paths are tracked by DVC at the revision and their recorded md5 matches the data."""
    try:
        with repo_.clone(params.repo, params.rev, ctx) as clone:
            outs = repo_.outs_at(clone.root, ctx)
            in_git = set(repo_.git_files(clone.root, ctx))
            workspace = _learner_workspace(params.repo, clone)
            problems, verified, found = [], [], {}
            for path in (p.removeprefix("./").rstrip("/") for p in params.paths):
                out = next((o for o in outs if o.covers(path)), None)
                if out is None:
                    problems.append(_untracked(path, in_git))
                    continue
                found[path] = {"recorded_in": out.source, "md5": out.md5}
                if issue := _integrity(out, path in in_git, workspace):
                    problems.append(issue)
                elif workspace is not None and (workspace / out.path).exists():
                    verified.append(path)
    except LearnerProblem as problem:
        return _failed(problem)
    evidence = {"commit": clone.commit, "tracked": found, "workspace_verified": verified}
    if problems:
        return Outcome(passed=False, feedback="; ".join(problems), evidence=evidence)
    checked = " and match the workspace" if len(verified) == len(params.paths) else ""
    return Outcome(
        passed=True, feedback=f"{', '.join(params.paths)} tracked by DVC{checked}", evidence=evidence
    )


def _untracked(path: str, in_git: set[str]) -> str:
    if path in in_git:
        return (
            f"{path} is committed to git, not tracked by DVC: `git rm --cached {path}`, then `dvc add {path}`"
        )
    return f"{path} is not tracked by DVC at this commit: run `dvc add {path}` and commit {path}.dvc"


def _learner_workspace(repo: str, clone: Clone) -> Path | None:
    """The learner's own working copy, when ``repo`` is one checked out at the graded commit.

    Only read (hashed), never written: this is how edits made after `dvc add` show up.
    """
    path = Path(repo)
    return path if (path / ".dvc").is_dir() and clone.source_head == clone.commit else None


def _integrity(out: Out, also_in_git: bool, workspace: Path | None) -> str | None:
    if out.md5 is None:
        return f"{out.source} records no md5 for {out.path}: run `dvc commit` and commit {out.source}"
    if also_in_git:
        return f"{out.path} is committed to git as well as DVC: run `git rm --cached {out.path}`"
    if workspace is None or not (workspace / out.path).exists():
        return None
    actual = content_md5(workspace / out.path, out.hash_name)
    if actual == out.md5:
        return None
    fix = f"`dvc repro {out.stage}`" if out.stage else f"`dvc add {out.path}`"
    return (
        f"{out.path} changed since DVC recorded it: {out.source} records md5 {out.md5} but the file has "
        f"{actual}: run {fix} and commit {out.source}"
    )


def content_md5(path: Path, hash_name: str) -> str:
    """DVC's hash of a file, or of a directory (the md5 of its sorted JSON manifest + ``.dir``)."""
    if not path.is_dir():
        return str(file_md5(str(path), name=hash_name))
    entries = sorted(
        (
            {"md5": str(file_md5(str(f), name=hash_name)), "relpath": f.relative_to(path).as_posix()}
            for f in path.rglob("*")
            if f.is_file()
        ),
        key=lambda e: e["relpath"],
    )
    manifest = json.dumps(entries, sort_keys=True).encode()
    return hashlib.md5(manifest, usedforsecurity=False).hexdigest() + ".dir"


# --- dvc.remote_complete ----------------------------------------------------------------


@check("dvc.remote_complete", RemoteParams)
def remote_complete(ctx: Context, params: RemoteParams) -> Outcome:
    """The DVC remote holds an object for every output tracked at the revision."""
    try:
        with repo_.clone(params.repo, params.rev, ctx) as clone:
            outs = [o for o in repo_.outs_at(clone.root, ctx) if o.cache and o.push and o.md5]
            remote = repo_.resolve_remote(
                clone.root, name=params.remote, url=params.url, endpoint_url=params.endpoint_url
            )
        store = repo_.Store(remote, _credentials(params, ctx), params.region, ctx)
        missing = [o for o in outs if not store.holds(o)]
    except LearnerProblem as problem:
        return _failed(problem)
    evidence = {"commit": clone.commit, "remote": remote.url, "outputs": len(outs)}
    evidence["missing"] = [{"path": o.path, "md5": o.md5, "recorded_in": o.source} for o in missing]
    if not outs:
        return Outcome(
            passed=False, feedback="no DVC-tracked data at this commit: `dvc add` it", evidence=evidence
        )
    if missing:
        what = "; ".join(
            f"{o.source} records md5 {o.md5} for {o.path} but the remote has no object for it"
            for o in missing
        )
        return Outcome(passed=False, feedback=f"{what}: run `dvc push`", evidence=evidence)
    return Outcome(
        passed=True, feedback=f"all {len(outs)} DVC outputs are on {remote.url}", evidence=evidence
    )


def _credentials(params: RemoteParams, ctx: Context) -> dict[str, str]:
    """The key pair as the AWS variables DVC and botocore read: the learner's own store's (from
    ``credentials_secret`` in their namespace), else the grader's (from its environment)."""
    if params.credentials_secret:
        return _secret_credentials(params.credentials_secret, ctx)
    values = {}
    for target, source in (
        ("AWS_ACCESS_KEY_ID", params.access_key_env),
        ("AWS_SECRET_ACCESS_KEY", params.secret_key_env),
    ):
        if not os.environ.get(source):
            raise GraderError(f"the grader has no object-store credentials: ${source} is not set")
        values[target] = os.environ[source]
    return values


def _secret_credentials(name: str, ctx: Context) -> dict[str, str]:
    if ctx.kube is None or not ctx.namespace:
        raise GraderError(f"credentials_secret {name}: the grader has no cluster connection to read it")
    try:
        secret = ctx.kube.get("v1", "Secret", name, ctx.namespace)
    except Exception as exc:  # the API server or our rights: ours to fix
        raise GraderError(f"could not read Secret {ctx.namespace}/{name}: {exc}") from exc
    data = (secret or {}).get("data") or {}
    keys = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
    if secret is None or not all(k in data for k in keys):
        raise GraderError(f"Secret {ctx.namespace}/{name} with {' and '.join(keys)} not found")
    return {k: base64.b64decode(data[k]).decode() for k in keys}


# --- a clone with the learner's data pulled ---------------------------------------------


def _pull(clone: Clone, params: RemoteParams, ctx: Context) -> dict[str, str]:
    """Point the clone at the remote and `dvc pull` what it has; returns the env for `dvc`."""
    remote = repo_.resolve_remote(
        clone.root, name=params.remote, url=params.url, endpoint_url=params.endpoint_url
    )
    creds = _credentials(params, ctx)
    # Before `dvc pull`, whose errors do not tell a missing bucket (theirs) from a store down (ours).
    repo_.Store(remote, creds, params.region, ctx)
    repo_.use_remote(clone, remote, params.region)
    env = repo_.dvc_env(clone, creds)
    # NB: --allow-missing: what is not on the remote shows up in `dvc status` and is named there.
    pulled = repo_.dvc(clone, ctx, "pull", "--allow-missing", "--quiet", env=env, at_most=300)
    if pulled.returncode != 0:
        raise GraderError(f"`dvc pull` from {remote.url} failed: {repo_.tail(pulled, 4)}")
    return env


# --- dvc.pipeline_up_to_date ------------------------------------------------------------


@check("dvc.pipeline_up_to_date", RemoteParams)
def pipeline_up_to_date(ctx: Context, params: RemoteParams) -> Outcome:
    """`dvc status` reports every pipeline stage up to date at the revision."""
    try:
        with repo_.clone(params.repo, params.rev, ctx) as clone:
            never_run = _never_run_stages(clone, ctx)
            env = _pull(clone, params, ctx)
            proc = repo_.dvc(clone, ctx, "status", "--json", env=env, at_most=120)
            if proc.returncode != 0:
                raise LearnerProblem(f"`dvc status` fails at this commit: {repo_.tail(proc, 4)}")
            status = _json(proc.stdout, "dvc status")
    except LearnerProblem as problem:
        return _failed(problem)
    stale, unverifiable, unpushed = classify_status(status)
    evidence = {"commit": clone.commit, "status": status, "not_on_remote": unpushed}
    problems = [
        f"stage {s} has never run (it is not in dvc.lock): run `dvc repro` and commit dvc.lock"
        for s in never_run
    ]
    problems += [
        f"stage {s} is out of date ({', '.join(why)}): run `dvc repro` and commit dvc.lock"
        for s, why in stale.items()
        if s not in never_run
    ]
    problems += [
        f"cannot check stage {s}: {', '.join(paths)} not on the remote: run `dvc push`"
        for s, paths in unverifiable.items()
        if s not in never_run and s not in stale
    ]
    if problems:
        return Outcome(passed=False, feedback="; ".join(problems), evidence=evidence)
    note = f" (but not on the remote: {', '.join(unpushed)})" if unpushed else ""
    return Outcome(
        passed=True, feedback=f"pipeline up to date at {clone.commit[:12]}{note}", evidence=evidence
    )


def _never_run_stages(clone: Clone, ctx: Context) -> list[str]:
    """Stages of dvc.yaml files with no entry in the dvc.lock beside them (status names)."""
    files = repo_.git_files(clone.root, ctx, "dvc.yaml", "*/dvc.yaml")
    if not files:
        raise LearnerProblem(
            "no pipeline at this commit: define stages with `dvc stage add` and commit dvc.yaml"
        )
    missing = []
    for name in files:
        defined = (repo_.load_yaml(clone.root / name, name).get("stages") or {}).keys()
        lock = (clone.root / name).with_name("dvc.lock")
        locked = (repo_.load_yaml(lock, lock.name).get("stages") or {}).keys() if lock.is_file() else []
        prefix = "" if name == "dvc.yaml" else f"{name}:"
        # foreach/matrix stages are locked as name@key
        missing += [
            prefix + s for s in defined if s not in locked and not any(k.startswith(f"{s}@") for k in locked)
        ]
    return missing


def classify_status(status: dict[str, Any]) -> tuple[dict[str, list[str]], dict[str, list[str]], list[str]]:
    """Split `dvc status --json` into stale stages (why), stages whose inputs are missing, and
    outputs that are simply not on the remote (a `dvc push` problem, not a stale pipeline)."""
    stale: dict[str, list[str]] = {}
    unverifiable: dict[str, list[str]] = {}
    unpushed: list[str] = []
    for stage, changes in status.items():
        for change in changes:
            if isinstance(change, str):
                if change != "always changed":
                    stale.setdefault(stage, []).append(
                        change.replace("changed command", "its command changed")
                    )
                continue
            for kind, paths in change.items():
                for path, state in paths.items():
                    if kind == "changed deps" and state == "deleted":
                        unverifiable.setdefault(stage, []).append(path)
                    elif kind == "changed outs" and state in ("not in cache", "deleted"):
                        unpushed.append(path)
                    elif isinstance(state, dict):  # params: {"train.seed": "modified"}
                        stale.setdefault(stage, []).extend(
                            f"param {k} in {path} {v}" for k, v in state.items()
                        )
                    else:
                        stale.setdefault(stage, []).append(f"{path} {state}")
    return stale, unverifiable, unpushed


def _json(text: str, what: str) -> Any:
    try:
        return json.loads(text or "{}")
    except ValueError:
        raise GraderError(f"{what} printed something that is not JSON: {text[:200]!r}") from None


# --- dvc.metrics_reproduce --------------------------------------------------------------


@check("dvc.metrics_reproduce", MetricsParams)
def metrics_reproduce(ctx: Context, params: MetricsParams) -> Outcome:
    """`dvc repro` in a clean clone reproduces the committed metrics within a tolerance.

    The learner's stages run in the grader's sandbox (labctl.sandbox), never as the grader.
    """
    try:
        with repo_.clone(params.repo, params.rev, ctx) as clone:
            env = _pull(clone, params, ctx)
            shown = _metrics_shown(clone, ctx, env)
            committed = flatten_metrics(shown)
            if not committed:
                raise LearnerProblem(
                    "no metrics at this commit: list your metrics file under `metrics:` in dvc.yaml"
                )
            ran = _dvc_repro.repro(clone, ctx, metric_files(shown))
            reproduced = flatten_metrics(_metrics_shown(clone, ctx, env))
    except LearnerProblem as problem:
        return _failed(problem)
    keys = params.keys or tuple(k for k, v in committed.items() if _is_number(v))
    problems = compare_metrics(committed, reproduced, keys, params.tolerance)
    evidence = {
        "commit": clone.commit,
        "committed": committed,
        "reproduced": reproduced,
        "keys": list(keys),
        "sandbox": ran.where,
    }
    if problems:
        return Outcome(passed=False, feedback="; ".join(problems), evidence=evidence)
    shown_keys = ", ".join(f"{k} {reproduced[k]:g}" for k in keys)
    return Outcome(
        passed=True,
        feedback=f"`dvc repro` reproduces {shown_keys} (±{params.tolerance:g})",
        evidence=evidence,
    )


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def compare_metrics(
    committed: dict[str, Any], reproduced: dict[str, Any], keys: tuple[str, ...], tolerance: float
) -> list[str]:
    problems = []
    for key in keys:
        old: Any = committed.get(key)
        new: Any = reproduced.get(key)
        if not _is_number(old):
            problems.append(
                f"metric {key} is not in the committed metrics (found: {', '.join(committed) or 'none'})"
            )
        elif not _is_number(new):
            problems.append(f"metric {key} is missing after `dvc repro`")
        elif abs(new - old) > tolerance:
            problems.append(f"{key} {new:g} differs from the committed {old:g} by more than {tolerance:g}")
    return problems


def _metrics_shown(clone: Clone, ctx: Context, env: dict[str, str]) -> dict[str, Any]:
    """`dvc metrics show --json` in the clone (reads files; runs none of the learner's code)."""
    proc = repo_.dvc(clone, ctx, "metrics", "show", "--json", env=env, at_most=120)
    if proc.returncode != 0:
        raise LearnerProblem(f"`dvc metrics show` fails at this commit: {repo_.tail(proc, 4)}")
    shown: dict[str, Any] = _json(proc.stdout, "dvc metrics show")
    return shown


def metric_files(shown: dict[str, Any]) -> list[str]:
    """The metrics files `dvc metrics show --json` read, repository-relative."""
    return list(((shown.get("") or {}).get("data") or {}).keys())


def flatten_metrics(shown: dict[str, Any]) -> dict[str, Any]:
    """``{"": {"data": {"metrics.json": {"data": {"a": {"b": 1}}}}}}`` → ``{"a.b": 1}``; with several
    metrics files the keys are ``file:a.b``."""
    files = {name: body.get("data") or {} for name, body in ((shown.get("") or {}).get("data") or {}).items()}
    flat: dict[str, Any] = {}
    for name, data in files.items():
        prefix = f"{name}:" if len(files) > 1 else ""
        stack: list[tuple[str, Any]] = [(prefix, data)]
        while stack:
            key, value = stack.pop()
            if isinstance(value, dict):
                stack += [(f"{key}{k}" if key in ("", prefix) else f"{key}.{k}", v) for k, v in value.items()]
            else:
                flat[key] = value
    return flat
