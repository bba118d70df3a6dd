"""What is generated from the lab format stays in step: the JSON Schemas and the docs' catalog table."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

from labctl.catalog.docs import catalog_labs, render
from labctl.catalog.load import read_folder
from tests.unit.test_lab_validate import LAB, write_lab

ROOT = Path(__file__).resolve().parents[2]


def hack(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name.replace("-", "_"), ROOT / "hack" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_lab_schemas_are_up_to_date() -> None:
    files = hack("gen-lab-schema").render_files()
    assert set(files) == {"lab.schema.json", "mistake.schema.json"}
    stale = [
        n
        for n, text in files.items()
        if not (ROOT / "labs" / n).exists() or (ROOT / "labs" / n).read_text() != text
    ]
    assert not stale, (
        f"the lab format changed: run .venv/bin/python hack/gen-lab-schema.py ({', '.join(stale)})"
    )


def test_lab_schema_speaks_yaml_keys() -> None:
    schema = json.loads((ROOT / "labs" / "lab.schema.json").read_text())
    check = schema["$defs"]["LabCheck"]
    assert {"timeoutSeconds", "failure", "grader"} <= set(check["properties"])
    assert "failure" in check["required"]
    assert schema["additionalProperties"] is False


def test_catalog_docs_are_up_to_date() -> None:
    text = render(catalog_labs(ROOT / "labs"))
    target = ROOT / "docs" / "catalog.md"
    assert target.exists() and target.read_text() == text, (
        "docs/catalog.md does not match the labs under labs/ (a lab was added or changed): "
        "run .venv/bin/python hack/gen-lab-docs.py and commit docs/catalog.md"
    )


def test_catalog_table_is_grouped_by_level(tmp_path: Path) -> None:
    first = read_folder(write_lab(tmp_path))[0]
    later = read_folder(
        write_lab(
            tmp_path,
            {
                **LAB,
                "id": "advanced/gpus",
                "level": "advanced",
                "title": "GPUs | quotas",
                "resources": {"gpu": 2},
                "prerequisites": ["foundation/first"],
            },
        )
    )[0]
    assert first is not None and later is not None
    text = render([later, first])
    assert text.index("## Foundation") < text.index("`foundation/first`") < text.index("## Professional")
    assert "## Professional\n\nNo labs yet.\n" in text
    assert (
        "| `advanced/gpus` | GPUs \\| quotas | Core MLOps | MLOps | beginner | 45m | 2 | mlflow | "
        "`foundation/first` | 1 / 2 / 3 | Deploy a thing and prove it answers. |"
    ) in text
