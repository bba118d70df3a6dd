"""The ``dvc.*`` checks against learner repositories built with the real git and DVC CLIs,
whose remote is a real S3 server (versitygw, as in the learner stacks).

One learner does everything right (``good``); the others start from a copy of that work and
make one classic mistake each: forget `dvc push`, edit data without `dvc add`, change code
without `dvc repro`, or hand-edit the metrics and `dvc commit` them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from graders import dvc_checks
from graders.core import CheckResult, Context, Status
from graders.engine import CheckCall, run_check
from labctl.grading.submissions import bundle
from tests.graders.s3_server import S3Server, versitygw

PYTHON = sys.executable
ACCESS_ENV, SECRET_ENV = "GRADER_TEST_S3_ACCESS", "GRADER_TEST_S3_SECRET"
TIMEOUT_S = 240.0

TRAIN_PY = """\
import json, pickle
import pandas as pd, yaml
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

p = yaml.safe_load(open("params.yaml"))["train"]
df = pd.read_csv("data/iris.csv")
X, y = df.drop(columns="target"), df["target"]
Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=p["test_size"], random_state=p["seed"], stratify=y)
model = LogisticRegression(max_iter=p["max_iter"]).fit(Xtr, ytr)
pickle.dump(model, open("model.pkl", "wb"))
json.dump({"accuracy": round(model.score(Xte, yte), 4)}, open("metrics.json", "w"))
"""
PARAMS_YAML = "train:\n  seed: 1\n  test_size: 0.3\n  max_iter: 200\n"
MAKE_DATA = (
    "from sklearn.datasets import load_iris; import os; os.makedirs('data', exist_ok=True); "
    "load_iris(as_frame=True).frame.to_csv('data/iris.csv', index=False)"
)


@dataclass
class Learner:
    """A learner's working copy and the shell they type in."""

    root: Path
    env: dict[str, str]

    def sh(self, *cmd: str) -> str:
        proc = subprocess.run(cmd, cwd=self.root, env=self.env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}"
        return proc.stdout

    def dvc(self, *args: str) -> str:
        return self.sh(PYTHON, "-m", "dvc", *args)

    def commit(self, message: str) -> None:
        self.sh("git", "add", "-A")
        self.sh("git", "commit", "--quiet", "-m", message)

    def copy(self, dest: Path) -> Learner:
        """Another learner who starts from this one's work (history, cache and all)."""
        shutil.copytree(self.root, dest, symlinks=True)
        return Learner(dest, self.env)

    def md5_of(self, dvcfile: str, *, committed: bool = True) -> str:
        """The md5 a ``.dvc`` file records (as committed, or as in the working copy)."""
        text = self.sh("git", "show", f"HEAD:{dvcfile}") if committed else (self.root / dvcfile).read_text()
        return text.split("md5: ")[1].split()[0]


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with versitygw(tmp_path_factory.mktemp("s3") / "root") as server:
        yield server


