"""Idle memory of one learner's stack, per component: as local processes and as pods, side by side.

    .venv/bin/python bench/stack_memory.py                                  # local processes only
    .venv/bin/python bench/stack_memory.py --kubeconfig K --namespace NS    # and that learner's pods

local   Every container of the stack ``render_stacks`` gives a learner (default settings), run as
        a plain process in its own process group, as its manifest runs it: the rendered command,
        arguments and environment, with volume paths moved to a scratch directory, ports to free
        loopback ports and Service names to loopback. The images' programs are this machine's:
        MLflow is the ``.venv``'s Python (mlflow 3.17) running the rendered launcher, versitygw the
        toolchain's build, Prometheus our image's 3.5 build (Debian's 2.42 has no Kubernetes
        discovery), Alertmanager Debian's, the config reloader our image's build. A program that is
        not built here is reported and left out.
pods    The learner's pods on a real node (run this on the node, as root): each pod's processes
        are found by its UID in ``/proc/*/cgroup`` (the kubelet names pod cgroups after the UID,
        ``pod<uid>`` with cgroupfs, ``pod<uid_with_underscores>.slice`` with systemd) and split by
        container ID; the pause process is its pod's ``(sandbox)`` row.

Memory is RSS and PSS from ``/proc/<pid>/smaps_rollup``, summed over a container's process tree,
in MiB, sampled ``--settle`` seconds after everything is ready. The 400 MiB per learner target
is about the sum of RSS (issue 6): the cautious figure, as if nothing were shared. PSS is what
the node really spends per learner: learners' pods share their images' files, so it is lower.
"""

from __future__ import annotations

import argparse
import base64
import functools
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: the repo's tests/ helpers

from labctl.localcluster.images import gobuild, prombuild, reloader
from labctl.localcluster.toolchain import paths
from labctl.provision.stacks import ObjectStoreCredentials, StackSettings, render_stacks
from labctl.provision.tenancy import learner_labels
from tests.helpers.processes import free_port, server_process

TARGET_MIB = 400.0  # PSS per learner, idle (issue 6)
NAMESPACE = "bench-cohort-ada-0a1b2c"
Object = dict[str, Any]


# -- local: the rendered stack as plain processes ----------------------------------------------


@dataclass
class LocalContainer:
    """One rendered container as a local process: what to run and how to know it is ready."""

    component: str
    name: str
    cmd: list[str]
    env: dict[str, str]
    dirs: list[Path] = field(default_factory=list)  # its volumes, made before it starts
    files: dict[Path, str] = field(default_factory=dict)  # ConfigMap keys, written before it starts
    ready_url: str | None = None
    init: bool = False  # an init container: run to completion first
    missing: str | None = None  # why it cannot run here


def local_programs() -> dict[str, Path | None]:
    """Container name -> this machine's build of its image's program (None: not built here)."""

    def existing(path: Path | None) -> Path | None:
        return path if path is not None and os.access(path, os.X_OK) else None

    which = shutil.which("prometheus-alertmanager")
    reloader_path = paths.cache_root() / "images" / "bin"
    reloader_path /= f"config-reloader-{gobuild.source_hash('config-reloader', {'main.go': reloader.SOURCE})}"
    return {
        "versitygw": existing(paths.binary("versitygw")),
        "prometheus": existing(prombuild.binary_path()),
        "config-reloader": existing(reloader_path),
        "alertmanager": Path(which) if which else None,
    }


def _secret_values(objects: Iterable[Object]) -> dict[str, dict[str, str]]:
    found: dict[str, dict[str, str]] = {}
    for obj in objects:
        if obj["kind"] == "Secret":
            data = {k: base64.b64decode(v).decode() for k, v in (obj.get("data") or {}).items()}
            found[obj["metadata"]["name"]] = {**data, **(obj.get("stringData") or {})}
    return found


def _replacer(pairs: Mapping[str, str]) -> Callable[[str], str]:
    """Replace every key by its value in one pass, longest keys first, whole names only: a path
    ``/mlflow`` in ``sqlite:////mlflow/x.db`` but not in ``s3://mlflow/`` (a bucket) or ``/mlflow2``."""
    if not pairs:
        return lambda text: text
    keys = sorted(pairs, key=len, reverse=True)
    pattern = re.compile("|".join(rf"(?<!:/)(?<![\w.-]){re.escape(k)}(?![\w.-])" for k in keys))
    return lambda text: pattern.sub(lambda m: pairs[m.group(0)], text)


