"""`labctl lab validate`: every problem in a catalog, each naming its file and field."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from labctl.catalog import load
from labctl.catalog.load import Problem
from labctl.catalog.validate import validate
from labctl.cli.lab_author import validate_cmd

LAB: dict[str, Any] = {
    "id": "foundation/first",
    "title": "A first lab",
    "summary": "Deploy a thing and prove it answers.",
    "level": "foundation",
    "track": "Core MLOps",
    "paths": ["MLOps"],
    "version": "1.0.0",
    "duration": "45m",
    "difficulty": "beginner",
    "stacks": ["mlflow"],
    "hidden": ["test.csv"],
    "tasks": [
        {
            "id": "deploy",
            "title": "Deploy the server",
            "hints": ["kubectl apply -f files/server.yaml"],
            "checks": [
                {
                    "name": "server-up",
                    "grader": "endpoint.health",
                    "params": {"service": "server", "port": 8080, "model": "iris"},
                    "failure": "No answer from Service server on port 8080: is the Deployment ready?",
                },
                {
                    "name": "config",
                    "grader": "kube.object",
                    "points": 2,
                    "params": {
                        "api_version": "v1",
                        "kind": "ConfigMap",
                        "name": "settings-{seed}",
                        "fields": {"data.test": "{hidden}/test.csv", "data.since": "{session_start}"},
                    },
                    "failure": "ConfigMap settings is missing or wrong.",
                },
            ],
        }
    ],
}
MISTAKES: dict[str, dict[str, Any]] = {
    "no-server": {"description": "never deploys", "fails": ["server-up"]},
    "no-config": {"description": "forgets the ConfigMap", "fails": ["config"]},
    "constant": {"description": "a server that answers a constant", "games": True, "fails": ["server-up"]},
}


def write_lab(
    root: Path, lab: dict[str, Any] | None = None, mistakes: dict[str, dict[str, Any]] | None = None
) -> Path:
    """A complete lab folder under ``root``/<level>/<name>/, valid unless told otherwise."""
    lab = copy.deepcopy(LAB if lab is None else lab)
    folder = root / lab["id"]
    (folder / "solution").mkdir(parents=True)
    (folder / "hidden").mkdir()
    (folder / "lab.yaml").write_text(yaml.safe_dump(lab, sort_keys=False))
    (folder / "README.md").write_text("# A first lab\n")
    (folder / "solution" / "run.sh").write_text("kubectl apply -f $LAB_DIR/files\n")
    (folder / "hidden" / "test.csv").write_text("x,y\n1,2\n")
    for name, spec in (MISTAKES if mistakes is None else mistakes).items():
        (folder / "mistakes" / name).mkdir(parents=True)
        (folder / "mistakes" / name / "mistake.yaml").write_text(yaml.safe_dump(spec))
        (folder / "mistakes" / name / "run.sh").write_text("true\n")
    return folder


def edit(folder: Path, change: Any) -> None:
    """Apply ``change`` to the lab's parsed lab.yaml and write it back."""
    data = yaml.safe_load((folder / "lab.yaml").read_text())
    change(data)
    (folder / "lab.yaml").write_text(yaml.safe_dump(data, sort_keys=False))


def lines(problems: list[Problem]) -> list[str]:
    return [str(p) for p in problems]


def only(problems: list[Problem]) -> str:
    assert len(problems) == 1, lines(problems)
    return str(problems[0])


def test_a_valid_lab_passes(tmp_path: Path) -> None:
    write_lab(tmp_path)
    labs, problems = validate([tmp_path])
    assert lines(problems) == []
    assert [lab.id for lab in labs] == ["foundation/first"]


def test_an_empty_catalog_is_valid(tmp_path: Path) -> None:
    (tmp_path / "__init__.py").write_text("")
    assert validate([tmp_path]) == ([], [])  # a fresh clone: git keeps no empty level folders
    for level in ("foundation", "professional", "advanced"):
        (tmp_path / level).mkdir()
    assert validate([tmp_path]) == ([], [])


def test_bad_yaml_names_the_file_and_line(tmp_path: Path) -> None:
    folder = write_lab(tmp_path)
    (folder / "lab.yaml").write_text("id: foundation/first\ntitle: [unclosed\nlevel: foundation\n")
    message = only(validate([tmp_path])[1])
    assert message.startswith(f"{folder / 'lab.yaml'}: line ")
    assert "not valid YAML" in message


