"""MLflow's one-process launch: the program the stacks and the image run, and the MLflow it relies on.

The launcher runs in a subprocess against stub ``uvicorn`` and ``mlflow.server.handlers``
modules (it edits ``sys.modules``, so never in pytest's own process). What it borrows from
MLflow's internals is read from the installed package's source, without importing MLflow.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from labctl.localcluster.images import rootfs
from labctl.localcluster.images.stack import PYTHON, Builder
from labctl.provision.stacks import mlflow_server

STUB_UVICORN = """\
import json, sys
def main():
    from mlflow.server import handlers
    blocked = {name: sys.modules.get(name, "absent") is None for name in ("pyarrow", "scipy")}
    print(json.dumps({"argv": sys.argv[1:], "stores": handlers.CALLS, "blocked": blocked}))
"""
STUB_HANDLERS = """\
CALLS = []
def initialize_backend_stores(*, backend_store_uri, registry_store_uri, default_artifact_root):
    CALLS.append([backend_store_uri, registry_store_uri, default_artifact_root])
"""


def mlflow_source(*parts: str) -> Path:
    spec = importlib.util.find_spec("mlflow")  # finds the package without importing it
    assert spec is not None and spec.origin is not None, "mlflow is not installed"
    return Path(spec.origin).parent.joinpath(*parts)


def run_launcher(tmp_path: Path, env: dict[str, str], args: list[str]) -> subprocess.CompletedProcess[str]:
    (tmp_path / "mlflow" / "server").mkdir(parents=True)
    (tmp_path / "mlflow" / "__init__.py").write_text("")
    (tmp_path / "mlflow" / "server" / "__init__.py").write_text("")
    (tmp_path / "mlflow" / "server" / "handlers.py").write_text(STUB_HANDLERS)
    (tmp_path / "uvicorn.py").write_text(STUB_UVICORN)
    command = [sys.executable if c == "python" else c for c in mlflow_server.server_command()]
    return subprocess.run(
        [*command, *args],
        env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(tmp_path), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_launcher_opens_the_stores_then_serves_with_uvicorn_in_its_own_process(tmp_path: Path) -> None:
    env = mlflow_server.server_env("sqlite:////mlflow/mlflow.db", "s3://mlflow/")
    args = mlflow_server.server_args("0.0.0.0", 5000)
    proc = run_launcher(tmp_path, env, args)
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout)
    # Stores as `mlflow server` opens them, before uvicorn starts (the stub checks the order).
    assert seen["stores"] == [
        ["sqlite:////mlflow/mlflow.db", "sqlite:////mlflow/mlflow.db", "mlflow-artifacts:/"]
    ]
    log_config = str(tmp_path / "mlflow" / "server" / "uvicorn_log_config.yaml")
    assert seen["argv"] == ["--log-config", log_config, *args]
    assert args[-2:] == ["--workers=1", "mlflow.server.fastapi_app:app"]
    assert seen["blocked"] == {"pyarrow": True, "scipy": True}


def test_the_launcher_fails_without_the_server_environment(tmp_path: Path) -> None:
    proc = run_launcher(tmp_path, {}, mlflow_server.server_args("0.0.0.0", 5000))
    assert proc.returncode != 0 and "_MLFLOW_SERVER_FILE_STORE" in proc.stderr


def _string_constants(path: Path) -> dict[str, str]:
    """Module-level ``NAME = "value"`` assignments of a source file."""
    found = {}
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
            for target in node.targets:
                if isinstance(target, ast.Name) and isinstance(node.value.value, str):
                    found[target.id] = node.value.value
    return found


def test_the_environment_is_what_the_installed_mlflow_server_cli_hands_uvicorn() -> None:
    constants = set(_string_constants(mlflow_source("server", "constants.py")).values())
    env = mlflow_server.server_env("sqlite:///x.db", "s3://mlflow/")
    internal = {name for name in env if name.startswith("_MLFLOW_SERVER_")}
    assert internal and internal <= constants, f"MLflow no longer reads {sorted(internal - constants)}"
    public = (env.keys() - internal) | {"MLFLOW_SERVER_ALLOWED_HOSTS"}
    variables = mlflow_source("environment_variables.py").read_text()
    assert all(f'"{name}"' in variables for name in public)
    run_server = mlflow_source("server", "__init__.py").read_text()
    assert '"mlflow.server.fastapi_app:app" if using_uvicorn' in run_server  # the CLI's default app
    assert mlflow_source("server", "uvicorn_log_config.yaml").is_file()
    handlers = ast.parse(mlflow_source("server", "handlers.py").read_text())
    init = next(
        n for n in handlers.body if isinstance(n, ast.FunctionDef) and n.name == "initialize_backend_stores"
    )
    params = {a.arg for a in init.args.args + init.args.kwonlyargs}
    assert {"backend_store_uri", "registry_store_uri", "default_artifact_root"} <= params


def test_the_image_runs_the_same_launcher_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    # The base layer's key asks debootstrap and the apt mirror; the config does not depend on it.
    monkeypatch.setattr(rootfs, "base_key", lambda mirror=None: ("base-key", "mirror"))
    config = Builder().plan("mlflow").config
    assert config.cmd == [PYTHON, "-c", mlflow_server.LAUNCHER, *mlflow_server.server_args("0.0.0.0", 5000)]
    env = dict(e.split("=", 1) for e in config.env)
    assert env["_MLFLOW_SERVER_FILE_STORE"] == "sqlite:///mlflow.db" and config.workdir == "/tmp"
    assert env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"
