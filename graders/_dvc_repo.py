"""The plumbing under the DVC checks: a scratch clone, the `dvc` CLI, what a revision tracks.

Checks never run `dvc` in the learner's directory: it writes state under ``.dvc/tmp`` and
`repro` rewrites outputs. They clone the submitted repository (a path, a git URL or a
bundle) into a temporary directory and run there, each command in its own process group
so a timeout also ends the learner's stage commands that `dvc repro` started.
"""

from __future__ import annotations

import json
import os
import posixpath
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import botocore.session
import yaml
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, ConnectionError, ConnectTimeoutError
from configobj import ConfigObj  # DVC's own config format; a dependency of dvc

from graders.core import Context, GraderError, NoRoute, TransientGraderError

DVC = (sys.executable, "-m", "dvc")
# NB: never prompt for a password (a private URL would hang the check until its deadline).
GIT_ENV = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}


class LearnerProblem(Exception):
    """Something in the learner's repository that fails the check; the message is the feedback."""

    def __init__(self, feedback: str, **evidence: Any) -> None:
        super().__init__(feedback)
        self.feedback, self.evidence = feedback, evidence


@dataclass(frozen=True)
class Clone:
    root: Path
    commit: str
    home: Path  # scratch HOME and DVC config/cache dirs, so no host-wide DVC config leaks in
    source_head: str  # the commit the cloned repository had checked out


