"""The images the learner stacks and labs run, built on this machine: no registry, no Docker.

Layers, bottom first (each cached by a key of its inputs, shared where images share it)::

    base     Debian bookworm minbase (debootstrap), docs/man/locales/apt lists left out,
             users nonroot (65532) and lab (10001)
    python   Debian's python3 (apt in a chroot over base)
    venv-ml  /opt/venv: numpy, scipy, scikit-learn, joblib, prometheus-client, PyYAML, cloudpickle
    venv-mlflow    + mlflow and boto3
    venv-labctl    + labctl (a wheel of this checkout) and its dependencies

    object-store     base + versitygw (the toolchain's build); mkdir is the base's
    prometheus       base + upstream Prometheus built from its Go module (:mod:`.prombuild`)
    alertmanager     base + Debian's prometheus-alertmanager
    config-reloader  base + labctl's reloader (:mod:`labctl.localcluster.images.reloader`)
    model-server     base + python + venv-ml + the server (:mod:`labctl.localcluster.images.model_server`)
    mlflow           base + python + venv-ml + venv-mlflow, run as one uvicorn process
                     (:mod:`labctl.provision.stacks.mlflow_server`)
    controller       base + python + venv-ml + venv-mlflow + venv-labctl

Python packages are pinned to the versions of the environment labctl runs in (its installed
distributions are the pip constraints), so a model pickled by labctl's scikit-learn loads in the
model server. Wheels come from PyPI through pip's own cache (``~/.cache/pip``).

An image archive is cached under ``~/.cache/labctl/images/stack/`` by a key of its layers'
keys and its config: a second build of unchanged inputs is a lookup. Layers are deterministic
(sorted entries, fixed mtimes, numeric owners), so the same trees give the same digests.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from labctl.core.errors import LabctlError, UsageError
from labctl.localcluster.images import model_server, prombuild, reloader, rootfs
from labctl.localcluster.images.oci import File, ImageConfig, Layer, files_layer, write_archive
from labctl.localcluster.toolchain import paths as toolchain_paths
from labctl.provision.stacks import mlflow_server
from labctl.provision.stacks.local_images import LOCAL_IMAGES, MLFLOW_VERSION

IMAGE_KEYS: tuple[str, ...] = tuple(LOCAL_IMAGES)
VENV = "/opt/venv"
PYTHON = f"{VENV}/bin/python"
NONROOT = str(rootfs.NONROOT_UID)
BASE_ENV = (f"PATH={rootfs.PATH}",)
PY_ENV = (
    f"PATH={VENV}/bin:{rootfs.PATH}",
    "HOME=/tmp",  # the root filesystem is read-only in the stacks; /tmp is a volume
    "PYTHONUNBUFFERED=1",
    "PYTHONDONTWRITEBYTECODE=1",  # pycs are in the image (unchecked-hash); never write more
    "LANG=C.UTF-8",
)
PYTHON_PACKAGES = ("python3",)
ML_REQUIREMENTS = (
    "numpy",
    "scipy",
    "scikit-learn",
    "joblib",
    "threadpoolctl",
    "prometheus-client",
    "PyYAML",
    "cloudpickle",
)
MLFLOW_REQUIREMENTS = (f"mlflow=={MLFLOW_VERSION}", "boto3")
LABELS = {"org.opencontainers.image.vendor": "labctl", "org.opencontainers.image.source": "labctl.images"}


@dataclass(frozen=True)
class Built:
    """One image archive and what `labctl images build` reports about it."""

    image: str  # the key: object-store, mlflow, ...
    name: str  # labctl.local/...:tag
    archive: Path
    digest: str  # the manifest digest, as containerd reports it
    size: int  # bytes of all layers (uncompressed)
    layers: tuple[str, ...]  # layer digests, bottom first
    cached: bool
    seconds: float

    def row(self) -> dict[str, Any]:
        return {
            "image": self.image,
            "name": self.name,
            "size": human_size(self.size),
            "bytes": self.size,
            "digest": self.digest,
            "status": "cached" if self.cached else "built",
            "seconds": round(self.seconds, 1),
            "layers": len(self.layers),
            "archive": str(self.archive),
        }


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def check_names(names: Sequence[str]) -> list[str]:
    """The image keys asked for, in build order; an unknown one is a UsageError naming it."""
    unknown = [n for n in names if n not in LOCAL_IMAGES]
    if unknown:
        raise UsageError(
            f"unknown image{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)} "
            f"(known: {', '.join(IMAGE_KEYS)})"
        )
    return [k for k in IMAGE_KEYS if k in names]


# -- inputs ----------------------------------------------------------------------------------


def _dist_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _pin(requirement: str) -> str:
    """``numpy`` -> ``numpy==<the version labctl's environment has>``; kept as is when pinned."""
    if "==" in requirement or (version := _dist_version(requirement)) is None:
        return requirement
    return f"{requirement}=={version}"


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@functools.lru_cache(maxsize=1)
def constraints() -> str:
    """pip constraints: every distribution of labctl's environment at its version (labctl excepted)."""
    pins = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if name and _canonical(name) != "labctl":
            pins[_canonical(name)] = f"{_canonical(name)}=={dist.version}"
    return "\n".join(sorted(pins.values())) + "\n"


