"""`labctl lab test` on every built-in lab that kwok nodes can grade (the API server's decisions
only: scheduling, quota, admission). Labs whose stacks must really run are tested by make e2e."""

from __future__ import annotations

import json

import pytest

from labctl.catalog.load import builtin_root, load_catalog
from tests.conftest import ClusterUnderTest, ControllerProcess, cluster_args, labctl

SIMULABLE = [lab.id for lab in load_catalog([builtin_root()]) if lab.lab.simulable]


@pytest.mark.parametrize("lab_id", SIMULABLE)
def test_lab_is_honest(
    test_cluster: ClusterUnderTest, controller: ControllerProcess | None, lab_id: str
) -> None:
    result = labctl(
        "lab", "test", lab_id, "-o", "json", *cluster_args(test_cluster), check=False, timeout=1200
    )
    rows = json.loads(result.stdout or "[]")
    table = "\n".join(
        f"{r['stage']}: expected {r['expected']}, got {r['got']} {r.get('detail', '')}" for r in rows
    )
    assert result.returncode == 0, f"{table}\n{result.stderr[-3000:]}"
    stages = [r["stage"] for r in rows]
    assert stages[0] == "fresh" and "solution" in stages and "readme" in stages  # the README is followed too
    assert sum(s.startswith("mistake:") for s in stages) >= 3


def test_some_lab_runs_here() -> None:
    assert "advanced/gpu-scheduling" in SIMULABLE
