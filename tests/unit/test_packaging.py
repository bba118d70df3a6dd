"""The lab catalog ships inside the package: a wheel install finds every lab, all but its hidden
data (learners install labctl too: the graders' labels must not reach them)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_wheel_carries_every_lab_folder_but_no_hidden_data(tmp_path: Path) -> None:
    # A copy of the tree: a stale build/ folder in the checkout would lend the wheel old files.
    source = tmp_path / "src"
    junk = shutil.ignore_patterns(".venv", ".git", "build", "dist", "*.egg-info", "__pycache__", ".*_cache")
    shutil.copytree(ROOT, source, ignore=junk)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "-q",
            str(source),
            "-w",
            str(tmp_path),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("labctl-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "labs/__init__.py" in names and "labs/lab.schema.json" in names
    in_repo = {
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / "labs").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    hidden = {name for name in in_repo if "/hidden/" in name}
    assert hidden, "the catalog has hidden data to keep out"
    assert in_repo - hidden <= names, f"missing from the wheel: {sorted(in_repo - hidden - names)[:5]}"
    assert not hidden & names, f"hidden data in the wheel: {sorted(hidden & names)[:5]}"