def _listen_arg(arg: str, ports: Mapping[int, int]) -> str:
    """``:9090`` / ``--x=:9090`` / ``--port=5000`` / ``--host=0.0.0.0`` -> loopback and the local port."""
    if arg == "--host=0.0.0.0":
        return "--host=127.0.0.1"
    for port, local in ports.items():
        if arg == f":{port}" or arg.endswith(f"=:{port}"):
            return arg[: -len(f":{port}")] + f"127.0.0.1:{local}"
        if arg == f"--port={port}":
            return f"--port={local}"
    return arg


def _local_ports(deployments: list[Object], port_for: Callable[[], int]) -> dict[str, dict[int | str, int]]:
    """Pod -> its container ports (by number and by name) -> a free local port; containers of a
    pod share its network, so a port is the pod's."""
    found: dict[str, dict[int | str, int]] = {}
    for dep in deployments:
        ports = found.setdefault(dep["metadata"]["name"], {})
        for c in dep["spec"]["template"]["spec"]["containers"]:
            for p in c.get("ports", []):
                ports[p["containerPort"]] = ports[p["name"]] = port_for()
    return found


def _service_addresses(
    objects: list[Object], namespace: str, ports: Mapping[str, Mapping[int | str, int]]
) -> dict[str, str]:
    """``svc[.ns[.svc]]:port`` (the forms the stack uses) -> the loopback address of its pod's port."""
    found = {}
    for svc in (o for o in objects if o["kind"] == "Service"):
        name, target = svc["metadata"]["name"], svc["spec"]["selector"].get("labctl.dev/stack", "")
        for p in svc["spec"]["ports"]:
            if (local := ports.get(target, {}).get(p["targetPort"])) is not None:
                for host in (f"{name}.{namespace}.svc", f"{name}.{namespace}", name):
                    found[f"{host}:{p['port']}"] = f"127.0.0.1:{local}"
    return found


def _program(c: Object, programs: Mapping[str, Path | None], python: str) -> tuple[list[str], str | None]:
    """The container's command head here, and why it cannot run here (None: it can)."""
    if c.get("command"):
        program = c["command"][0]
        resolved = python if program == "python" else shutil.which(program)
        return [resolved or program, *c["command"][1:]], None if resolved else f"{program} is not on PATH"
    built = programs.get(c["name"])
    return ([str(built)], None) if built else ([], f"no local build of {c['name']}'s image program")


def _env(c: Object, secrets: Mapping[str, Mapping[str, str]]) -> dict[str, str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    for ref in c.get("envFrom", []):
        env.update(secrets.get(ref.get("secretRef", {}).get("name", ""), {}))
    for e in c.get("env", []):
        key = e.get("valueFrom", {}).get("secretKeyRef")
        env[e["name"]] = secrets.get(key["name"], {}).get(key["key"], "") if key else e["value"]
    return env


def plan_local(
    objects: list[Object],
    namespace: str,
    scratch: Path,
    programs: Mapping[str, Path | None],
    *,
    python: str = sys.executable,
    port_for: Callable[[], int] = free_port,
) -> list[LocalContainer]:
    """Every container of the rendered Deployments as a local process (pure but for ``port_for``)."""
    deployments = [o for o in objects if o["kind"] == "Deployment"]
    configmaps = {o["metadata"]["name"]: o.get("data") or {} for o in objects if o["kind"] == "ConfigMap"}
    secrets = _secret_values(objects)
    pod_ports = _local_ports(deployments, port_for)
    services = _service_addresses(objects, namespace, pod_ports)
    planned: list[LocalContainer] = []
    for dep in deployments:
        pod, spec = dep["metadata"]["name"], dep["spec"]["template"]["spec"]
        component = dep["metadata"]["labels"].get("labctl.dev/stack", pod)
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        ports = pod_ports[pod]
        numbered = {p: local for p, local in ports.items() if isinstance(p, int)}
        loopback = {f"127.0.0.1:{p}": f"127.0.0.1:{local}" for p, local in numbered.items()}
        containers = [(True, c) for c in spec.get("initContainers", [])]
        for init, c in containers + [(False, c) for c in spec["containers"]]:
            mounts = {m["mountPath"]: scratch / pod / m["name"] for m in c.get("volumeMounts", [])}
            moved = _replacer({**services, **loopback, **{k: str(v) for k, v in mounts.items()}})
            head, missing = _program(c, programs, python)
            run = LocalContainer(
                component,
                c["name"],
                [moved(_listen_arg(a, numbered)) for a in [*head, *c.get("args", [])]],
                {k: moved(v) for k, v in _env(c, secrets).items()},
                dirs=list(mounts.values()),
                init=init,
                missing=missing,
            )
            for m in c.get("volumeMounts", []):
                source = volumes.get(m["name"], {}).get("configMap")
                for key, text in configmaps.get(source["name"], {}).items() if source else ():
                    run.files[mounts[m["mountPath"]] / key] = moved(text)
            probe = c.get("startupProbe") or c.get("readinessProbe") or {}
            if (get := probe.get("httpGet")) and (local := ports.get(get["port"])):
                run.ready_url = f"http://127.0.0.1:{local}{get['path']}"
            planned.append(run)
    return planned


# -- measuring ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Memory:
    rss_mib: float
    pss_mib: float
    processes: int

    def __add__(self, other: Memory) -> Memory:
        return Memory(
            self.rss_mib + other.rss_mib, self.pss_mib + other.pss_mib, self.processes + other.processes
        )


NOTHING = Memory(0.0, 0.0, 0)


def parse_smaps_rollup(text: str) -> Memory:
    """RSS and PSS (MiB) of one ``/proc/<pid>/smaps_rollup``."""
    values = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] in ("Rss:", "Pss:"):
            values[parts[0]] = int(parts[1]) / 1024
    return Memory(values.get("Rss:", 0.0), values.get("Pss:", 0.0), 1)