def run(
    cmd: list[str], *, cwd: Path, ctx: Context, at_most: float, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` bounded by the check's deadline; on timeout end its whole process group."""
    timeout = ctx.remaining(at_most=at_most)
    proc = subprocess.Popen(
        cmd,
        cwd=cwd,
        env=dict(env) if env is not None else None,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise GraderError(f"`{' '.join(cmd[-3:])}` did not finish within {timeout:.0f}s") from None
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def tail(proc: subprocess.CompletedProcess[str], lines: int = 8) -> str:
    text = (proc.stderr or "") + (proc.stdout or "")
    return "\n".join(text.strip().splitlines()[-lines:])


@contextmanager
def clone(repo: str, rev: str, ctx: Context) -> Iterator[Clone]:
    """A scratch clone of ``repo`` checked out (detached) at ``rev``; removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="labctl-dvc-") as scratch:
        root, home = Path(scratch) / "repo", Path(scratch) / "home"
        home.mkdir()
        source = _submitted_bundle(repo, ctx, Path(scratch)) if repo.startswith(SUBMISSION) else repo
        cmd = ["git", "clone", "--quiet", "--no-checkout", "--", source, str(root)]
        cloned = run(cmd, cwd=home, ctx=ctx, at_most=120, env=GIT_ENV)
        if cloned.returncode != 0:
            raise LearnerProblem(f"could not clone the repository {repo}: {tail(cloned, 3)}", repo=repo)
        source_head = _commit_of(root, ctx, "HEAD")
        # A branch other than the source's checked-out one is origin/<name> in the clone.
        commit = _commit_of(root, ctx, rev) or _commit_of(root, ctx, f"origin/{rev}")
        if not commit:
            raise LearnerProblem(
                f"revision {rev!r} not found in {repo}: did you commit and push it?", rev=rev
            )
        git(root, ctx, "-c", "advice.detachedHead=false", "checkout", "--quiet", commit)
        yield Clone(root, commit, home, source_head)


SUBMISSION = "submission:"  # repo "submission:<lab>": the learner's latest `labctl lab submit`


def _submitted_bundle(repo: str, ctx: Context, scratch: Path) -> str:
    """Download the learner's latest submitted bundle of a lab from their own object store."""
    lab = repo.removeprefix(SUBMISSION)
    if ctx.fetch_submission is None or ctx.kube is None or not ctx.namespace:
        raise GraderError(f"repo {repo}: reading a submission needs the cluster and the learner's namespace")
    path = scratch / "submission.bundle"
    try:
        ctx.fetch_submission(ctx, lab, path)
    except LookupError as exc:
        raise LearnerProblem(str(exc), repo=repo) from None
    except NoRoute as exc:
        raise TransientGraderError(f"the learner's object store is unreachable: {exc}") from None
    return str(path)


def _commit_of(root: Path, ctx: Context, rev: str) -> str:
    found = git(
        root, ctx, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}", check=False
    )
    return found.stdout.strip() if found.returncode == 0 else ""


def git(root: Path, ctx: Context, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = run(["git", *args], cwd=root, ctx=ctx, at_most=60, env=GIT_ENV)
    if check and proc.returncode != 0:
        raise GraderError(f"git {' '.join(args)} failed: {tail(proc, 3)}")
    return proc


def git_files(root: Path, ctx: Context, *patterns: str) -> list[str]:
    """Repository paths committed at the checked-out revision (optionally matching globs)."""
    return git(root, ctx, "ls-files", "-z", "--", *patterns).stdout.split("\0")[:-1]


def dvc_env(clone: Clone, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A small environment for `dvc` and the learner's stage commands it runs.

    Not the grader's own: stage commands are the learner's code and have no business with
    our kubeconfig or tokens. The venv's bin comes first so ``python`` has the lab's packages.
    """
    keep = {k: os.environ[k] for k in ("LANG", "LC_ALL", "TZ") if k in os.environ}
    return {
        **keep,
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), "/usr/local/bin", "/usr/bin", "/bin"]),
        "HOME": str(clone.home),
        "TMPDIR": str(clone.home),
        "DVC_NO_ANALYTICS": "1",
        "DVC_GLOBAL_CONFIG_DIR": str(clone.home / "dvc-global"),
        "DVC_SYSTEM_CONFIG_DIR": str(clone.home / "dvc-system"),
        "DVC_SITE_CACHE_DIR": str(clone.home / "dvc-site-cache"),
        **(extra or {}),
    }


def dvc(clone: Clone, ctx: Context, *args: str, env: Mapping[str, str], at_most: float = 300) -> Any:
    """Run ``dvc <args>`` in the clone; returns the completed process."""
    return run([*DVC, *args], cwd=clone.root, ctx=ctx, at_most=at_most, env=env)


# --- what a revision tracks -------------------------------------------------------------


@dataclass(frozen=True)
class Out:
    """One DVC-tracked output as recorded at a revision."""

    path: str  # repository-relative, posix
    md5: str | None
    hash_name: str  # "md5" (DVC 3) or "md5-dos2unix" (files written by DVC 2)
    source: str  # the file that records it: "data/iris.csv.dvc" or "dvc.lock"
    stage: str | None = None
    cache: bool = True
    push: bool = True

    @property
    def is_dir(self) -> bool:
        return bool(self.md5 and self.md5.endswith(".dir"))

    def covers(self, path: str) -> bool:
        return path == self.path or path.startswith(self.path.rstrip("/") + "/")


def outs_at(root: Path, ctx: Context) -> list[Out]:
    """Every output the checked-out revision tracks: ``.dvc`` files and ``dvc.lock`` stages."""
    outs: list[Out] = []
    for name in git_files(root, ctx, "*.dvc"):
        outs += outs_of_dvcfile(name, load_yaml(root / name, name))
    for name in git_files(root, ctx, "dvc.lock", "*/dvc.lock"):
        yaml_name = posixpath.join(posixpath.dirname(name), "dvc.yaml")
        flags = out_flags(load_yaml(root / yaml_name, yaml_name)) if (root / yaml_name).is_file() else {}
        outs += outs_of_lockfile(name, load_yaml(root / name, name), flags)
    return outs


def load_yaml(path: Path, name: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise LearnerProblem(f"{name} is not valid YAML: {exc}", file=name) from None
    if not isinstance(data, dict):
        raise LearnerProblem(f"{name} is not a DVC file: expected a mapping, found a {type(data).__name__}")
    return data


def _out(entry: dict[str, Any], base: str, source: str, **extra: Any) -> Out:
    return Out(
        path=posixpath.normpath(posixpath.join(base, str(entry.get("path", "")))),
        md5=entry.get("md5"),
        # NB: DVC 3 writes `hash: md5`; an entry without it was hashed by DVC 2 (dos2unix).
        hash_name="md5" if entry.get("hash") == "md5" else "md5-dos2unix",
        source=source,
        cache=entry.get("cache", True) is not False,
        push=entry.get("push", True) is not False,
        **extra,
    )


def outs_of_dvcfile(name: str, data: Any) -> list[Out]:
    base = posixpath.dirname(name)
    return [_out(e, base, name) for e in (data.get("outs") or []) if isinstance(e, dict)]


def outs_of_lockfile(name: str, data: Any, flags: Mapping[str, dict[str, Any]]) -> list[Out]:
    """Outputs of every locked stage; ``flags`` (from dvc.yaml) say which are uncached/unpushed."""
    base = posixpath.dirname(name)
    outs = []
    for stage, body in (data.get("stages") or {}).items():
        for entry in (body or {}).get("outs") or []:
            out = _out(entry, base, name, stage=stage)
            flag = flags.get(posixpath.relpath(out.path, base or ".")) or {}
            outs.append(
                replace(
                    out, cache=flag.get("cache", True) is not False, push=flag.get("push", True) is not False
                )
            )
    return outs


def out_flags(dvc_yaml: Any) -> dict[str, dict[str, Any]]:
    """``cache``/``push`` options of dvc.yaml outputs, by path (``- metrics.json: {cache: false}``)."""
    flags: dict[str, dict[str, Any]] = {}
    for body in (dvc_yaml.get("stages") or {}).values():
        for kind in ("outs", "metrics", "plots"):
            for entry in (body or {}).get(kind) or []:
                if isinstance(entry, dict):
                    for path, opts in entry.items():
                        flags[posixpath.normpath(path)] = dict(opts or {})
    return flags


# --- the remote -------------------------------------------------------------------------


@dataclass(frozen=True)
class Remote:
    name: str
    url: str  # s3://bucket/prefix
    endpoint_url: str | None

    @property
    def bucket(self) -> str:
        return self.url.removeprefix("s3://").split("/", 1)[0]

    @property
    def prefix(self) -> str:
        parts = self.url.removeprefix("s3://").split("/", 1)
        return parts[1].strip("/") if len(parts) > 1 else ""

    def key(self, md5: str, hash_name: str) -> str:
        """Where DVC puts an object: ``files/md5/ab/cdef…`` (DVC 3), ``ab/cdef…`` (DVC 2)."""
        rel = f"{md5[:2]}/{md5[2:]}"
        rel = f"files/md5/{rel}" if hash_name == "md5" else rel
        return f"{self.prefix}/{rel}" if self.prefix else rel


def resolve_remote(root: Path, *, name: str | None, url: str | None, endpoint_url: str | None) -> Remote:
    """The remote to check: the grader's url/endpoint win over what the repository configures."""
    config = ConfigObj(str(root / ".dvc" / "config")) if (root / ".dvc" / "config").is_file() else {}
    name = name or (config.get("core") or {}).get("remote")
    section = (config.get(f'remote "{name}"') or {}) if name else {}
    if url is None:
        if not name:
            raise LearnerProblem(
                "no default DVC remote is configured: run `dvc remote add -d <name> s3://<bucket>/<path>` "
                "and commit .dvc/config"
            )
        url = section.get("url")
        if not url:
            raise LearnerProblem(f"DVC remote {name!r} is not configured in .dvc/config", remote=name)
    if not url.startswith("s3://"):
        raise LearnerProblem(
            f"DVC remote {name or 'default'!r} is {url}: this lab's remote is an S3 bucket (s3://…)"
        )
    return Remote(name or "grader", url, endpoint_url or section.get("endpointurl"))


