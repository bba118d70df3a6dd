"""A misspelt check or lab id is refused with the closest known name (no cluster needed)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from graders.core import UnknownCheck, get
from labctl.cli.main import cli
from labctl.core.errors import UsageError
from labctl.core.suggest import closest, did_you_mean, did_you_mean_lab
from labctl.grading.plan import load_plan, plan_for_lab
from labctl.sessions.client import not_published, not_started
from tests.unit.test_lab_validate import LAB, write_lab

# A kubeconfig that loads without a cluster behind it: commands that connect first still
# refuse a misspelt lab before they ever talk to the API server.
KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
"""


def invoke(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args))


def test_the_helper_names_the_closest_or_nothing() -> None:
    assert closest("kube.objekt", ["kube.object", "kube.job_queued"]) == "kube.object"
    assert did_you_mean("servise", ["service", "port"]) == " (did you mean 'service'?)"
    assert did_you_mean("quantum.entangled", ["kube.object"]) == ""


@pytest.mark.parametrize(
    ("typed", "hint"),
    [
        ("foundation/frist", " (did you mean 'foundation/first'?)"),
        ("first", " (did you mean 'foundation/first'?)"),  # the level left out
        ("advanced/first", " (did you mean 'foundation/first'?)"),  # the wrong level
        ("serving", " (did you mean 'advanced/serving' or 'professional/serving'?)"),  # two levels
        ("advanced/servng", " (did you mean 'advanced/serving'?)"),  # the level typed decides
        ("foundation/xyz", ""),  # the same level alone is no likeness
        ("quantum", ""),
    ],
)
def test_lab_ids_are_matched_whole_or_by_name(typed: str, hint: str) -> None:
    known = ["foundation/first", "professional/serving", "advanced/serving"]
    assert did_you_mean_lab(typed, known) == hint


def test_an_unknown_check_gets_a_did_you_mean() -> None:
    with pytest.raises(UnknownCheck) as exc:
        get("kube.objekt")
    assert str(exc.value) == (
        "unknown check 'kube.objekt'; checks of that kind: kube.job_queued, kube.job_succeeded, "
        "kube.object, kube.pod_placement, kube.quota_respected (did you mean 'kube.object'?)"
    )
    with pytest.raises(UnknownCheck, match=r"^unknown check 'kub.object' \(did you mean 'kube.object'\?\)$"):
        get("kub.object")
    with pytest.raises(UnknownCheck, match=r"^unknown check 'quantum.x' \(see `labctl check list`\)$"):
        get("quantum.x")


def test_check_run_with_a_misspelt_check_exits_2_with_a_did_you_mean() -> None:
    result = invoke("check", "run", "mlflow.experiments")
    assert result.exit_code == 2, result.output
    assert "unknown check 'mlflow.experiments'" in result.output
    assert "(did you mean 'mlflow.experiment'?)" in result.output


def test_a_plan_naming_a_misspelt_check_gets_a_did_you_mean(tmp_path: Path) -> None:
    path = tmp_path / "grading.yaml"
    path.write_text(
        "lab: foundation/first\nchecks:\n"
        "  - name: up\n    check: endpoint.helth\n    params: {service: s, port: 80}\n"
    )
    with pytest.raises(UsageError) as exc:
        load_plan(path)
    assert str(path) in str(exc.value)
    assert "checks[0] (up): unknown check 'endpoint.helth'" in str(exc.value)
    assert "(did you mean 'endpoint.health'?)" in str(exc.value)


def test_grading_a_misspelt_lab_names_the_published_one() -> None:
    with pytest.raises(UsageError) as exc:
        plan_for_lab("foundation/frist", known=["foundation/first", "advanced/gpu-scheduling"])
    assert "lab 'foundation/frist' has no grading plan at " in str(exc.value)
    assert str(exc.value).endswith("(did you mean 'foundation/first'?); pass one with --plan FILE")


def test_lab_show_and_start_name_the_closest_published_lab() -> None:
    published = ["foundation/first-deployment", "professional/model-serving"]
    assert str(not_published("foundation/first-deploymnt", published)) == (
        "lab 'foundation/first-deploymnt' is not published in this cluster "
        "(did you mean 'foundation/first-deployment'?); labctl lab list shows what is"
    )
    assert str(not_published("quantum/x", published)) == (
        "lab 'quantum/x' is not published in this cluster; labctl lab list shows what is"
    )
    assert not_published("x", []).exit_code == 2


def test_lab_status_check_stop_name_the_closest_started_lab() -> None:
    started = ["foundation/first-deployment"]
    assert str(not_started("foundation/first-deploy", started)) == (
        "you have not started foundation/first-deploy (did you mean 'foundation/first-deployment'?)"
    )
    assert str(not_started("advanced/gpu-scheduling", started)) == (
        "you have not started advanced/gpu-scheduling: labctl lab start advanced/gpu-scheduling"
    )


def catalog(tmp_path: Path) -> Path:
    root = tmp_path / "labs"
    write_lab(root)
    second = copy.deepcopy(LAB) | {"id": "foundation/second"}
    write_lab(root, second)
    return root


def test_lab_test_names_every_misspelt_lab_with_the_closest(tmp_path: Path) -> None:
    root = catalog(tmp_path)
    config = tmp_path / "kubeconfig"
    config.write_text(KUBECONFIG)
    flags = ["--labs", str(root), "--kubeconfig", str(config)]
    result = invoke("lab", "test", "foundation/frist", "scond", "quantum", *flags)
    assert result.exit_code == 2, result.output
    assert "no such lab 'foundation/frist' (did you mean 'foundation/first'?)" in result.output
    assert "no such lab 'scond' (did you mean 'foundation/second'?)" in result.output
    assert "no such lab 'quantum' (labctl lab validate lists the catalog)" in result.output


def test_lab_solve_names_the_closest_lab_and_mistake(tmp_path: Path) -> None:
    root = catalog(tmp_path)
    flags = ["--labs", str(root), "--kubeconfig", str(tmp_path / "kubeconfig")]
    result = invoke("lab", "solve", "foundation/secnd", *flags)
    assert result.exit_code == 2, result.output
    assert "no such lab 'foundation/secnd' (did you mean 'foundation/second'?)" in result.output
    result = invoke("lab", "solve", "foundation/first", "--mistake", "no-servr", *flags)
    assert result.exit_code == 2, result.output
    assert (
        "foundation/first has no mistake 'no-servr' (did you mean 'no-server'?); "
        "it has: constant, no-config, no-server"
    ) in result.output
