"""Write OCI image archives (an OCI image layout in a tar) without a registry or a builder.

An image here is a list of layers, each a list of :class:`File`, plus the runtime config
(entrypoint, env, ...). The archive is what ``ctr images import`` (and ``docker load``,
``podman load``) read. Output is deterministic: same inputs, same digests.
"""

from __future__ import annotations

import hashlib
import io
import json
import platform
import tarfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar"
GOARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


@dataclass(frozen=True)
class File:
    """One file of a layer. ``data=None`` with ``mode`` 0o40755-style is a directory."""

    path: str  # absolute path in the image, e.g. "/pause"
    data: bytes | None
    mode: int = 0o755
    uid: int = 0
    gid: int = 0


@dataclass(frozen=True)
class ImageConfig:
    """The runtime part of an OCI image config."""

    entrypoint: Sequence[str] = ()
    cmd: Sequence[str] = ()
    env: Sequence[str] = ("PATH=/usr/local/bin:/usr/bin:/bin",)
    workdir: str = "/"
    user: str = ""
    exposed_ports: Sequence[str] = ()  # "8080/tcp"
    labels: dict[str, str] = field(default_factory=dict)


def host_arch() -> str:
    machine = platform.machine().lower()
    return GOARCH.get(machine, machine)


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _json(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def layer_tar(files: Iterable[File]) -> bytes:
    """A deterministic, uncompressed layer tar; parent directories are added as needed."""
    entries: dict[str, File] = {}
    for f in files:
        path = PurePosixPath("/", f.path)
        for parent in reversed(path.parents[:-1]):  # all but "/"
            entries.setdefault(str(parent), File(str(parent), None, 0o755))
        entries[str(path)] = f
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(entries):
            f = entries[name]
            info = tarfile.TarInfo(name.lstrip("/"))
            info.mode, info.uid, info.gid, info.mtime = f.mode & 0o7777, f.uid, f.gid, 0
            if f.data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(f.data)
                tar.addfile(info, io.BytesIO(f.data))
    return buf.getvalue()


def image_archive(name: str, layers: Sequence[bytes], config: ImageConfig, arch: str | None = None) -> bytes:
    """The OCI layout tar of one image named ``name`` (``repo:tag``), single platform."""
    arch = arch or host_arch()
    blobs: dict[str, bytes] = {}

    def blob(data: bytes, media_type: str) -> dict[str, Any]:
        digest = _digest(data)
        blobs[digest] = data
        return {"mediaType": media_type, "digest": digest, "size": len(data)}

    runtime: dict[str, Any] = {"Env": list(config.env), "WorkingDir": config.workdir}
    if config.entrypoint:
        runtime["Entrypoint"] = list(config.entrypoint)
    if config.cmd:
        runtime["Cmd"] = list(config.cmd)
    if config.user:
        runtime["User"] = config.user
    if config.exposed_ports:
        runtime["ExposedPorts"] = {port: {} for port in config.exposed_ports}
    if config.labels:
        runtime["Labels"] = dict(config.labels)
    config_blob = _json(
        {
            "architecture": arch,
            "os": "linux",
            "config": runtime,
            "rootfs": {"type": "layers", "diff_ids": [_digest(layer) for layer in layers]},
            "history": [{"created_by": "labctl.images.oci"} for _ in layers],
        }
    )
    manifest = {
        "schemaVersion": 2,
        "mediaType": MEDIA_MANIFEST,
        "config": blob(config_blob, MEDIA_CONFIG),
        "layers": [blob(layer, MEDIA_LAYER) for layer in layers],
    }
    manifest_desc = blob(_json(manifest), MEDIA_MANIFEST)
    tag = name.rsplit(":", 1)[1] if ":" in name.rsplit("/", 1)[-1] else "latest"
    manifest_desc["platform"] = {"architecture": arch, "os": "linux"}
    manifest_desc["annotations"] = {
        "io.containerd.image.name": name,  # what `ctr images import` names the image
        "org.opencontainers.image.ref.name": tag,
    }
    index = {"schemaVersion": 2, "mediaType": MEDIA_INDEX, "manifests": [manifest_desc]}
    members = [("oci-layout", _json({"imageLayoutVersion": "1.0.0"})), ("index.json", _json(index))]
    members += [(f"blobs/sha256/{d.removeprefix('sha256:')}", data) for d, data in sorted(blobs.items())]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for dirname in ("blobs", "blobs/sha256"):
            info = tarfile.TarInfo(dirname)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
            tar.addfile(info)
        for member, data in members:
            info = tarfile.TarInfo(member)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def write_image(path: Path, name: str, files: Iterable[File], config: ImageConfig) -> Path:
    """Write a one-layer image archive to ``path`` (atomically) and return it."""
    data = image_archive(name, [layer_tar(files)], config)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return path