def use_remote(clone: Clone, remote: Remote, region: str) -> None:
    """Point the clone's DVC at ``remote`` (in ``.dvc/config.local``: the clone is ours)."""
    local = ConfigObj()
    local.filename = str(clone.root / ".dvc" / "config.local")
    local["core"] = {"remote": remote.name}
    section: dict[str, str] = {"url": remote.url, "region": region}
    if remote.endpoint_url:
        section["endpointurl"] = remote.endpoint_url
    local[f'remote "{remote.name}"'] = section
    local.write()


class Store:
    """Read-only access to the learner's S3 remote with the grader's credentials."""

    def __init__(self, remote: Remote, creds: Mapping[str, str], region: str, ctx: Context) -> None:
        timeout = ctx.remaining(at_most=30)
        self.remote, self.ctx = remote, ctx
        try:
            endpoint = ctx.reach(remote.endpoint_url) if remote.endpoint_url else None
        except NoRoute as exc:
            raise TransientGraderError(f"object store at {remote.endpoint_url} unreachable: {exc}") from None
        self.client = botocore.session.get_session().create_client(
            "s3",
            endpoint_url=endpoint,
            region_name=region,
            aws_access_key_id=creds["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=creds["AWS_SECRET_ACCESS_KEY"],
            config=Config(
                connect_timeout=min(5.0, timeout),
                read_timeout=timeout,
                retries={"max_attempts": 2, "mode": "standard"},
                s3={"addressing_style": "path"},
            ),
        )
        if self._call("head_bucket", Bucket=remote.bucket) is None:
            raise LearnerProblem(
                f"the bucket of remote {remote.url} does not exist: check the URL in .dvc/config",
                remote=remote.url,
            )

    def holds(self, out: Out) -> bool:
        assert out.md5 is not None
        key = self.remote.key(out.md5, out.hash_name)
        if not out.is_dir:
            return self._call("head_object", Bucket=self.remote.bucket, Key=key) is not None
        # A directory is a manifest object plus one object per file in it.
        got = self._call("get_object", Bucket=self.remote.bucket, Key=key)
        if got is None:
            return False
        entries = json.loads(got["Body"].read())
        return all(
            self._call("head_object", Bucket=self.remote.bucket, Key=self.remote.key(e["md5"], out.hash_name))
            is not None
            for e in entries
        )

    def _call(self, op: str, **kwargs: Any) -> Any:
        """The response, or None for a missing object/bucket; other failures are ours."""
        try:
            return getattr(self.client, op)(**kwargs)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("404", "NoSuchKey", "NoSuchBucket", "NotFound"):
                return None
            if code in ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
                raise GraderError(
                    f"the object store at {self.remote.endpoint_url} refused the grader's key pair ({code})"
                ) from None
            raise TransientGraderError(f"object store {op} failed: {code} {exc}") from None
        except (ConnectionError, ConnectTimeoutError, BotoCoreError) as exc:
            raise TransientGraderError(
                f"object store at {self.remote.endpoint_url} unreachable: {exc}"
            ) from None
