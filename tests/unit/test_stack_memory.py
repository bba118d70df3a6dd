"""bench/stack_memory.py's pure parts: the local plan from rendered objects, the pod half's parsing.

The pod half runs only on a real node; these tests feed it ``/proc`` text and Pod objects.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from labctl.provision.stacks import ObjectStoreCredentials, StackSettings, mlflow_server, render_stacks
from labctl.provision.tenancy import learner_labels

ROOT = Path(__file__).resolve().parents[2]
NS = "c1-ada-0a1b2c"
UID = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
CID = "7d5bf0c8b3a94a0e9f0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f6"
PAUSE = "1111111111111111111111111111111111111111111111111111111111111111"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("stack_memory", ROOT / "bench" / "stack_memory.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["stack_memory"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def planned(bench: ModuleType) -> dict[str, Any]:
    creds = ObjectStoreCredentials(access_key="labAKIA0123456789", secret_key="s3cr3t-s3cr3t-s3cr3t")
    objects = render_stacks(NS, learner_labels("c1", NS), creds, StackSettings())
    ports: Iterator[int] = iter(range(41000, 41100))
    programs = {name: Path(f"/bin/{name}") for name in ("versitygw", "prometheus", "alertmanager")}
    runs = bench.plan_local(
        objects,
        NS,
        Path("/S"),
        {**programs, "config-reloader": None},
        python="/py",
        port_for=lambda: next(ports),
    )
    return {r.name: r for r in runs}


def test_mlflow_runs_the_rendered_launcher_on_loopback_with_its_paths_moved(planned: dict[str, Any]) -> None:
    run = planned["mlflow"]
    assert run.cmd[:3] == ["/py", "-c", mlflow_server.LAUNCHER]
    port = int(run.ready_url.split(":")[2].split("/")[0])
    assert run.cmd[3:] == ["--host=127.0.0.1", f"--port={port}", "--workers=1", mlflow_server.APP]
    assert run.ready_url == f"http://127.0.0.1:{port}/health"
    assert run.env["_MLFLOW_SERVER_FILE_STORE"] == "sqlite:////S/mlflow/data/mlflow.db"
    assert run.env["_MLFLOW_SERVER_ARTIFACT_DESTINATION"] == "s3://mlflow/"  # a bucket, not a path
    assert run.env["HOME"] == "/S/mlflow/tmp"
    store = planned["versitygw"]
    store_port = store.cmd[store.cmd.index("--port") + 1]
    assert run.env["MLFLOW_S3_ENDPOINT_URL"] == f"http://{store_port}"  # the Service, on loopback
    assert run.env["AWS_SECRET_ACCESS_KEY"] == store.env["ROOT_SECRET_ACCESS_KEY"] == "s3cr3t-s3cr3t-s3cr3t"


def test_pod_local_ports_and_config_files_follow_the_pod(planned: dict[str, Any]) -> None:
    prometheus, reloader = planned["prometheus"], planned["config-reloader"]
    listen = next(a for a in prometheus.cmd if a.startswith("--web.listen-address="))
    assert listen.startswith("--web.listen-address=127.0.0.1:")
    address = listen.split("=", 1)[1]
    assert f"--reload-url=http://{address}/-/reload" in reloader.cmd  # same pod: same local port
    assert reloader.missing and not prometheus.missing  # no local build given for the reloader
    config = prometheus.files[Path("/S/prometheus/config/prometheus.yml")]
    alertmanager = planned["alertmanager"]
    am_address = next(a for a in alertmanager.cmd if a.startswith("--web.listen-address=")).split("=", 1)[1]
    assert f"- {am_address}" in config and "/S/prometheus/rules/*.yml" in config
    assert "--cluster.listen-address=" in alertmanager.cmd  # no gossip port, as in the pod


def test_the_bucket_init_container_runs_first_on_the_moved_volume(planned: dict[str, Any]) -> None:
    init = planned["buckets"]
    assert init.init and init.cmd[-3:] == [
        f"/S/object-store/data/buckets/{b}" for b in ("dvc", "mlflow", "submissions")
    ]
    assert init.cmd[0].endswith("mkdir")


def test_smaps_rollup_gives_rss_and_pss_in_mib(bench: ModuleType) -> None:
    text = "55d0-7ffd ---p 00000000 00:00 0  [rollup]\nRss:  204800 kB\nPss:  153600 kB\nPss_Anon: 1 kB\n"
    assert bench.parse_smaps_rollup(text) == bench.Memory(200.0, 150.0, 1)


def pod(uid: str = UID, **status: Any) -> dict[str, Any]:
    return {"metadata": {"uid": uid, "labels": {"labctl.dev/stack": "mlflow"}}, "status": status}


def test_pods_are_read_from_api_or_client_shapes_and_unlabelled_ones_ignored(bench: ModuleType) -> None:
    api = pod(containerStatuses=[{"name": "mlflow", "containerID": f"containerd://{CID}"}])
    client = pod(container_statuses=[{"name": "mlflow", "container_id": f"containerd://{CID}"}])
    other = {"metadata": {"uid": "x", "labels": {}}, "status": {}}
    expected = bench.PodInfo("mlflow", UID, {CID: "mlflow"})
    assert bench.pod_infos([api, other]) == bench.pod_infos([client]) == [expected]
    assert bench.pod_infos([pod()]) == [bench.PodInfo("mlflow", UID, {})]  # not started yet


@pytest.mark.parametrize(
    ("cgroup", "container"),
    [
        # cgroup v1, cgroupfs driver, below the sim's cgroup root
        (f"12:memory:/labctl-sim/kubepods/burstable/pod{UID}/{CID}\n3:cpu,cpuacct:/labctl-sim/x\n", "mlflow"),
        # cgroup v2, systemd driver: underscores in the pod's slice
        (
            f"0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID.replace('-', '_')}"
            f".slice/cri-containerd-{CID}.scope\n",
            "mlflow",
        ),
        (f"12:memory:/kubepods/burstable/pod{UID}/{PAUSE}\n", "(sandbox)"),
        ("0::/user.slice/user-0.slice/session-1.scope\n", None),
    ],
)
def test_a_process_is_owned_by_its_pod_and_container_from_its_cgroup(
    bench: ModuleType, cgroup: str, container: str | None
) -> None:
    info = bench.PodInfo("mlflow", UID, {CID: "mlflow"})
    other = bench.PodInfo("object-store", "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee", {})
    owner = bench.cgroup_owner(cgroup, [other, info])
    assert (owner[1] if owner else None) == container
    assert owner is None or owner[0] == info


def test_the_table_sums_per_learner_against_the_target(bench: ModuleType) -> None:
    memory = bench.Memory
    local = {
        ("mlflow", "mlflow"): memory(215.0, 196.0, 1),
        ("object-store", "versitygw"): memory(29.0, 29.0, 1),
    }
    pods = {("mlflow", "mlflow"): memory(230.0, 229.0, 1), ("mlflow", "(sandbox)"): memory(0.5, 0.2, 1)}
    pods[("prometheus", "prometheus")] = memory(180.0, 180.0, 2)
    text = bench.table(local, pods)
    lines = text.splitlines()
    assert lines[0].split() == [
        "component",
        "container",
        "local",
        "RSS",
        "local",
        "PSS",
        "pod",
        "RSS",
        "pod",
        "PSS",
    ]
    assert "mlflow        (sandbox)" in text and lines[-3].split() == [
        "total",
        "244.0",
        "225.0",
        "410.5",
        "409.2",
    ]
    assert lines[-2] == "local: 244 MiB RSS (225 MiB PSS) per learner, within the 400 MiB target"
    assert lines[-1] == "pods: 410 MiB RSS (409 MiB PSS) per learner, OVER the 400 MiB target"
    assert "pod RSS" not in bench.table(local, None)
