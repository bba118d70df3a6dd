"""`labctl lab submit` end to end: a learner's repository, as a git bundle, into their object store.

The object store is a real versitygw on loopback; the learner namespace holds its credentials
Secret exactly as the stacks write it, and the CLI reads them from there as the learner would.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from graders.core import Context, Status
from graders.engine import CheckCall, run_check
from labctl.grading.submissions import Store, fetch, fetch_for_check
from labctl.kube import Kube
from labctl.provision.stacks.object_store import SECRET, SUBMISSIONS_BUCKET
from tests.conftest import ClusterUnderTest, cluster_args, labctl
from tests.graders.s3_server import S3Server, versitygw

LAB = "professional/data-versioning"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with versitygw(tmp_path_factory.mktemp("s3") / "root", buckets=(SUBMISSIONS_BUCKET,)) as server:
        yield server


def git(repo: Path, *args: str) -> str:
    env = {"GIT_AUTHOR_NAME": "Ann", "GIT_AUTHOR_EMAIL": "ann@uni.edu", "GIT_COMMITTER_NAME": "Ann"}
    env |= {"GIT_COMMITTER_EMAIL": "ann@uni.edu", "PATH": "/usr/bin:/bin", "HOME": str(repo.parent)}
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True, env=env
    ).stdout


def test_submit_bundles_head_into_the_learners_bucket(
    test_cluster: ClusterUnderTest, kube: Kube, namespace: str, store: S3Server, tmp_path: Path
) -> None:
    values = {
        "AWS_ACCESS_KEY_ID": store.access_key,
        "AWS_SECRET_ACCESS_KEY": store.secret_key,
        "AWS_ENDPOINT_URL": store.endpoint,
    }
    kube.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": SECRET, "namespace": namespace},
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in values.items()},
        }
    )
    repo = tmp_path / "work"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "train.py").write_text("print('train')\n")
    (repo / "data.csv").write_text("x,label\n1,0\n2,1\n")
    dvc = [str(Path(sys.executable).parent / "dvc")]
    for args in (["init", "-q"], ["config", "core.analytics", "false"], ["add", "-q", "data.csv"]):
        subprocess.run(
            [*dvc, *args],
            cwd=repo,
            check=True,
            capture_output=True,
            env={**os.environ, "HOME": str(tmp_path)},
        )
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "first")
    (repo / "train.py").write_text("print('train v2')\n")
    git(repo, "commit", "-qam", "second")
    head = git(repo, "rev-parse", "HEAD").strip()
    (repo / "train.py").write_text("print('not committed')\n")

    args = [
        "lab",
        "submit",
        str(repo),
        "--lab",
        LAB,
        "-n",
        namespace,
        "-o",
        "json",
        *cluster_args(test_cluster),
    ]
    done = labctl(*args)
    assert json.loads(done.stdout)["commit"] == head
    assert "uncommitted changes were not submitted" in done.stderr

    clone = tmp_path / "graded"
    got = fetch(Store(store.endpoint, store.access_key, store.secret_key), LAB, clone)
    assert got.commit == head
    assert (clone / "train.py").read_text() == "print('train v2')\n"  # HEAD, not the working tree
    assert git(clone, "log", "--format=%s").split() == ["second", "first"]  # with history

    # The grader reads the same submission from the learner's store, through the fetcher labctl's
    # grading hands every check (graders import none of labctl's services).
    ctx = Context(namespace=namespace, kube=kube, fetch_submission=fetch_for_check)
    tracked = run_check(CheckCall("dvc.tracked", {"repo": f"submission:{LAB}", "paths": ["data.csv"]}), ctx)
    assert tracked.status is Status.PASSED, tracked.feedback
    other = run_check(CheckCall("dvc.tracked", {"repo": "submission:advanced/other", "paths": ["x"]}), ctx)
    assert other.status is Status.FAILED
    assert (
        "no submission of advanced/other yet: run `labctl lab submit --lab advanced/other`" in other.feedback
    )


def test_submit_refuses_what_is_not_a_repository(
    test_cluster: ClusterUnderTest, namespace: str, tmp_path: Path
) -> None:
    bad_lab = labctl(
        "lab", "submit", str(tmp_path), "--lab", "Data Versioning", *cluster_args(test_cluster), check=False
    )
    assert bad_lab.returncode == 2 and "expected <level>/<lab>" in bad_lab.stderr
    no_secret = labctl(
        "lab",
        "submit",
        str(tmp_path),
        "--lab",
        LAB,
        "-n",
        namespace,
        *cluster_args(test_cluster),
        check=False,
    )
    assert no_secret.returncode == 1 and f"no Secret {SECRET} in namespace {namespace}" in no_secret.stderr