def _without(text: str, requirements: Sequence[str]) -> str:
    names = {_canonical(re.split(r"[=<>!~\[ ]", r, maxsplit=1)[0]) for r in requirements}
    return "".join(line + "\n" for line in text.splitlines() if line.split("==")[0] not in names)


def repo_root() -> Path:
    """The checkout this module is in (labctl/localcluster/images/stack.py: three levels up)."""
    return Path(__file__).resolve().parents[3]


def _source_files(root: Path) -> list[Path]:
    files = [root / "pyproject.toml", root / "README.md"]
    for package in ("labctl", "graders"):
        files += [
            p
            for p in sorted((root / package).rglob("*"))
            if p.is_file() and "__pycache__" not in p.parts and p.suffix not in (".pyc", ".pyo")
        ]
    return [f for f in files if f.exists()]


def source_hash(root: Path) -> str:
    digest = hashlib.sha256()
    for path in _source_files(root):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def _dpkg_version(package: str) -> str:
    proc = subprocess.run(
        ["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0 or not proc.stdout.strip():
        raise LabctlError(f"the {package} image is made from Debian's package: apt-get install -y {package}")
    return proc.stdout.strip()


def _package_files(package: str, binary: str, renames: dict[str, str]) -> list[File]:
    """The server ``binary`` of a Debian package and its data under /usr/share (docs, man pages
    and the package's other tools left out)."""
    listing = subprocess.run(["dpkg", "-L", package], capture_output=True, text=True, check=True).stdout
    files = []
    for line in sorted(set(listing.splitlines())):
        path = Path(line)
        wanted = line == binary or line.startswith("/usr/share/")
        if not wanted or rootfs.excluded(line) or path.is_symlink() or not path.is_file():
            continue
        mode = 0o755 if path.stat().st_mode & 0o111 else 0o644
        files.append(File(renames.get(line, line), path.read_bytes(), mode))
    return files


def _dir(path: str, uid: int = rootfs.NONROOT_UID) -> File:
    return File(path, None, 0o755, uid, uid)


PROMETHEUS_YML = """\
# The image's default: scrape itself. The stacks mount their own configuration.
global:
  scrape_interval: 15s
scrape_configs:
  - job_name: prometheus
    static_configs:
      - targets: ["localhost:9090"]
"""
ALERTMANAGER_YML = """\
# The image's default: one receiver with no integrations. The stacks mount their own configuration.
route:
  receiver: default
receivers:
  - name: default
"""


# -- the builder -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """What one image is made of: its layers' keys (cheap) and how to make the layers (not)."""

    key: str
    layers: Callable[[], list[Layer]]
    config: ImageConfig


class Builder:
    """Builds images, sharing layers between them; ``report`` gets progress lines."""

    def __init__(self, report: Callable[[str], None] = lambda _msg: None, log: Path | None = None) -> None:
        self.report = report
        self.log = log or rootfs.images_cache() / "build.log"
        self._layers: dict[str, tuple[Path, Layer]] = {}

    # keys: cheap, no building

    @functools.cached_property
    def base_key(self) -> str:
        return rootfs.base_key()[0]

    @functools.cached_property
    def python_key(self) -> str:
        return rootfs.key_of("python", self.base_key, PYTHON_PACKAGES, rootfs.RECIPE)

    @functools.cached_property
    def ml_key(self) -> str:
        return rootfs.key_of("venv-ml", self.python_key, [_pin(r) for r in ML_REQUIREMENTS])

    @functools.cached_property
    def mlflow_key(self) -> str:
        return rootfs.key_of("venv-mlflow", self.ml_key, [_pin(r) for r in MLFLOW_REQUIREMENTS])

    @functools.cached_property
    def labctl_key(self) -> str:
        digest = hashlib.sha256(constraints().encode()).hexdigest()[:16]
        return rootfs.key_of("venv-labctl", self.mlflow_key, source_hash(repo_root()), digest)

    # layers: built once, then cached on disk

    def _base(self) -> tuple[Path, Layer]:
        if "base" not in self._layers:
            self.report("base: debootstrap bookworm minbase (cached after the first build)")
            base = rootfs.ensure_base(self.log)
            self._layers["base"] = (base.tree, rootfs.base_layer(base))
        return self._layers["base"]

    def _overlay(
        self, name: str, key: str, below: Sequence[str], build: Callable[[rootfs.Chroot, Path], None]
    ) -> tuple[Path, Layer]:
        if name not in self._layers:
            lowers = [self._layer(n)[0] for n in reversed(below)]  # top first, for overlayfs
            self.report(f"{name}: layer {key}")
            keep = name != "venv-labctl"  # keyed by the checkout's source: a new one per edit
            self._layers[name] = rootfs.overlay_layer(name, key, lowers, build, self.log, keep_older=keep)
        return self._layers[name]

    def _layer(self, name: str) -> tuple[Path, Layer]:
        makers: dict[str, Callable[[], tuple[Path, Layer]]] = {
            "base": self._base,
            "python": lambda: self._overlay("python", self.python_key, ["base"], self._build_python),
            "venv-ml": lambda: self._overlay("venv-ml", self.ml_key, ["base", "python"], self._build_ml),
            "venv-mlflow": lambda: self._overlay(
                "venv-mlflow", self.mlflow_key, ["base", "python", "venv-ml"], self._build_mlflow
            ),
            "venv-labctl": lambda: self._overlay(
                "venv-labctl",
                self.labctl_key,
                ["base", "python", "venv-ml", "venv-mlflow"],
                self._build_labctl,
            ),
        }
        return makers[name]()

    def _stack(self, *names: str) -> list[Layer]:
        return [self._layer(n)[1] for n in names]

    def _build_python(self, box: rootfs.Chroot, upper: Path) -> None:
        install = ["apt-get", "install", "-y", "--no-install-recommends", *PYTHON_PACKAGES]
        try:
            box.run(*install, what="apt-get install python3")
        except LabctlError:  # package lists older than the mirror: refresh them once
            box.run("apt-get", "update", what="apt-get update")
            box.run(*install, what="apt-get install python3")
        rootfs.compile_python(box, upper, "python3", ["/usr/lib/python3", "/usr/lib/python3.11"])

    def _pip(self, box: rootfs.Chroot, upper: Path, requirements: Sequence[str]) -> None:
        """pip (labctl's own, run from a bind mount) installs into /opt/venv in the chroot."""
        import pip

        box.bind(Path(pip.__file__).parent, "/build/pylib/pip", read_only=True)
        cache = Path.home() / ".cache" / "pip"
        cache.mkdir(parents=True, exist_ok=True)
        box.bind(cache, "/build/pip-cache")
        ca = Path("/etc/ssl/certs/ca-certificates.crt")
        cert: list[str] = []
        if ca.exists():
            box.bind(ca, "/build/ca.crt", read_only=True)
            cert = ["--cert", "/build/ca.crt"]
        (upper / "build" / "constraints.txt").write_text(_without(constraints(), requirements))
        box.run(
            PYTHON,
            "-m",
            "pip",
            "install",
            "--no-compile",
            "--disable-pip-version-check",
            "--no-warn-script-location",
            "--prefer-binary",
            "--cache-dir",
            "/build/pip-cache",
            *cert,
            "-c",
            "/build/constraints.txt",
            *requirements,
            what=f"pip install {' '.join(requirements)}",
            env={
                "PYTHONPATH": "/build/pylib",
                "PYTHONDONTWRITEBYTECODE": "1",
                "PIP_ROOT_USER_ACTION": "ignore",
            },
        )
        rootfs.compile_python(box, upper, PYTHON, [VENV])

    def _build_ml(self, box: rootfs.Chroot, upper: Path) -> None:
        box.run("python3", "-m", "venv", "--without-pip", VENV, what="python3 -m venv")
        self._pip(box, upper, [_pin(r) for r in ML_REQUIREMENTS])

    def _build_mlflow(self, box: rootfs.Chroot, upper: Path) -> None:
        self._pip(box, upper, [_pin(r) for r in MLFLOW_REQUIREMENTS])

    def _build_labctl(self, box: rootfs.Chroot, upper: Path) -> None:
        wheels = upper / "build" / "wheels"
        wheels.mkdir(parents=True, exist_ok=True)
        wheel = build_wheel(wheels)
        self._pip(box, upper, [f"/build/wheels/{wheel.name}"])

    # images

    def plan(self, image: str) -> Plan:
        labels = {**LABELS, "org.opencontainers.image.title": image}
        files_dir = rootfs.images_cache() / "layers"

        def files(layer: str, key: str, make: Callable[[], list[File]]) -> Callable[[], Layer]:
            def build() -> Layer:
                path = files_dir / f"{layer}-{key}.tar"
                meta = path.with_suffix(".json")
                if path.exists() and meta.exists():
                    return Layer.from_json(json.loads(meta.read_text()))
                made = files_layer(make(), path)
                meta.write_text(json.dumps(made.to_json()))
                return made

            return build

        if image == "object-store":
            binary = toolchain_paths.binary("versitygw")
            if not binary.exists():
                raise LabctlError("versitygw is not built yet: run `labctl toolchain build`")
            key = rootfs.key_of("versitygw", rootfs.file_hash(binary))
            top = files(
                "versitygw", key, lambda: [File("/usr/local/bin/versitygw", binary.read_bytes(), 0o755)]
            )
            config = ImageConfig(
                entrypoint=["/usr/local/bin/versitygw"],
                env=BASE_ENV,
                user=NONROOT,
                exposed_ports=["7070/tcp"],
                labels=labels,
            )
            return self._plan(image, [self.base_key, key], lambda: [*self._stack("base"), top()], config)
        if image == "prometheus":
            # Upstream's, built from its Go module: Debian's has no Kubernetes discovery (prombuild).
            conf, data = "/etc/prometheus/prometheus.yml", "/prometheus"
            key = rootfs.key_of(
                "prometheus", prombuild.VERSION, prombuild.MODULE_VERSION, prombuild.PLUGINS, PROMETHEUS_YML
            )

            def make_prometheus() -> list[File]:
                binary = prombuild.build()
                return [
                    File("/usr/bin/prometheus", binary.read_bytes(), 0o755),
                    File(conf, PROMETHEUS_YML.encode(), 0o644),
                    _dir(data),
                ]

            top = files("prometheus", key, make_prometheus)
            config = ImageConfig(
                entrypoint=["/usr/bin/prometheus"],
                cmd=[f"--config.file={conf}", f"--storage.tsdb.path={data}"],
                env=BASE_ENV,
                workdir=data,
                user=NONROOT,
                exposed_ports=["9090/tcp"],
                labels={**labels, "org.opencontainers.image.version": prombuild.VERSION},
            )
            return self._plan(image, [self.base_key, key], lambda: [*self._stack("base"), top()], config)
        if image == "alertmanager":
            package = "prometheus-alertmanager"
            version = _dpkg_version(package)
            conf, data = "/etc/alertmanager/alertmanager.yml", "/alertmanager"
            key = rootfs.key_of(image, package, version, ALERTMANAGER_YML, "3")

            def make_alertmanager() -> list[File]:
                renames = {"/usr/bin/prometheus-alertmanager": "/usr/bin/alertmanager"}
                extra = [File(conf, ALERTMANAGER_YML.encode(), 0o644), _dir(data)]
                return [*_package_files(package, f"/usr/bin/{package}", renames), *extra]

            top = files(image, key, make_alertmanager)
            config = ImageConfig(
                entrypoint=["/usr/bin/alertmanager"],
                cmd=[f"--config.file={conf}", f"--storage.path={data}"],
                env=BASE_ENV,
                workdir=data,
                user=NONROOT,
                exposed_ports=["9093/tcp"],
                labels={**labels, "org.opencontainers.image.version": version},
            )
            return self._plan(image, [self.base_key, key], lambda: [*self._stack("base"), top()], config)
        if image == "config-reloader":
            program = reloader.build()
            key = rootfs.key_of("config-reloader", program.name)
            target = "/usr/local/bin/prometheus-config-reloader"
            top = files("config-reloader", key, lambda: [File(target, program.read_bytes(), 0o755)])
            config = ImageConfig(
                entrypoint=[target], env=BASE_ENV, user=NONROOT, exposed_ports=["8080/tcp"], labels=labels
            )
            return self._plan(image, [self.base_key, key], lambda: [*self._stack("base"), top()], config)
        if image == "model-server":
            source = model_server.SOURCE.read_bytes()
            key = rootfs.key_of("model-server", hashlib.sha256(source).hexdigest())
            top = files(
                "model-server",
                key,
                lambda: [File("/opt/model-server/server.py", source, 0o644), _dir("/models", 0)],
            )
            config = ImageConfig(
                entrypoint=[PYTHON, "/opt/model-server/server.py"],
                env=(*PY_ENV, "MODEL_PATH=/models/model", "MODEL_NAME=model", "PORT=8080"),
                user=NONROOT,
                exposed_ports=["8080/tcp"],
                labels=labels,
            )
            keys = [self.base_key, self.python_key, self.ml_key, key]
            return self._plan(image, keys, lambda: [*self._stack("base", "python", "venv-ml"), top()], config)
        if image == "mlflow":
            # The stacks' one-process server (no `mlflow server` launcher waiting on uvicorn), with
            # the CLI's own defaults: sqlite and artifacts under the working directory. The stacks
            # set their own command and environment; this is for running the image by hand.
            defaults = mlflow_server.server_env("sqlite:///mlflow.db", "./mlartifacts")
            config = ImageConfig(
                cmd=[PYTHON, "-c", mlflow_server.LAUNCHER, *mlflow_server.server_args("0.0.0.0", 5000)],
                env=(*PY_ENV, *(f"{name}={value}" for name, value in defaults.items())),
                workdir="/tmp",
                user=NONROOT,
                exposed_ports=["5000/tcp"],
                labels={**labels, "org.opencontainers.image.version": MLFLOW_VERSION},
            )
            keys = [self.base_key, self.python_key, self.ml_key, self.mlflow_key]
            return self._plan(
                image, keys, lambda: self._stack("base", "python", "venv-ml", "venv-mlflow"), config
            )
        if image == "controller":
            config = ImageConfig(
                entrypoint=[f"{VENV}/bin/labctl"],
                cmd=["controller", "run"],
                env=PY_ENV,
                user=NONROOT,
                exposed_ports=["8080/tcp"],
                labels=labels,
            )
            keys = [self.base_key, self.python_key, self.ml_key, self.mlflow_key, self.labctl_key]
            return self._plan(
                image,
                keys,
                lambda: self._stack("base", "python", "venv-ml", "venv-mlflow", "venv-labctl"),
                config,
            )
        raise UsageError(f"unknown image {image!r}")

    def _plan(
        self, image: str, keys: list[str], layers: Callable[[], list[Layer]], config: ImageConfig
    ) -> Plan:
        config_text = json.dumps(asdict(config), sort_keys=True)
        key = rootfs.key_of(image, LOCAL_IMAGES[image], keys, rootfs.LAYER_RECIPE, config_text)
        return Plan(key, layers, config)

    def archive_path(self, image: str, plan: Plan) -> Path:
        return rootfs.images_cache() / "stack" / f"{image}-{plan.key}.tar"

    def cached(self, image: str) -> Built | None:
        """The image's archive when its inputs are unchanged since it was built."""
        plan = self.plan(image)
        path = self.archive_path(image, plan)
        meta = path.with_suffix(".json")
        if not (path.exists() and meta.exists()):
            return None
        data = json.loads(meta.read_text())
        return Built(
            image, data["name"], path, data["digest"], data["size"], tuple(data["layers"]), True, 0.0
        )

    def build(self, image: str) -> Built:
        started = time.monotonic()
        if (hit := self.cached(image)) is not None:
            return Built(**{**asdict(hit), "seconds": time.monotonic() - started})
        rootfs.check_root()
        plan = self.plan(image)
        layers = plan.layers()
        path = self.archive_path(image, plan)
        name = LOCAL_IMAGES[image]
        self.report(f"{image}: writing {path.name}")
        digest = write_archive(path, name, layers, plan.config)
        size = sum(layer.size for layer in layers)
        for stale in path.parent.glob(f"{image}-*"):  # archives of older inputs: GBs, never used again
            if stale.name not in (path.name, path.with_suffix(".json").name):
                stale.unlink(missing_ok=True)
        digests = tuple(x.digest for x in layers)
        meta = {"name": name, "digest": digest, "size": size, "layers": list(digests)}
        path.with_suffix(".json").write_text(json.dumps(meta, indent=2))
        return Built(image, name, path, digest, size, digests, False, time.monotonic() - started)


def build_wheel(out: Path) -> Path:
    """A wheel of this checkout, built from a copy (setuptools writes build/ and egg-info in-tree)."""
    root = repo_root()
    with tempfile.TemporaryDirectory(prefix="labctl-wheel-") as scratch:
        src = Path(scratch) / "src"
        for path in _source_files(root):
            target = src / path.relative_to(root)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "wheel",
                "--no-deps",
                "-w",
                str(out),
                str(src),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise LabctlError(f"pip wheel of labctl failed:\n{(proc.stdout + proc.stderr)[-2000:]}")
    wheels = sorted(out.glob("labctl-*.whl"))
    if not wheels:
        raise LabctlError(f"pip wheel left no labctl wheel in {out}")
    return wheels[-1]


def list_images() -> list[dict[str, Any]]:
    """Every known image, and its archive when the current inputs are built."""
    builder = Builder()
    rows = []
    for image in IMAGE_KEYS:
        try:
            hit = builder.cached(image)
        except LabctlError as exc:  # e.g. versitygw not built: say so, list the rest
            rows.append({"image": image, "name": LOCAL_IMAGES[image], "built": False, "note": str(exc)})
            continue
        row: dict[str, Any] = {"image": image, "name": LOCAL_IMAGES[image], "built": hit is not None}
        if hit is not None:
            row.update(size=human_size(hit.size), bytes=hit.size, digest=hit.digest, archive=str(hit.archive))
        rows.append(row)
    return rows