@pytest.fixture(autouse=True)
def grader_credentials(s3: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    """The grader's key pair, handed to the checks by environment variable name."""
    monkeypatch.setenv(ACCESS_ENV, s3.access_key)
    monkeypatch.setenv(SECRET_ENV, s3.secret_key)


@pytest.fixture(scope="module")
def good(s3: S3Server, tmp_path_factory: pytest.TempPathFactory) -> Learner:
    """A learner who does it all: tracks iris, pipelines a model with metrics, commits, pushes."""
    base = tmp_path_factory.mktemp("learners")
    home = base / "home"
    home.mkdir()
    env = {
        "PATH": os.pathsep.join([str(Path(PYTHON).parent), "/usr/bin", "/bin"]),
        "HOME": str(home),
        "DVC_NO_ANALYTICS": "1",
        "DVC_SITE_CACHE_DIR": str(home / "dvc-site-cache"),
        "GIT_AUTHOR_NAME": "Ada Learner",
        "GIT_AUTHOR_EMAIL": "ada@example.edu",
        "GIT_COMMITTER_NAME": "Ada Learner",
        "GIT_COMMITTER_EMAIL": "ada@example.edu",
        **s3.env(),
    }
    learner = Learner(base / "good", env)
    learner.root.mkdir()
    learner.sh("git", "init", "--quiet", "-b", "main")
    learner.dvc("init", "--quiet")
    learner.sh(PYTHON, "-c", MAKE_DATA)
    learner.dvc("add", "--quiet", "data/iris.csv")
    learner.dvc("remote", "add", "--default", "store", "s3://dvc/ada")
    learner.dvc("remote", "modify", "store", "endpointurl", s3.endpoint)
    (learner.root / "train.py").write_text(TRAIN_PY)
    (learner.root / "params.yaml").write_text(PARAMS_YAML)
    learner.dvc(
        "stage", "add", "-n", "train", "-d", "data/iris.csv", "-d", "train.py", "-p", "train",
        "-o", "model.pkl", "-M", "metrics.json", "python train.py",
    )  # fmt: skip
    learner.dvc("repro", "--quiet")
    learner.commit("track iris, train pipeline")
    learner.dvc("push", "--quiet")
    return learner


def run(check: str, s3: S3Server, repo: Path, **params: object) -> CheckResult:
    remote = {"endpoint_url": s3.endpoint, "access_key_env": ACCESS_ENV, "secret_key_env": SECRET_ENV}
    if check == "dvc.tracked":
        remote = {}
    call = CheckCall(check, {"repo": str(repo), **remote, **params}, timeout_s=TIMEOUT_S, retries=0)
    return run_check(call, Context(learner="ada"))


def committed_accuracy(learner: Learner) -> float:
    return float(json.loads(learner.sh("git", "show", "HEAD:metrics.json"))["accuracy"])


# --- dvc.tracked ------------------------------------------------------------------------


def test_tracked_passes_for_added_data_and_pipeline_outputs(good: Learner, s3: S3Server) -> None:
    result = run("dvc.tracked", s3, good.root, paths=["data/iris.csv", "model.pkl"])
    assert result.status is Status.PASSED, result.feedback
    assert result.feedback == "data/iris.csv, model.pkl tracked by DVC and match the workspace"
    assert result.evidence["tracked"]["data/iris.csv"] == {
        "recorded_in": "data/iris.csv.dvc",
        "md5": good.md5_of("data/iris.csv.dvc"),
    }
    assert result.evidence["tracked"]["model.pkl"]["recorded_in"] == "dvc.lock"


def test_tracked_reads_a_submitted_bundle(good: Learner, s3: S3Server, tmp_path: Path) -> None:
    commit, _ = bundle(good.root, tmp_path / "submission.bundle")
    result = run("dvc.tracked", s3, tmp_path / "submission.bundle", paths=["data/iris.csv"])
    assert result.status is Status.PASSED, result.feedback
    assert result.evidence["commit"] == commit
    assert result.evidence["workspace_verified"] == []
    assert result.feedback == "data/iris.csv tracked by DVC"


def test_tracked_names_data_edited_without_dvc_add(good: Learner, s3: S3Server, tmp_path: Path) -> None:
    learner = good.copy(tmp_path / "edited")
    with (learner.root / "data" / "iris.csv").open("a") as csv:
        csv.write("5.0,3.4,1.5,0.2,0\n")  # one more row, and no `dvc add`
    recorded = learner.md5_of("data/iris.csv.dvc")
    actual = dvc_checks.content_md5(learner.root / "data" / "iris.csv", "md5")
    result = run("dvc.tracked", s3, learner.root, paths=["data/iris.csv"])
    assert result.status is Status.FAILED
    assert result.feedback == (
        f"data/iris.csv changed since DVC recorded it: data/iris.csv.dvc records md5 {recorded} but the "
        f"file has {actual}: run `dvc add data/iris.csv` and commit data/iris.csv.dvc"
    )


def test_tracked_names_untracked_and_git_committed_paths(good: Learner, s3: S3Server) -> None:
    result = run("dvc.tracked", s3, good.root, paths=["train.py", "data/extra.csv"])
    assert result.status is Status.FAILED
    assert result.feedback == (
        "train.py is committed to git, not tracked by DVC: `git rm --cached train.py`, then "
        "`dvc add train.py`; data/extra.csv is not tracked by DVC at this commit: "
        "run `dvc add data/extra.csv` and commit data/extra.csv.dvc"
    )


def test_unknown_revision_fails_with_the_revision_named(good: Learner, s3: S3Server) -> None:
    result = run("dvc.tracked", s3, good.root, rev="v1.0", paths=["data/iris.csv"])
    assert result.status is Status.FAILED
    assert result.feedback == f"revision 'v1.0' not found in {good.root}: did you commit and push it?"


def test_tracked_directories_are_hashed_and_checked_on_the_remote_as_dvc_does(
    good: Learner, s3: S3Server, tmp_path: Path
) -> None:
    learner = good.copy(tmp_path / "dirs")
    images = learner.root / "images"
    (images / "sub").mkdir(parents=True)
    (images / "a.txt").write_text("a\n")
    (images / "sub" / "b.txt").write_text("b\r\nwindows line\r\n")
    learner.dvc("add", "--quiet", "images")
    learner.dvc("remote", "modify", "store", "url", "s3://dvc/dirs")
    learner.commit("images")
    learner.dvc("push", "--quiet")
    # Our directory hash is DVC's: the real CLI's `dvc add` verifies.
    assert dvc_checks.content_md5(images, "md5") == learner.md5_of("images.dvc")
    assert run("dvc.tracked", s3, learner.root, paths=["images/sub/b.txt"]).status is Status.PASSED
    assert run("dvc.remote_complete", s3, learner.root).status is Status.PASSED
    # One file of the directory goes missing from the remote: the directory is incomplete.
    b_md5 = dvc_checks.content_md5(images / "sub" / "b.txt", "md5")
    (s3.root / "dvc" / "dirs" / "files" / "md5" / b_md5[:2] / b_md5[2:]).unlink()
    result = run("dvc.remote_complete", s3, learner.root)
    assert result.status is Status.FAILED
    assert result.feedback == (
        f"images.dvc records md5 {learner.md5_of('images.dvc')} for images but the remote has no object "
        "for it: run `dvc push`"
    )


# --- dvc.remote_complete ----------------------------------------------------------------


def test_remote_complete_passes_after_push(good: Learner, s3: S3Server) -> None:
    result = run("dvc.remote_complete", s3, good.root)
    assert result.status is Status.PASSED, result.feedback
    # data/iris.csv and model.pkl; metrics.json is `cache: false`, in git.
    assert result.feedback == "all 2 DVC outputs are on s3://dvc/ada"


def test_remote_complete_names_what_was_not_pushed(good: Learner, s3: S3Server, tmp_path: Path) -> None:
    learner = good.copy(tmp_path / "unpushed")
    with (learner.root / "data" / "iris.csv").open("a") as csv:
        csv.write("5.0,3.4,1.5,0.2,0\n")
    learner.dvc("add", "--quiet", "data/iris.csv")
    learner.dvc("repro", "--quiet")
    learner.commit("more data")  # ... and no `dvc push`
    data_md5 = learner.md5_of("data/iris.csv.dvc")
    result = run("dvc.remote_complete", s3, learner.root)
    assert result.status is Status.FAILED
    assert result.feedback.startswith(
        f"data/iris.csv.dvc records md5 {data_md5} for data/iris.csv but the remote has no object for it; "
        "dvc.lock records md5 "
    )
    assert result.feedback.endswith("for model.pkl but the remote has no object for it: run `dvc push`")
    assert [m["path"] for m in result.evidence["missing"]] == ["data/iris.csv", "model.pkl"]
    # The pipeline check cannot vouch for a stage whose input it cannot fetch.
    pipeline = run("dvc.pipeline_up_to_date", s3, learner.root)
    assert pipeline.status is Status.FAILED
    assert pipeline.feedback == "cannot check stage train: data/iris.csv not on the remote: run `dvc push`"


def test_remote_complete_fails_for_a_missing_bucket(good: Learner, s3: S3Server) -> None:
    result = run("dvc.remote_complete", s3, good.root, url="s3://nobucket/ada")
    assert result.status is Status.FAILED
    assert result.feedback == (
        "the bucket of remote s3://nobucket/ada does not exist: check the URL in .dvc/config"
    )


def test_refused_grader_credentials_are_a_grader_error(
    good: Learner, s3: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SECRET_ENV, "not-the-secret")
    result = run("dvc.remote_complete", s3, good.root)
    assert result.status is Status.ERROR
    assert "refused the grader's key pair" in result.feedback


# --- dvc.pipeline_up_to_date ------------------------------------------------------------


def test_pipeline_up_to_date_passes(good: Learner, s3: S3Server) -> None:
    result = run("dvc.pipeline_up_to_date", s3, good.root)
    assert result.status is Status.PASSED, result.feedback
    assert result.feedback.startswith("pipeline up to date at ")


def test_pipeline_names_the_stale_stage(good: Learner, s3: S3Server, tmp_path: Path) -> None:
    learner = good.copy(tmp_path / "stale")
    (learner.root / "params.yaml").write_text(PARAMS_YAML.replace("max_iter: 200", "max_iter: 300"))
    train = learner.root / "train.py"
    train.write_text(train.read_text().replace("LogisticRegression(", "LogisticRegression(C=0.5, "))
    learner.commit("tune the model")  # ... without `dvc repro`
    result = run("dvc.pipeline_up_to_date", s3, learner.root)
    assert result.status is Status.FAILED
    assert result.feedback == (
        "stage train is out of date (train.py modified, param train in params.yaml modified): "
        "run `dvc repro` and commit dvc.lock"
    )


def test_pipeline_names_a_stage_that_never_ran(good: Learner, s3: S3Server, tmp_path: Path) -> None:
    learner = good.copy(tmp_path / "never-ran")
    learner.dvc(
        "stage", "add", "-n", "report", "-d", "metrics.json", "-o", "report.txt", "cp metrics.json report.txt"
    )
    learner.commit("add a report stage")  # ... without running it
    result = run("dvc.pipeline_up_to_date", s3, learner.root)
    assert result.status is Status.FAILED
    assert result.feedback == (
        "stage report has never run (it is not in dvc.lock): run `dvc repro` and commit dvc.lock"
    )


# --- dvc.metrics_reproduce --------------------------------------------------------------


def test_metrics_reproduce(good: Learner, s3: S3Server) -> None:
    accuracy = committed_accuracy(good)
    result = run("dvc.metrics_reproduce", s3, good.root, tolerance=0.001)
    assert result.status is Status.PASSED, result.feedback
    assert result.feedback == f"`dvc repro` reproduces accuracy {accuracy:g} (±0.001)"


def test_hand_edited_metrics_do_not_reproduce(good: Learner, s3: S3Server, tmp_path: Path) -> None:
    learner = good.copy(tmp_path / "faked")
    accuracy = committed_accuracy(good)
    (learner.root / "metrics.json").write_text(json.dumps({"accuracy": 0.995}))
    learner.dvc("commit", "--force", "--quiet", "train")  # dvc.lock now agrees with the edit
    learner.commit("better accuracy")
    # The lock is consistent, so `dvc status` is clean: only a reproduction catches it.
    assert run("dvc.pipeline_up_to_date", s3, learner.root).status is Status.PASSED
    result = run("dvc.metrics_reproduce", s3, learner.root, keys=["accuracy"])
    assert result.status is Status.FAILED
    assert result.feedback == f"accuracy {accuracy:g} differs from the committed 0.995 by more than 0.01"
    assert result.evidence["committed"] == {"accuracy": 0.995}


# --- pure parts -------------------------------------------------------------------------


def test_status_splits_stale_from_unpushed() -> None:
    status = {
        "train": [
            {"changed deps": {"train.py": "modified"}},
            {"changed outs": {"model.pkl": "not in cache"}},
        ],
        "eval": ["changed command", {"changed deps": {"params.yaml": {"eval.k": "modified"}}}],
        "fetch": ["always changed"],
        "prep": [{"changed deps": {"data/raw.csv": "deleted"}}],
    }
    stale, unverifiable, unpushed = dvc_checks.classify_status(status)
    assert stale == {
        "train": ["train.py modified"],
        "eval": ["its command changed", "param eval.k in params.yaml modified"],
    }
    assert unverifiable == {"prep": ["data/raw.csv"]}
    assert unpushed == ["model.pkl"]


def test_metrics_flatten_and_compare() -> None:
    one = {"": {"data": {"m.json": {"data": {"acc": 0.9, "f1": {"macro": 0.8}}}}}}
    assert dvc_checks.flatten_metrics(one) == {"acc": 0.9, "f1.macro": 0.8}
    two = {"": {"data": {"a.json": {"data": {"acc": 1}}, "b.json": {"data": {"acc": 2}}}}}
    assert dvc_checks.flatten_metrics(two) == {"a.json:acc": 1, "b.json:acc": 2}
    assert dvc_checks.compare_metrics({"acc": 0.9}, {"acc": 0.905}, ("acc",), 0.01) == []
    assert dvc_checks.compare_metrics({"acc": 0.95}, {"acc": 0.81}, ("acc",), 0.01) == [
        "acc 0.81 differs from the committed 0.95 by more than 0.01"
    ]
    assert dvc_checks.compare_metrics({"acc": 0.9}, {}, ("acc", "auc"), 0.01) == [
        "metric acc is missing after `dvc repro`",
        "metric auc is not in the committed metrics (found: acc)",
    ]
