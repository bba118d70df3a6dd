"""Root filesystems for the stack images: a Debian base made with debootstrap, and layers made by
running commands in a chroot over an overlay of the layers below (the overlay's upper directory
*is* the new layer).

Everything is cached under ``~/.cache/labctl/images/`` by a key of its inputs: the base tree
(``rootfs/base-<key>``), each layer's upper directory (``rootfs/<name>-<key>``) and its tar
(``layers/<name>-<key>.tar``). A tree is complete when its ``.done`` marker exists, so an
interrupted build starts that step again. Needs root (debootstrap, mount, chroot).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from labctl.core.errors import LabctlError
from labctl.localcluster.images.oci import Layer, tree_layer
from labctl.localcluster.toolchain.paths import cache_root

SUITE = "bookworm"
VARIANT = "minbase"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
RECIPE = "3"  # bump when what is done to a tree changes (rebuilds every tree)
LAYER_RECIPE = "2"  # bump when what is left out of a layer changes (re-tars the cached trees)
NONROOT_UID = 65532  # the images' default user (distroless's "nonroot")
STACK_UID = 10001  # what the stack pods run as (StackSettings.run_as_user): named, for tools that ask
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# Left out of every layer: documentation, translations, package lists and caches, and what the
# runtime provides (/dev, /proc, /sys, /run, resolv.conf). The directories themselves stay.
EMPTIED = (
    "/dev",
    "/proc",
    "/sys",
    "/run",
    "/tmp",
    "/var/tmp",
    "/var/log",
    "/var/cache/apt",
    "/var/lib/apt/lists",
)
DROPPED = (
    "/usr/share/doc",
    "/usr/share/man",
    "/usr/share/info",
    "/usr/share/locale",
    "/usr/share/lintian",
    "/usr/share/linda",
    "/etc/resolv.conf",
    "/etc/hostname",
    "/build",  # our scratch inside a chroot
    "/root/.cache",
)


def excluded(path: str) -> bool:
    """Whether ``path`` (absolute, in the image) stays out of the layers."""
    if path in DROPPED or any(path.startswith(p + "/") for p in (*EMPTIED, *DROPPED)):
        return True
    if "/site-packages/" in path and path.endswith("/tests"):
        return True  # packages' own test suites (scipy's, pandas'...): never imported when serving
    return path.startswith("/var/cache/debconf/") and path.endswith("-old")


def images_cache() -> Path:
    return cache_root() / "images"


def key_of(*parts: object) -> str:
    digest = hashlib.sha256(json.dumps([str(p) for p in parts]).encode())
    return digest.hexdigest()[:16]


def file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def apt_mirror() -> str:
    """The Debian mirror apt already uses (deb822 ``URIs:`` or a one-line ``deb`` entry)."""
    sources = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for source in sources:
        try:
            text = source.read_text()
        except OSError:
            continue
        if source.suffix == ".sources":
            for stanza in re.split(r"\n\s*\n", text):
                uris = re.search(r"^URIs:\s*(\S+)", stanza, re.M)
                suites = re.search(r"^Suites:\s*(.+)$", stanza, re.M)
                enabled = not re.search(r"^Enabled:\s*no", stanza, re.M | re.I)
                if uris and suites and SUITE in suites.group(1).split() and enabled:
                    return uris.group(1).rstrip("/")
        elif source.suffix == ".list" or source.name == "sources.list":
            for line in text.splitlines():
                fields = re.sub(r"\[[^]]*\]", "", line).split()
                if len(fields) >= 3 and fields[0] == "deb" and fields[2] == SUITE:
                    return fields[1].rstrip("/")
    return DEFAULT_MIRROR


def _debootstrap_version() -> str:
    proc = subprocess.run(
        ["dpkg-query", "-W", "-f=${Version}", "debootstrap"], capture_output=True, text=True, check=False
    )
    return proc.stdout.strip() or "unknown"


def _nice(cmd: Sequence[str]) -> list[str]:
    """Heavy steps share the machine: run them at lower priority."""
    return ["nice", "-n", "10", *cmd]


def _run(
    cmd: Sequence[str], *, what: str, env: dict[str, str] | None = None, log: Path | None = None
) -> None:
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as out:
            out.write(f"\n$ {' '.join(cmd)}\n".encode())
            out.flush()
            proc = subprocess.run(list(cmd), stdout=out, stderr=subprocess.STDOUT, env=env, check=False)
        if proc.returncode != 0:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-25:])
            raise LabctlError(f"{what} failed (exit {proc.returncode}); log {log}:\n{tail}")
        return
    done = subprocess.run(list(cmd), capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise LabctlError(f"{what} failed (exit {done.returncode}):\n{(done.stdout + done.stderr)[-2000:]}")


def check_root() -> None:
    if os.geteuid() != 0:
        raise LabctlError("building the stack images needs root (debootstrap, mount, chroot)")


@dataclass(frozen=True)
class Base:
    """The debootstrapped tree every image starts from."""

    key: str
    tree: Path
    mirror: str

    @property
    def layer_path(self) -> Path:
        return images_cache() / "layers" / f"base-{self.key}-{LAYER_RECIPE}.tar"


def base_key(mirror: str | None = None) -> tuple[str, str]:
    mirror = mirror or apt_mirror()
    key = key_of("base", SUITE, VARIANT, mirror, _debootstrap_version(), RECIPE, NONROOT_UID, STACK_UID)
    return key, mirror


def _add_users(tree: Path) -> None:
    """``nonroot`` (65532, the images' default user) and ``lab`` (10001, what the stacks run as)."""
    users = [("nonroot", NONROOT_UID, "/home/nonroot"), ("lab", STACK_UID, "/tmp")]
    passwd, group = tree / "etc" / "passwd", tree / "etc" / "group"
    for name, uid, home in users:
        if f"\n{name}:" not in "\n" + passwd.read_text():
            with passwd.open("a") as f:
                f.write(f"{name}:x:{uid}:{uid}:{name}:{home}:/usr/sbin/nologin\n")
        if f"\n{name}:" not in "\n" + group.read_text():
            with group.open("a") as f:
                f.write(f"{name}:x:{uid}:\n")
    home_dir = tree / "home" / "nonroot"
    home_dir.mkdir(parents=True, exist_ok=True)
    os.chown(home_dir, NONROOT_UID, NONROOT_UID)
    home_dir.chmod(0o750)


def ensure_base(log: Path | None = None) -> Base:
    """The base tree (bookworm minbase from apt's mirror, plus the two users), made once."""
    check_root()
    key, mirror = base_key()
    tree = images_cache() / "rootfs" / f"base-{key}"
    done = tree.with_name(tree.name + ".done")
    if done.exists():
        return Base(key, tree, mirror)
    if shutil.which("debootstrap") is None:
        raise LabctlError("building the base image needs debootstrap: apt-get install -y debootstrap")
    shutil.rmtree(tree, ignore_errors=True)
    tree.parent.mkdir(parents=True, exist_ok=True)
    debs = images_cache() / "debs"  # downloaded packages, shared by every build
    debs.mkdir(parents=True, exist_ok=True)
    cmd = ["debootstrap", f"--variant={VARIANT}", f"--cache-dir={debs}", SUITE, str(tree), mirror]
    _run(_nice(cmd), what="debootstrap of the base image", log=log)
    _add_users(tree)
    done.touch()
    return Base(key, tree, mirror)


def base_layer(base: Base) -> Layer:
    path = base.layer_path
    return _cached_layer(path, lambda: tree_layer(base.tree, path, exclude=excluded))


def _cached_layer(path: Path, make: Callable[[], Layer]) -> Layer:
    meta = path.with_suffix(".json")
    if path.exists() and meta.exists():
        return Layer.from_json(json.loads(meta.read_text()))
    layer = make()
    meta.write_text(json.dumps(layer.to_json()))
    return layer


# -- layers made in a chroot over an overlay --------------------------------------------------


@dataclass
class Chroot:
    """A mounted overlay (``lowers`` read-only, ``upper`` taking every change) to run commands in."""

    merged: Path
    env: dict[str, str]
    log: Path | None
    mounts: list[Path] = field(default_factory=list)

    def run(self, *cmd: str, what: str, env: dict[str, str] | None = None) -> None:
        full_env = {**self.env, **(env or {})}
        _run(_nice(["chroot", str(self.merged), *cmd]), what=what, env=full_env, log=self.log)

    def bind(self, source: Path, target: str, *, read_only: bool = False) -> None:
        point = self.merged / target.lstrip("/")
        if source.is_dir():
            point.mkdir(parents=True, exist_ok=True)
        else:
            point.parent.mkdir(parents=True, exist_ok=True)
            point.touch()
        _run(["mount", "--bind", str(source), str(point)], what=f"bind {source}")
        self.mounts.append(point)
        if read_only:
            _run(["mount", "-o", "remount,bind,ro", str(point)], what=f"read-only {point}")


@contextlib.contextmanager
def chroot(lowers: Sequence[Path], upper: Path, log: Path | None = None) -> Iterator[Chroot]:
    """Mount an overlay of ``lowers`` (top first) with ``upper``, plus /proc and the host's DNS
    config; unmount all of it on the way out. The caller's changes land in ``upper``."""
    work, merged = upper.with_name(upper.name + ".work"), upper.with_name(upper.name + ".merged")
    for directory in (upper, work, merged):
        directory.mkdir(parents=True, exist_ok=True)
    options = f"lowerdir={':'.join(str(p) for p in lowers)},upperdir={upper},workdir={work}"
    _run(["mount", "-t", "overlay", "overlay", "-o", options, str(merged)], what="mount the build overlay")
    env = {"PATH": PATH, "HOME": "/root", "LANG": "C.UTF-8", "DEBIAN_FRONTEND": "noninteractive"}
    box = Chroot(merged, env, log, [merged])
    try:
        (merged / "proc").mkdir(exist_ok=True)
        _run(["mount", "-t", "proc", "proc", str(merged / "proc")], what="mount /proc in the chroot")
        box.mounts.append(merged / "proc")
        resolv = merged / "etc" / "resolv.conf"
        with contextlib.suppress(OSError):
            resolv.unlink()
        shutil.copyfile("/etc/resolv.conf", resolv)  # left out of the layer (see DROPPED)
        yield box
    finally:
        for point in reversed(box.mounts):
            if subprocess.run(["umount", str(point)], capture_output=True, check=False).returncode != 0:
                time.sleep(0.5)
                subprocess.run(["umount", "-l", str(point)], capture_output=True, check=False)
        shutil.rmtree(work, ignore_errors=True)
        with contextlib.suppress(OSError):
            merged.rmdir()


def new_python_files(upper: Path, under: str) -> list[str]:
    """``.py`` files this layer added below ``under`` (image paths), to compile them in place."""
    root = upper / under.lstrip("/")
    if not root.is_dir():
        return []
    return sorted("/" + str(p.relative_to(upper)) for p in root.rglob("*.py") if p.is_file())


def compile_python(box: Chroot, upper: Path, python: str, dirs: Sequence[str]) -> None:
    """Byte-compile the layer's new modules with unchecked-hash pycs: layers have fixed mtimes, so
    timestamp pycs would all look stale, and a read-only root filesystem could not replace them
    (every start would compile MLflow in memory)."""
    files = [f for d in dirs for f in new_python_files(upper, d)]
    if not files:
        return
    listing = upper / "build" / "compile.txt"
    listing.parent.mkdir(parents=True, exist_ok=True)
    listing.write_text("\n".join(files) + "\n")
    box.run(
        python,
        "-m",
        "compileall",
        "-q",
        "-f",
        "--invalidation-mode",
        "unchecked-hash",
        "-i",
        "/build/compile.txt",
        what="byte-compile the layer",
        env={"PYTHONDONTWRITEBYTECODE": ""},
    )


def prune_older(name: str, key: str) -> None:
    """Remove the finished trees and layers of ``name`` built from other inputs (a build in
    progress has no ``.done`` yet and is left alone)."""
    rootfs_dir, layers_dir = images_cache() / "rootfs", images_cache() / "layers"
    for done in rootfs_dir.glob(f"{name}-*.done"):
        old = done.name.removesuffix(".done").removeprefix(f"{name}-")
        if old == key or "-" in old:
            continue
        shutil.rmtree(rootfs_dir / f"{name}-{old}", ignore_errors=True)
        done.unlink(missing_ok=True)
        for layer in layers_dir.glob(f"{name}-{old}-*"):
            layer.unlink(missing_ok=True)


def overlay_layer(
    name: str,
    key: str,
    lowers: Sequence[Path],
    build: Callable[[Chroot, Path], None],
    log: Path | None = None,
    *,
    keep_older: bool = True,
) -> tuple[Path, Layer]:
    """The upper tree and layer of ``build(chroot, upper)`` run over ``lowers`` (top first), cached.
    ``keep_older=False``: builds of ``name`` from other inputs are removed (a layer whose key
    follows every source edit would otherwise leave ~0.5 GB per edit)."""
    check_root()
    upper = images_cache() / "rootfs" / f"{name}-{key}"
    done = upper.with_name(upper.name + ".done")
    path = images_cache() / "layers" / f"{name}-{key}-{LAYER_RECIPE}.tar"
    if not done.exists():
        shutil.rmtree(upper, ignore_errors=True)
        with chroot(lowers, upper, log) as box:
            build(box, upper)
        done.touch()
    layer = _cached_layer(path, lambda: tree_layer(upper, path, exclude=excluded, overlay_upper=True))
    if not keep_older:
        prune_older(name, key)
    return upper, layer