def test_unknown_key_in_lab_yaml_gets_a_did_you_mean(tmp_path: Path) -> None:
    folder = write_lab(tmp_path)
    edit(folder, lambda d: d["tasks"][0]["checks"][0].update(timeout=5))
    assert only(validate([tmp_path])[1]) == (
        f"{folder / 'lab.yaml'}: tasks[0].checks[0].timeout: unknown key (did you mean 'timeoutSeconds'?); "
        "expected one of name, grader, points, required, timeoutSeconds, retries, params, failure"
    )


def test_a_check_without_its_failure_message_is_refused(tmp_path: Path) -> None:
    folder = write_lab(tmp_path)
    edit(folder, lambda d: d["tasks"][0]["checks"][1].pop("failure"))
    assert (
        only(validate([tmp_path])[1])
        == f"{folder / 'lab.yaml'}: tasks[0].checks[1].failure: required, missing"
    )


def test_misspelt_grader_gets_a_did_you_mean(tmp_path: Path) -> None:
    folder = write_lab(tmp_path)
    edit(folder, lambda d: d["tasks"][0]["checks"][1].update(grader="kube.objekt"))
    assert only(validate([tmp_path])[1]) == (
        f"{folder / 'lab.yaml'}: tasks[0].checks[1].grader: unknown grader 'kube.objekt' "
        "(did you mean 'kube.object'?)"
    )


def test_unknown_grader_points_at_the_list(tmp_path: Path) -> None:
    folder = write_lab(tmp_path)
    edit(folder, lambda d: d["tasks"][0]["checks"][0].update(grader="quantum.entangled"))
    assert only(validate([tmp_path])[1]) == (
        f"{folder / 'lab.yaml'}: tasks[0].checks[0].grader: unknown grader 'quantum.entangled' "
        "(see `labctl check list`)"
    )


def test_wrong_param_type_names_the_param(tmp_path: Path) -> None:
    folder = write_lab(tmp_path)
    edit(folder, lambda d: d["tasks"][0]["checks"][0]["params"].update(port="eighty"))
    message = only(validate([tmp_path])[1])
    assert message.startswith(f"{folder / 'lab.yaml'}: tasks[0].checks[0].params.port: ")
    assert "integer" in message


def test_unknown_param_and_placeholder_get_a_did_you_mean(tmp_path: Path) -> None:
    folder = write_lab(tmp_path)
    edit(folder, lambda d: d["tasks"][0]["checks"][0]["params"].update(servise="server"))
    edit(folder, lambda d: d["tasks"][0]["checks"][1]["params"].update(name="settings-{namspace}"))
    problems = lines(validate([tmp_path])[1])
    assert len(problems) == 2, problems
    assert problems[0].startswith(
        f"{folder / 'lab.yaml'}: tasks[0].checks[0].params.servise: "
        "unknown parameter (did you mean 'service'?)"
    )
    assert problems[1].startswith(
        f"{folder / 'lab.yaml'}: tasks[0].checks[1].params.name: unknown placeholder {{namspace}} "
        "(did you mean 'namespace'?)"
    )


def test_literal_braces_are_doubled(tmp_path: Path) -> None:
    folder = write_lab(tmp_path)
    fields = {"data.query": 'up{{job="model"}}', "data.since": "{session_start}"}
    edit(folder, lambda d: d["tasks"][0]["checks"][1]["params"].update(fields=fields))
    assert lines(validate([tmp_path])[1]) == []
    edit(
        folder,
        lambda d: d["tasks"][0]["checks"][1]["params"].update(fields={"data.query": 'up{job="model"}'}),
    )
    assert only(validate([tmp_path])[1]) == (
        f"{folder / 'lab.yaml'}: tasks[0].checks[1].params.fields.data.query: unknown placeholder "
        '{job="model"} (a literal brace is {{ or }}) in \'up{job="model"}\'; known: {cohort}, {email}, '
        "{hidden}, {learner}, {namespace}, {seed}, {session_start}"
    )


def test_check_names_are_unique_within_the_lab(tmp_path: Path) -> None:
    folder = write_lab(tmp_path)
    edit(folder, lambda d: d["tasks"][0]["checks"][1].update(name="server-up"))
    problems = lines(validate([tmp_path])[1])
    assert (
        f"{folder / 'lab.yaml'}: tasks[0].checks[1].name: 'server-up' also names tasks[0].checks[0]"
        in problems
    )


@pytest.mark.parametrize(
    ("path", "what"),
    [
        ("README.md", "the learner's instructions"),
        ("solution/run.sh", "reference solution"),
        ("mistakes/constant/run.sh", "the mistake's wrong solution"),
    ],
)
def test_missing_files_are_named(tmp_path: Path, path: str, what: str) -> None:
    folder = write_lab(tmp_path)
    (folder / path).unlink()
    message = only(validate([tmp_path])[1])
    assert message.startswith(f"{folder / path}: missing")
    assert what in message


