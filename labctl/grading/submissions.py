"""Submissions of repository-based labs: a git bundle of HEAD in the learner's own object store.

The learner runs ``labctl lab submit`` in their repository; the bundle lands in their
``submissions`` bucket as ``<lab>/<commit>.bundle`` with ``<lab>/latest.json`` naming it.
The grader fetches it from there (:func:`fetch`) and clones it into a scratch directory:
what is graded is exactly the commit submitted, never the learner's live working tree.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import subprocess
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import botocore.session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from graders.core import Context, GraderError
from labctl.core.errors import LabctlError, UsageError
from labctl.provision.stacks.object_store import REGION, SECRET, SUBMISSIONS_BUCKET

GIT_TIMEOUT_S = 120


@dataclass(frozen=True)
class Store:
    """Where a learner's object store answers, and the key pair to sign with."""

    endpoint: str
    access_key: str
    secret_key: str

    def client(self) -> Any:
        session = botocore.session.get_session()
        return session.create_client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=REGION,
            config=Config(
                connect_timeout=5,
                read_timeout=60,
                retries={"max_attempts": 3, "mode": "standard"},
                s3={"addressing_style": "path"},
            ),
        )


@dataclass(frozen=True)
class Submission:
    lab: str
    commit: str
    key: str
    size: int
    submitted_at: str
    dirty: bool  # the working tree had uncommitted changes (not submitted)


def _git(repo: Path, *args: str) -> str:
    try:
        proc = subprocess.run(
            ["git", "-C", str(repo), *args],
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT_S,
            check=False,
        )
    except FileNotFoundError:
        raise LabctlError("git is not installed") from None
    if proc.returncode != 0:
        raise UsageError(f"{repo}: git {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout.strip()


def bundle(repo: Path, out: Path) -> tuple[str, bool]:
    """Write a bundle of HEAD (with its history) and the tags to ``out``; returns (commit, dirty).
    Tags travel too: labs grade named revisions (``v1``, ``v2``) as well as HEAD."""
    if not (repo / ".git").exists() and _git(repo, "rev-parse", "--is-inside-work-tree") != "true":
        raise UsageError(f"{repo}: not a git repository")
    try:
        commit = _git(repo, "rev-parse", "--verify", "HEAD^{commit}")
    except UsageError:
        raise UsageError(f"{repo}: the repository has no commit yet: commit your work, then submit") from None
    dirty = bool(_git(repo, "status", "--porcelain", "--untracked-files=no"))
    _git(repo, "bundle", "create", str(out), "HEAD", "--tags")
    return commit, dirty


def submit(repo: Path, lab: str, store: Store, *, now: dt.datetime | None = None) -> Submission:
    """Bundle ``repo`` at HEAD and upload it, then point ``latest.json`` at it."""
    with tempfile.TemporaryDirectory(prefix="labctl-submit-") as tmp:
        path = Path(tmp) / "submission.bundle"
        commit, dirty = bundle(repo, path)
        key = f"{lab}/{commit}.bundle"
        submitted_at = (now or dt.datetime.now(dt.UTC)).replace(microsecond=0).isoformat()
        s3 = store.client()
        try:
            with path.open("rb") as body:
                s3.put_object(Bucket=SUBMISSIONS_BUCKET, Key=key, Body=body)
            pointer = {"lab": lab, "commit": commit, "key": key, "submitted_at": submitted_at}
            s3.put_object(
                Bucket=SUBMISSIONS_BUCKET,
                Key=f"{lab}/latest.json",
                Body=json.dumps(pointer).encode(),
                ContentType="application/json",
            )
        except (BotoCoreError, ClientError) as exc:
            raise LabctlError(f"could not upload the submission to {store.endpoint}: {exc}") from None
        return Submission(lab, commit, key, path.stat().st_size, submitted_at, dirty)


def store_of(kube: Any, namespace: str, endpoint: str | None = None) -> Store:
    """A learner's object store: credentials from their namespace's Secret, the endpoint from
    there too unless given (e.g. a `kubectl port-forward` address)."""
    secret = kube.get("v1", "Secret", SECRET, namespace)
    if secret is None:
        raise LabctlError(f"no Secret {SECRET} in namespace {namespace}: is it a learner namespace? (-n)")
    data = {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}
    return Store(
        endpoint or data["AWS_ENDPOINT_URL"], data["AWS_ACCESS_KEY_ID"], data["AWS_SECRET_ACCESS_KEY"]
    )


def download(store: Store, lab: str, path: Path) -> Submission:
    """Write the learner's latest bundle of ``lab`` to ``path``; LookupError when there is none."""
    s3 = store.client()
    try:
        latest = s3.get_object(Bucket=SUBMISSIONS_BUCKET, Key=f"{lab}/latest.json")
        pointer = json.loads(latest["Body"].read())
        body = s3.get_object(Bucket=SUBMISSIONS_BUCKET, Key=pointer["key"])["Body"]
        with path.open("wb") as out:
            for chunk in iter(lambda: body.read(1 << 20), b""):
                out.write(chunk)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NoSuchBucket"):
            raise LookupError(f"no submission of {lab} yet: run `labctl lab submit --lab {lab}`") from None
        raise
    size = path.stat().st_size
    return Submission(lab, pointer["commit"], pointer["key"], size, pointer["submitted_at"], False)


def fetch_for_check(ctx: Context, lab: str, path: Path) -> None:
    """:attr:`graders.core.Context.fetch_submission`: the learner's latest bundle of ``lab`` to
    ``path``, from their own object store reached through ``ctx.reach``. LookupError: none yet."""
    try:
        store = store_of(ctx.kube, str(ctx.namespace))
        download(replace(store, endpoint=ctx.reach(store.endpoint)), lab, path)
    except (LabctlError, BotoCoreError, ClientError) as exc:
        raise GraderError(
            f"cannot read the submission of {lab} from the learner's object store: {exc}"
        ) from None


def fetch(store: Store, lab: str, dest: Path) -> Submission:
    """Clone the learner's latest submission of ``lab`` into ``dest`` (which must not exist)."""
    with tempfile.TemporaryDirectory(prefix="labctl-fetch-") as tmp:
        path = Path(tmp) / "submission.bundle"
        got = download(store, lab, path)
        _git(Path(tmp), "clone", "--quiet", str(path), str(dest))
    _git(dest, "checkout", "--quiet", "--detach", got.commit)
    return got
