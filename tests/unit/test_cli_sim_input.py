"""`labctl sim` refuses bad input before starting anything (real CLI, in a subprocess)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import labctl


@pytest.fixture
def isolated(tmp_path: Path) -> dict[str, str]:
    """An empty state dir, so we can see that nothing was created."""
    return {"LABCTL_STATE_DIR": str(tmp_path / "state")}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["sim", "up", "--gpu-nodes", "-1"], "--gpu-nodes: must be a whole number >= 0 (got -1)"),
        (["sim", "up", "Bad_Name!"], "cluster name 'Bad_Name!'"),
        (["sim", "up", "--cpu-nodes", "0", "--gpu-nodes", "0"], "at least one node"),
        (["sim", "up", "--gpu-nodes", "two"], "'two' is not a valid integer"),
        (["sim", "down", "Bad_Name!"], "cluster name 'Bad_Name!'"),
    ],
)
def test_bad_input_exits_2_and_starts_nothing(
    args: list[str], message: str, isolated: dict[str, str], tmp_path: Path
) -> None:
    proc = labctl(*args, check=False, env=isolated)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "state").exists()


def test_missing_binaries_are_named_with_the_command_that_builds_them(
    isolated: dict[str, str], tmp_path: Path
) -> None:
    env = {**isolated, "LABCTL_CACHE_DIR": str(tmp_path / "empty-cache")}
    proc = labctl("sim", "up", check=False, env=env)
    assert proc.returncode == 2
    assert (
        "missing toolchain binaries: etcd, kwok, kwokctl, kube-apiserver, kube-controller-manager, "
        "kube-scheduler, kubectl"
    ) in proc.stderr
    assert "labctl toolchain build" in proc.stderr
    assert not (tmp_path / "state").exists()


def test_kubeconfig_of_unknown_cluster_is_an_error(isolated: dict[str, str]) -> None:
    proc = labctl("sim", "kubeconfig", "nope", check=False, env=isolated)
    assert proc.returncode == 1
    assert "simulated cluster 'nope' not found; start it with `labctl sim up nope`" in proc.stderr


def test_list_is_empty_json_without_clusters(isolated: dict[str, str]) -> None:
    proc = labctl("sim", "list", "-o", "json", env=isolated)
    assert proc.stdout.strip() == "[]"