def test_missing_hidden_file_names_the_field(tmp_path: Path) -> None:
    folder = write_lab(tmp_path)
    (folder / "hidden" / "test.csv").unlink()
    assert only(validate([tmp_path])[1]).startswith(
        f"{folder / 'lab.yaml'}: hidden[0]: no file hidden/test.csv"
    )


def test_id_must_match_folder_and_level(tmp_path: Path) -> None:
    folder = write_lab(tmp_path)
    edit(folder, lambda d: d.update(level="professional"))
    assert only(validate([tmp_path])[1]) == (
        f"{folder / 'lab.yaml'}: level: 'professional', but the id 'foundation/first' says 'foundation'"
    )
    edit(folder, lambda d: d.update(level="foundation", id="foundation/second"))
    message = only(validate([tmp_path])[1])
    assert message.startswith(f"{folder / 'lab.yaml'}: id: 'foundation/second' does not match its folder")


def test_duplicate_ids_across_roots_name_both_files(tmp_path: Path) -> None:
    first = write_lab(tmp_path / "builtin")
    second = write_lab(tmp_path / "instructor")
    assert only(validate([tmp_path / "builtin", tmp_path / "instructor"])[1]) == (
        f"{second / 'lab.yaml'}: id: 'foundation/first' is also the id of {first / 'lab.yaml'}"
    )


def test_the_same_root_twice_is_not_a_duplicate(tmp_path: Path) -> None:
    write_lab(tmp_path)
    labs, problems = validate([tmp_path, tmp_path])
    assert (len(labs), problems) == (1, [])


def test_prerequisites_exist_and_are_not_above_the_lab(tmp_path: Path) -> None:
    folder = write_lab(tmp_path)
    write_lab(tmp_path, {**LAB, "id": "advanced/later", "level": "advanced"})
    edit(folder, lambda d: d.update(prerequisites=["foundation/frist", "advanced/later"]))
    assert lines(validate([tmp_path])[1]) == [
        f"{folder / 'lab.yaml'}: prerequisites[0]: no lab 'foundation/frist' in the catalog "
        "(did you mean 'foundation/first'?)",
        f"{folder / 'lab.yaml'}: prerequisites[1]: 'advanced/later' is advanced, above this foundation lab: "
        "a learner could never start it",
    ]


def test_prerequisites_may_name_labs_of_the_context_roots(tmp_path: Path) -> None:
    write_lab(tmp_path / "builtin")
    write_lab(tmp_path / "mine", {**LAB, "id": "foundation/next", "prerequisites": ["foundation/first"]})
    assert validate([tmp_path / "mine"], context=[tmp_path / "builtin"])[1] == []
    assert "no lab 'foundation/first'" in only(validate([tmp_path / "mine"])[1])


def test_cyclic_prerequisites_name_the_cycle(tmp_path: Path) -> None:
    for name, needs in (("a", "b"), ("b", "c"), ("c", "a")):
        write_lab(tmp_path, {**LAB, "id": f"foundation/{name}", "prerequisites": [f"foundation/{needs}"]})
    assert only(validate([tmp_path])[1]) == (
        f"{tmp_path / 'foundation/a/lab.yaml'}: prerequisites[0]: prerequisites form a cycle: "
        "foundation/a -> foundation/b -> foundation/c -> foundation/a"
    )


def test_a_lab_cannot_need_itself(tmp_path: Path) -> None:
    folder = write_lab(tmp_path, {**LAB, "prerequisites": ["foundation/first"]})
    assert only(validate([tmp_path])[1]) == (
        f"{folder / 'lab.yaml'}: prerequisites[0]: "
        "prerequisites form a cycle: foundation/first -> foundation/first"
    )


def test_a_mistake_naming_no_existing_check(tmp_path: Path) -> None:
    folder = write_lab(tmp_path, mistakes={**MISTAKES, "no-config": {"description": "x", "fails": ["confg"]}})
    assert only(validate([tmp_path])[1]) == (
        f"{folder / 'mistakes/no-config/mistake.yaml'}: fails[0]: no check 'confg' in {folder / 'lab.yaml'} "
        "(did you mean 'config'?); checks: server-up, config"
    )


