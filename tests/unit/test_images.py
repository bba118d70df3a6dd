"""The stack images' parts that need neither root nor a node: layers from trees, archives
streamed from disk, the model server's protocols, the local image names, the CLI's bad input.
(tests/e2e/test_images.py builds the images and runs them on a real node.)"""

from __future__ import annotations

import hashlib
import http.client
import io
import json
import os
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from labctl.localcluster.images import oci, rootfs, stack
from labctl.localcluster.images.model_server import server
from labctl.localcluster.realnode.kubelet import NODE_LABEL
from labctl.localcluster.sim.spec import DEFAULT_NAME
from labctl.provision.stacks.local_images import LOCAL_IMAGES
from labctl.provision.stacks.settings import StackImages, load_stack_settings
from tests.conftest import labctl

ROOT = Path(__file__).resolve().parents[2]


def _tree(root: Path) -> Path:
    (root / "usr" / "bin").mkdir(parents=True)
    (root / "usr" / "bin" / "tool").write_bytes(b"#!/bin/sh\necho hi\n")
    (root / "usr" / "bin" / "tool").chmod(0o755)
    os.link(root / "usr" / "bin" / "tool", root / "usr" / "bin" / "tool-alias")
    (root / "usr" / "share" / "doc" / "tool").mkdir(parents=True)
    (root / "usr" / "share" / "doc" / "tool" / "README").write_text("docs")
    (root / "bin").symlink_to("usr/bin")
    (root / "etc").mkdir()
    (root / "etc" / "tool.conf").write_text("a=1\n")
    (root / "tmp").mkdir()
    (root / "tmp" / "scratch").write_text("left out")
    return root


