"""The OCI archive writer: a well-formed, deterministic image layout (containerd imports it in
test_real_node; here the structure itself, so later images can rely on it)."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile

from labctl.localcluster.images.oci import File, ImageConfig, image_archive, layer_tar


def _members(data: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]


def test_archive_is_a_consistent_oci_layout() -> None:
    layer = layer_tar([File("/app/server", b"\x7fELF", 0o755), File("/etc/app.conf", b"x=1\n", 0o644)])
    data = image_archive(
        "labctl.local/app:v1", [layer], ImageConfig(entrypoint=["/app/server"]), arch="amd64"
    )
    files = _members(data)
    assert json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    for name, blob in files.items():  # every blob is stored under its own digest
        if name.startswith("blobs/sha256/"):
            assert hashlib.sha256(blob).hexdigest() == name.rsplit("/", 1)[1]

    (desc,) = json.loads(files["index.json"])["manifests"]
    assert desc["annotations"]["io.containerd.image.name"] == "labctl.local/app:v1"
    assert desc["annotations"]["org.opencontainers.image.ref.name"] == "v1"
    manifest = json.loads(files[f"blobs/sha256/{desc['digest'].split(':')[1]}"])
    config = json.loads(files[f"blobs/sha256/{manifest['config']['digest'].split(':')[1]}"])
    assert config["config"]["Entrypoint"] == ["/app/server"]
    assert config["architecture"] == "amd64"
    assert config["rootfs"]["diff_ids"] == [manifest["layers"][0]["digest"]]  # uncompressed layer

    with tarfile.open(fileobj=io.BytesIO(layer)) as tar:
        names = {m.name: m for m in tar.getmembers()}
    assert sorted(names) == ["app", "app/server", "etc", "etc/app.conf"]  # parents added
    assert names["app/server"].mode == 0o755 and names["app"].isdir()

    again = image_archive(
        "labctl.local/app:v1", [layer], ImageConfig(entrypoint=["/app/server"]), arch="amd64"
    )
    assert again == data  # deterministic
