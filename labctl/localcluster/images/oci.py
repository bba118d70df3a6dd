"""Write OCI image archives (an OCI image layout in a tar) without a registry or a builder.

An image here is a list of layers, each a list of :class:`File`, plus the runtime config
(entrypoint, env, ...). The archive is what ``ctr images import`` (and ``docker load``,
``podman load``) read. Output is deterministic: same inputs, same digests.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import platform
import stat
import tarfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any

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


def _image_metadata(
    name: str, layers: Sequence[tuple[str, int]], config: ImageConfig, arch: str
) -> tuple[list[tuple[str, bytes]], dict[str, bytes]]:
    """The layout's small members (oci-layout, index.json) and small blobs (config, manifest) for
    ``layers`` given as (digest, size) of uncompressed tars (their digest is their diff ID)."""
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
            "rootfs": {"type": "layers", "diff_ids": [digest for digest, _ in layers]},
            "history": [{"created_by": "labctl.images.oci"} for _ in layers],
        }
    )
    manifest = {
        "schemaVersion": 2,
        "mediaType": MEDIA_MANIFEST,
        "config": blob(config_blob, MEDIA_CONFIG),
        "layers": [{"mediaType": MEDIA_LAYER, "digest": d, "size": size} for d, size in layers],
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
    return members, blobs


def _archive_header(tar: tarfile.TarFile) -> None:
    for dirname in ("blobs", "blobs/sha256"):
        info = tarfile.TarInfo(dirname)
        info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
        tar.addfile(info)


def _add_member(tar: tarfile.TarFile, name: str, size: int, data: IO[bytes]) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, 0o644, 0
    tar.addfile(info, data)


def image_archive(name: str, layers: Sequence[bytes], config: ImageConfig, arch: str | None = None) -> bytes:
    """The OCI layout tar of one image named ``name`` (``repo:tag``), single platform."""
    descs = [(_digest(x), len(x)) for x in layers]
    members, blobs = _image_metadata(name, descs, config, arch or host_arch())
    for layer in layers:
        blobs[_digest(layer)] = layer
    members += [(f"blobs/sha256/{d.removeprefix('sha256:')}", data) for d, data in sorted(blobs.items())]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        _archive_header(tar)
        for member, data in members:
            _add_member(tar, member, len(data), io.BytesIO(data))
    return buf.getvalue()


def write_image(path: Path, name: str, files: Iterable[File], config: ImageConfig) -> Path:
    """Write a one-layer image archive to ``path`` (atomically) and return it."""
    data = image_archive(name, [layer_tar(files)], config)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return path


# -- layers on disk: images of hundreds of MB are streamed, never held in memory --------------

MTIME = 0  # every entry of every layer: unchanged inputs give the same digest
WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"


@dataclass(frozen=True)
class Layer:
    """An uncompressed layer tar on disk; its digest is also its diff ID."""

    path: Path
    digest: str
    size: int

    def to_json(self) -> dict[str, Any]:
        return {"path": str(self.path), "digest": self.digest, "size": self.size}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Layer:
        return cls(Path(data["path"]), str(data["digest"]), int(data["size"]))


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()


def _finish(tmp: Path, out: Path) -> Layer:
    tmp.replace(out)
    return Layer(out, file_digest(out), out.stat().st_size)


def files_layer(files: Iterable[File], out: Path) -> Layer:
    """A layer of a few in-memory files (see :func:`layer_tar`), written to ``out``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_bytes(layer_tar(files))
    return _finish(tmp, out)


def _sorted_walk(root: Path) -> list[Path]:
    """Every path under ``root`` (not root itself), in name order: parents before children."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):  # symlinks to directories: listed, not entered
        found += [Path(dirpath, n) for n in (*dirnames, *filenames)]
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def _opaque(path: Path) -> bool:
    try:
        return os.getxattr(path, "trusted.overlay.opaque", follow_symlinks=False) == b"y"
    except OSError:
        return False


def tree_layer(
    root: Path,
    out: Path,
    *,
    exclude: Callable[[str], bool] | None = None,
    overlay_upper: bool = False,
) -> Layer:
    """A deterministic layer of the directory tree ``root`` (``/`` of the layer), written to ``out``.

    Entries are sorted, mtimes are :data:`MTIME`, owners numeric (no names), hard links kept
    (to the first name in order). ``exclude(path)`` (path like ``/usr/share/doc/x``) drops an
    entry and everything below it. Device nodes, sockets and fifos are left out: the runtime
    makes /dev. With ``overlay_upper``, ``root`` is an overlayfs upper directory: its whiteouts
    (0/0 character devices) and opaque directories become OCI whiteout files.
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    seen: dict[tuple[int, int], str] = {}
    skipped: list[str] = []
    with tarfile.open(tmp, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in _sorted_walk(root):
            rel = "/" + path.relative_to(root).as_posix()
            if any(rel.startswith(s + "/") for s in skipped):
                continue
            if exclude is not None and exclude(rel):
                skipped.append(rel)
                continue
            st = path.lstat()
            name = rel.lstrip("/")
            info = tarfile.TarInfo(name)
            info.mode, info.uid, info.gid, info.mtime = stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, MTIME
            if stat.S_ISCHR(st.st_mode) and overlay_upper and st.st_rdev == 0:
                parent, _, base = name.rpartition("/")
                info.name = f"{parent}/{WHITEOUT}{base}" if parent else f"{WHITEOUT}{base}"
                info.mode, info.uid, info.gid = 0o644, 0, 0
                tar.addfile(info)
            elif stat.S_ISDIR(st.st_mode):
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
                if overlay_upper and _opaque(path):
                    marker = tarfile.TarInfo(f"{name}/{OPAQUE}")
                    marker.mode, marker.mtime = 0o644, MTIME
                    tar.addfile(marker)
            elif stat.S_ISLNK(st.st_mode):
                info.type, info.linkname = tarfile.SYMTYPE, os.readlink(path)
                tar.addfile(info)
            elif stat.S_ISREG(st.st_mode):
                inode = (st.st_dev, st.st_ino)
                if st.st_nlink > 1 and inode in seen:
                    info.type, info.linkname = tarfile.LNKTYPE, seen[inode]
                    tar.addfile(info)
                    continue
                seen[inode] = name
                info.size = st.st_size
                with path.open("rb") as f:
                    tar.addfile(info, f)
            # devices, fifos, sockets: not part of an image
    return _finish(tmp, out)


def write_archive(path: Path, name: str, layers: Sequence[Layer], config: ImageConfig) -> str:
    """Write the OCI layout tar of ``layers`` (bottom first) to ``path`` atomically, streaming
    each layer from disk. Returns the manifest digest (what containerd reports for the image)."""
    members, blobs = _image_metadata(name, [(x.digest, x.size) for x in layers], config, host_arch())
    files: dict[str, Layer] = {x.digest: x for x in layers}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tarfile.open(tmp, mode="w", format=tarfile.PAX_FORMAT) as tar:
        _archive_header(tar)
        for member, data in members:
            _add_member(tar, member, len(data), io.BytesIO(data))
        for digest in sorted({*blobs, *files}):
            member = f"blobs/sha256/{digest.removeprefix('sha256:')}"
            if digest in blobs:
                _add_member(tar, member, len(blobs[digest]), io.BytesIO(blobs[digest]))
            else:
                with files[digest].path.open("rb") as f:
                    _add_member(tar, member, files[digest].size, f)
    tmp.replace(path)
    index = json.loads(dict(members)["index.json"])
    return str(index["manifests"][0]["digest"])