def test_a_mistake_naming_no_check_at_all(tmp_path: Path) -> None:
    folder = write_lab(tmp_path, mistakes={**MISTAKES, "no-config": {"description": "x", "fails": []}})
    message = only(validate([tmp_path])[1])
    assert message.startswith(f"{folder / 'mistakes/no-config/mistake.yaml'}: fails: ")
    assert "at least 1" in message


def test_fewer_than_three_mistakes_or_none_gaming(tmp_path: Path) -> None:
    folder = write_lab(tmp_path, mistakes={"no-server": MISTAKES["no-server"]})
    assert lines(validate([tmp_path])[1]) == [
        f"{folder / 'mistakes'}: 1 planted mistake(s): a lab has at least 3 (mistakes/<name>/mistake.yaml "
        "and run.sh), one of them with games: true",
        f"{folder / 'mistakes'}: games: no mistake has games: true: plant one that tries to fool the grader "
        "(a fake logged metric, an always-firing alert, a constant-answer server, a Job without a GPU)",
    ]


def test_a_folder_without_lab_yaml_is_not_passed_over(tmp_path: Path) -> None:
    (tmp_path / "foundation" / "draft").mkdir(parents=True)
    write_lab(tmp_path)
    assert only(validate([tmp_path])[1]) == (
        f"{tmp_path / 'foundation/draft/lab.yaml'}: missing: every lab folder has a lab.yaml"
    )


@pytest.mark.parametrize("where", ["lab", "foundation"])
def test_a_path_with_no_lab_is_a_problem(tmp_path: Path, where: str) -> None:
    (tmp_path / where / "solution").mkdir(parents=True)
    message = only(validate([tmp_path / where])[1])
    assert message.startswith(
        f"{tmp_path / where}: no lab here: expected lab.yaml or <level>/<name>/lab.yaml"
    )
    assert ("give its parent" in message) == (where == "foundation")


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    folder = write_lab(tmp_path, mistakes={"no-server": {"description": "x", "fails": ["nope"]}})
    (folder / "README.md").unlink()
    edit(folder, lambda d: d["tasks"][0]["checks"][0].update(grader="endpont.health"))
    problems = lines(validate([tmp_path])[1])
    assert len(problems) == 5, problems


def run(*args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(validate_cmd, list(args), env=env)


def test_cli_reports_every_problem_and_exits_2(tmp_path: Path) -> None:
    folder = write_lab(tmp_path)
    edit(folder, lambda d: d["tasks"][0]["checks"][1].update(grader="kube.objekt"))
    result = run(str(tmp_path))
    assert result.exit_code == 2, result.output
    assert (
        f"{folder / 'lab.yaml'}: tasks[0].checks[1].grader: unknown grader 'kube.objekt' "
        "(did you mean 'kube.object'?)" in result.output
    )
    assert "1 problem in 1 lab" in result.output


def test_labctl_lab_validate_exits_2_on_a_broken_lab(tmp_path: Path) -> None:
    folder = write_lab(tmp_path)
    (folder / "solution" / "run.sh").unlink()
    done = subprocess.run(
        [sys.executable, "-m", "labctl.cli", "lab", "validate", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [
        f"{folder / 'solution/run.sh'}: missing: every lab ships a reference solution",
        "1 problem in 1 lab",
    ]
    assert done.stdout == ""


def test_cli_counts_valid_labs(tmp_path: Path) -> None:
    write_lab(tmp_path)
    result = run(str(tmp_path))
    assert (result.exit_code, result.output) == (0, "1 lab valid\n")


def test_cli_default_is_the_builtin_catalog_and_the_labs_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_lab(tmp_path / "builtin")
    write_lab(tmp_path / "extra", {**LAB, "id": "professional/next", "level": "professional"})
    monkeypatch.setattr(load, "builtin_root", lambda: tmp_path / "builtin")
    result = run(env={"LABCTL_LABS_PATH": str(tmp_path / "extra")})
    assert (result.exit_code, result.output) == (0, "2 labs valid\n")


def test_cli_paths_may_build_on_the_installed_catalog(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_lab(tmp_path / "builtin")
    mine = write_lab(
        tmp_path / "mine", {**LAB, "id": "foundation/next", "prerequisites": ["foundation/first"]}
    )
    monkeypatch.setattr(load, "builtin_root", lambda: tmp_path / "builtin")
    result = run(str(mine))
    assert (result.exit_code, result.output) == (0, "1 lab valid\n")


def test_the_builtin_catalog_is_valid() -> None:
    """What ``labctl lab validate`` checks before anything is published."""
    _, problems = validate([load.builtin_root()])
    assert lines(problems) == [], "\n".join(lines(problems))
