"""The lab catalog ships inside the package: a wheel install finds every lab, whole."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_wheel_carries_every_lab_folder(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "-q",
            str(ROOT),
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
    assert in_repo <= names, f"missing from the wheel: {sorted(in_repo - names)[:5]}"
