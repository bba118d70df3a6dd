"""The checked-in install manifests are exactly what `labctl install` applies."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_install_manifests_are_up_to_date() -> None:
    spec = importlib.util.spec_from_file_location(
        "gen_install_manifests", ROOT / "hack" / "gen-install-manifests.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    files = module.render_files()
    assert {
        "crds/cohorts.yaml",
        "crds/learners.yaml",
        "crds/gradeattempts.yaml",
        "controller/controller.yaml",
    } <= set(files)
    stale = [
        p
        for p, text in files.items()
        if not (ROOT / "manifests" / p).exists() or (ROOT / "manifests" / p).read_text() != text
    ]
    assert not stale, f"run hack/gen-install-manifests.py: {', '.join(stale)} out of date"