def _entries(path: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(path) as tar:
        return {m.name: m for m in tar.getmembers()}


def test_tree_layers_are_deterministic_sorted_and_leave_out_excluded_paths(tmp_path: Path) -> None:
    tree = _tree(tmp_path / "tree")
    first = oci.tree_layer(tree, tmp_path / "a.tar", exclude=rootfs.excluded)
    os.utime(tree / "etc" / "tool.conf", (1, 1))  # mtimes never reach the layer
    second = oci.tree_layer(tree, tmp_path / "b.tar", exclude=rootfs.excluded)
    assert first.digest == second.digest == oci.file_digest(tmp_path / "a.tar")
    assert first.size == (tmp_path / "a.tar").stat().st_size
    entries = _entries(first.path)
    assert list(entries) == sorted(entries)
    assert "usr/share/doc" not in entries and "tmp/scratch" not in entries
    assert entries["tmp"].isdir()  # emptied, not dropped
    assert entries["bin"].issym() and entries["bin"].linkname == "usr/bin"
    assert entries["usr/bin/tool"].mode == 0o755
    assert entries["usr/bin/tool-alias"].islnk() and entries["usr/bin/tool-alias"].linkname == "usr/bin/tool"
    assert {m.mtime for m in entries.values()} == {oci.MTIME}


@pytest.mark.skipif(
    os.geteuid() != 0, reason="an overlay whiteout is a 0/0 character device: mknod needs root"
)
def test_overlay_whiteouts_and_opaque_dirs_become_oci_whiteouts(tmp_path: Path) -> None:
    upper = tmp_path / "upper"
    (upper / "etc").mkdir(parents=True)
    os.mknod(upper / "etc" / "gone.conf", 0o600 | 0o020000, os.makedev(0, 0))
    (upper / "opt" / "app").mkdir(parents=True)
    os.setxattr(upper / "opt" / "app", "trusted.overlay.opaque", b"y")
    layer = oci.tree_layer(upper, tmp_path / "l.tar", overlay_upper=True)
    entries = _entries(layer.path)
    assert entries["etc/.wh.gone.conf"].isfile() and entries["etc/.wh.gone.conf"].size == 0
    assert "etc/gone.conf" not in entries
    assert entries["opt/app/.wh..wh..opq"].isfile()


def test_streamed_archive_equals_the_in_memory_one(tmp_path: Path) -> None:
    files = [oci.File("/app/server", b"\x7fELF", 0o755), oci.File("/etc/app.conf", b"x=1\n", 0o644)]
    layer = oci.files_layer(files, tmp_path / "layer.tar")
    config = oci.ImageConfig(entrypoint=["/app/server"], user="65532", labels={"a": "b"})
    digest = oci.write_archive(tmp_path / "image.tar", "labctl.local/app:v1", [layer], config)
    in_memory = oci.image_archive("labctl.local/app:v1", [oci.layer_tar(files)], config)
    assert (tmp_path / "image.tar").read_bytes() == in_memory
    with tarfile.open(fileobj=io.BytesIO(in_memory)) as tar:
        index = json.loads(tar.extractfile("index.json").read())  # type: ignore[union-attr]
    assert index["manifests"][0]["digest"] == digest
    assert digest == "sha256:" + hashlib.sha256(_blob(in_memory, digest)).hexdigest()


def _blob(archive: bytes, digest: str) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        return tar.extractfile(f"blobs/sha256/{digest.split(':')[1]}").read()  # type: ignore[union-attr]


def test_excluded_paths() -> None:
    assert rootfs.excluded("/usr/share/doc")
    assert rootfs.excluded("/usr/share/doc/prometheus/changelog.gz")
    assert rootfs.excluded("/var/lib/apt/lists/deb.debian.org_Packages")
    assert rootfs.excluded("/var/cache/debconf/config.dat-old")
    assert not rootfs.excluded("/var/lib/apt")
    assert rootfs.excluded("/opt/venv/lib/python3.11/site-packages/scipy/tests")
    assert not rootfs.excluded("/opt/venv/lib/python3.11/site-packages/numpy/testing")
    assert not rootfs.excluded("/var/cache/debconf/config.dat")
    assert not rootfs.excluded("/usr/share/prometheus/web/static/x.css")


def test_local_image_settings_match_the_settings_file() -> None:
    settings = load_stack_settings(ROOT / "manifests" / "stack-settings" / "local-images.yaml")
    assert settings.images == StackImages.local()
    demo = load_stack_settings(ROOT / "hack" / "demo" / "stack-settings.yaml")
    assert demo.images == StackImages.local()
    assert dict(demo.node_selector) == {NODE_LABEL: DEFAULT_NAME}  # the demo's sim's real node
    assert StackImages().mlflow.startswith("ghcr.io/")  # upstream defaults untouched
    assert all(name.startswith("labctl.local/") for name in StackImages.local().model_dump().values())
    controller = (ROOT / "manifests" / "controller" / "controller.yaml").read_text()
    assert f"image: {LOCAL_IMAGES['controller']}" in controller


def test_constraints_pin_the_environment_but_not_labctl() -> None:
    pins = stack.constraints().splitlines()
    assert not [p for p in pins if p.startswith("labctl==")]
    assert any(p.startswith("scikit-learn==") for p in pins)
    assert stack._pin("scikit-learn").startswith("scikit-learn==")
    assert "mlflow==" not in stack._without(stack.constraints(), ["mlflow==3.17.2"])


def test_unknown_image_names_exit_2_naming_them() -> None:
    result = labctl("images", "build", "object-store", "nope", check=False)
    assert result.returncode == 2
    assert "unknown image: nope" in result.stderr and "object-store" in result.stderr


# -- the model server ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    import joblib
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    iris = load_iris()
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(iris.data, iris.target)
    path = tmp_path_factory.mktemp("model") / "model.joblib"
    joblib.dump(model, path)
    names = [str(n) for n in iris.feature_names]
    loaded = server.Model(server.load_model(path), "iris", names, None)
    httpd = server.Server(("127.0.0.1", 0), server.handler_for(loaded))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[1]
    httpd.shutdown()


def _call(port: int, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        data = json.dumps(body).encode() if body is not None else None
        conn.request(method, path, body=data, headers={"Content-Type": "application/json"})
        reply = conn.getresponse()
        return reply.status, reply.read()
    finally:
        conn.close()


SETOSA, VIRGINICA = [5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]


def test_model_server_speaks_kserve_v1_and_mlflow_scoring(model_server: int) -> None:
    assert _call(model_server, "GET", "/v1/models/iris") == (200, b'{"name": "iris", "ready": true}')
    assert _call(model_server, "GET", "/ping")[0] == 200
    status, body = _call(model_server, "POST", "/v1/models/iris:predict", {"instances": [SETOSA, VIRGINICA]})
    assert status == 200 and json.loads(body) == {"predictions": [0, 2]}
    columns = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]
    split = {"dataframe_split": {"columns": columns, "data": [VIRGINICA, SETOSA]}}
    assert json.loads(_call(model_server, "POST", "/invocations", split)[1]) == {"predictions": [2, 0]}
    records = {"dataframe_records": [dict(zip(columns, SETOSA, strict=True))]}
    assert json.loads(_call(model_server, "POST", "/invocations", records)[1]) == {"predictions": [0]}
    assert _call(model_server, "POST", "/v1/models/iris:predict", {"instances": [[1.0]]})[0] == 400
    assert _call(model_server, "POST", "/v1/models/other:predict", {"instances": [SETOSA]})[0] == 404


def test_model_server_exports_counts_latency_and_drift(model_server: int) -> None:
    shifted = [[5.8, 3.0, 3.8 + 10, 1.2] for _ in range(20)]  # petal length far off its training mean
    assert _call(model_server, "POST", "/v1/models/iris:predict", {"instances": shifted})[0] == 200
    status, body = _call(model_server, "GET", "/metrics")
    text = body.decode()
    assert status == 200
    assert "model_predictions_total" in text
    assert 'model_request_duration_seconds_bucket{le="0.005",protocol="kserve"}' in text
    assert 'model_input_feature_count{feature="petal_length_cm"}' in text
    drift = next(line for line in text.splitlines() if line.startswith("model_drift_score "))
    assert float(drift.split()[1]) > 3


def test_a_model_without_feature_names_takes_any_column_names(tmp_path: Path) -> None:
    import joblib
    from sklearn.datasets import load_iris
    from sklearn.tree import DecisionTreeClassifier

    iris = load_iris()
    path = tmp_path / "tree.pkl"
    joblib.dump(DecisionTreeClassifier(random_state=0).fit(iris.data, iris.target), path)
    model = server.Model(server.load_model(path), "tree", [], None)
    assert model.columns == [f"feature_{i}" for i in range(4)] and model.mean is None
    split = {"dataframe_split": {"columns": ["a", "b", "c", "d"], "data": [SETOSA]}}
    assert model.predict(model.rows("mlflow", split)) == [0]
    records = {"dataframe_records": [dict(zip("abcd", VIRGINICA, strict=True))]}
    assert model.predict(model.rows("mlflow", records)) == [2]


def test_prune_older_removes_finished_builds_of_other_inputs_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LABCTL_CACHE_DIR", str(tmp_path))
    trees, layers = tmp_path / "images" / "rootfs", tmp_path / "images" / "layers"
    layers.mkdir(parents=True)
    for key, done in (("aaaa", True), ("bbbb", True), ("cccc", False)):
        (trees / f"venv-labctl-{key}" / "opt").mkdir(parents=True)
        if done:
            (trees / f"venv-labctl-{key}.done").touch()
        (layers / f"venv-labctl-{key}-2.tar").touch()
    (trees / "venv-mlflow-aaaa").mkdir()
    (trees / "venv-mlflow-aaaa.done").touch()
    rootfs.prune_older("venv-labctl", "bbbb")
    assert sorted(p.name for p in trees.iterdir()) == [
        "venv-labctl-bbbb",
        "venv-labctl-bbbb.done",
        "venv-labctl-cccc",  # still being built by someone: no .done
        "venv-mlflow-aaaa",
        "venv-mlflow-aaaa.done",
    ]
    assert sorted(p.name for p in layers.iterdir()) == ["venv-labctl-bbbb-2.tar", "venv-labctl-cccc-2.tar"]


def test_the_controller_image_is_built_from_this_checkout() -> None:
    root = stack.repo_root()
    assert (root / "pyproject.toml").is_file() and (root / "labctl" / "cli" / "main.py").is_file()