def memory_of(pids: Iterable[int]) -> Memory:
    total = NOTHING
    for pid in pids:
        try:
            total += parse_smaps_rollup(Path(f"/proc/{pid}/smaps_rollup").read_text())
        except OSError:  # gone, or a kernel thread
            continue
    return total


def process_tree(root: int) -> list[int]:
    """``root`` and its descendants, from /proc/*/stat."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(stat.parent.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += children.get(pid, [])
    return found


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _always() -> bool:
    return True


def measure_local(
    planned: list[LocalContainer], scratch: Path, *, settle: float
) -> dict[tuple[str, str], Memory]:
    """Start every runnable container (init containers first, to completion), wait until all are
    ready, settle, measure; every process group is ended on the way out."""
    for run in planned:
        for d in run.dirs:
            d.mkdir(parents=True, exist_ok=True)
        for path, text in run.files.items():
            path.write_text(text)
    for run in (r for r in planned if r.init and not r.missing):
        subprocess.run(run.cmd, env=run.env, check=True, capture_output=True, timeout=60)
    found: dict[tuple[str, str], Memory] = {}
    with ExitStack() as stack:
        procs = {}
        for run in (r for r in planned if not r.init and not r.missing):
            log = stack.enter_context((scratch / f"{run.component}-{run.name}.log").open("wb"))
            ready: Callable[[], bool] = functools.partial(_ready, run.ready_url) if run.ready_url else _always
            print(f"starting {run.component}/{run.name}", file=sys.stderr)
            procs[(run.component, run.name)] = stack.enter_context(
                server_process(run.cmd, ready=ready, timeout=300, env=run.env, cwd=scratch, log=log)
            )
        time.sleep(settle)
        for key, proc in procs.items():
            found[key] = memory_of(process_tree(proc.pid))
    return found


# -- pods: the learner's stack on a real node ---------------------------------------------------


@dataclass(frozen=True)
class PodInfo:
    component: str
    uid: str
    containers: dict[str, str]  # container ID (no runtime prefix) -> container name


def pod_infos(pods: Iterable[Object]) -> list[PodInfo]:
    """From Pod objects as the API returns them (camelCase; snake_case as the Python client's models)."""
    infos = []
    for pod in pods:
        meta, status = pod["metadata"], pod.get("status") or {}
        component = (meta.get("labels") or {}).get("labctl.dev/stack")
        if not component:
            continue
        statuses = status.get("containerStatuses") or status.get("container_statuses") or []
        ids = {}
        for s in statuses:
            cid = s.get("containerID") or s.get("container_id") or ""
            if cid:
                ids[cid.split("://", 1)[-1]] = s["name"]
        infos.append(PodInfo(component, meta["uid"], ids))
    return infos


def cgroup_owner(cgroup_text: str, pods: Iterable[PodInfo]) -> tuple[PodInfo, str] | None:
    """The pod and container a process belongs to, from its ``/proc/<pid>/cgroup``: the pod by
    UID in its cgroup path (dashes, or underscores under the systemd driver), the container by
    ID; a process of the pod in no container's cgroup is its sandbox (pause)."""
    for pod in pods:
        if pod.uid not in cgroup_text and pod.uid.replace("-", "_") not in cgroup_text:
            continue
        for cid, name in pod.containers.items():
            if cid in cgroup_text:
                return pod, name
        return pod, "(sandbox)"
    return None


def measure_pods(pods: list[PodInfo]) -> dict[tuple[str, str], Memory]:
    found: dict[tuple[str, str], Memory] = {}
    for cgroup in Path("/proc").glob("[0-9]*/cgroup"):
        try:
            owner = cgroup_owner(cgroup.read_text(), pods)
        except OSError:
            continue
        if owner is not None:
            key = (owner[0].component, owner[1])
            found[key] = found.get(key, NOTHING) + memory_of([int(cgroup.parent.name)])
    return found


def list_pods(kubeconfig: str, context: str | None, namespace: str) -> list[Object]:
    from labctl.kube import Kube

    return Kube.connect(kubeconfig=kubeconfig, context=context).list("v1", "Pod", namespace=namespace)


# -- report -------------------------------------------------------------------------------------


def table(local: Mapping[tuple[str, str], Memory], pods: Mapping[tuple[str, str], Memory] | None) -> str:
    """Rows per (component, container), then totals per learner against the target."""
    keys = sorted({*local, *(pods or {})})
    header = f"{'component':<14}{'container':<17}{'local RSS':>11}{'local PSS':>11}"
    header += f"{'pod RSS':>11}{'pod PSS':>11}" if pods is not None else ""

    def cells(m: Memory | None) -> str:
        return f"{m.rss_mib:>11.1f}{m.pss_mib:>11.1f}" if m else f"{'-':>11}{'-':>11}"

    lines = [header]
    for component, name in keys:
        row = f"{component:<14}{name:<17}{cells(local.get((component, name)))}"
        lines.append(row + (cells(pods.get((component, name))) if pods is not None else ""))
    total_local = sum(local.values(), NOTHING)
    total = f"{'total':<31}{cells(total_local)}"
    lines.append(total + (cells(sum(pods.values(), NOTHING)) if pods is not None else ""))
    for label, figures in (("local", local), ("pods", pods)):
        if figures is not None:
            summed = sum(figures.values(), NOTHING)
            verdict = "within" if summed.rss_mib <= TARGET_MIB else "OVER"
            lines.append(
                f"{label}: {summed.rss_mib:.0f} MiB RSS ({summed.pss_mib:.0f} MiB PSS) per learner, "
                f"{verdict} the {TARGET_MIB:.0f} MiB target"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--settle", type=float, default=20.0, help="seconds idle before measuring")
    parser.add_argument("--kubeconfig", help="a cluster whose real node is this machine")
    parser.add_argument("--context")
    parser.add_argument("--namespace", help="the learner's namespace (with --kubeconfig)")
    parser.add_argument("--no-local", action="store_true", help="measure the pods only")
    args = parser.parse_args(argv)
    if args.kubeconfig and not args.namespace:
        parser.error("--kubeconfig needs --namespace (the learner's)")
    pods = None
    if args.kubeconfig:
        infos = pod_infos(list_pods(args.kubeconfig, args.context, args.namespace))
        if not infos:
            print(f"no stack pods in namespace {args.namespace}", file=sys.stderr)
            return 1
        pods = measure_pods(infos)
    local: dict[tuple[str, str], Memory] = {}
    if not args.no_local:
        creds = ObjectStoreCredentials(access_key="benchACCESSKEY0000", secret_key="bench-secret-0123456789")
        objects = render_stacks(NAMESPACE, learner_labels("bench-cohort", NAMESPACE), creds, StackSettings())
        with tempfile.TemporaryDirectory(prefix="stack-memory-") as tmp:
            planned = plan_local(objects, NAMESPACE, Path(tmp), local_programs())
            for run in (r for r in planned if r.missing):
                print(f"left out {run.component}/{run.name}: {run.missing}", file=sys.stderr)
            local = measure_local(planned, Path(tmp), settle=args.settle)
    print(table(local, pods))
    return 0


if __name__ == "__main__":
    sys.exit(main())
