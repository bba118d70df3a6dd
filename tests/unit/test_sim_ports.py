"""Ports of simulated clusters: random and distinct at creation, checked before a restart."""

from __future__ import annotations

import random
import socket
from pathlib import Path

import yaml

from labctl.localcluster.sim import ports


def test_choose_gives_distinct_free_ports_below_the_ephemeral_range() -> None:
    chosen = ports.choose(random.Random(7))
    assert set(chosen) == set(ports.PORT_OPTIONS)
    assert len(set(chosen.values())) == len(chosen)
    assert all(ports.PORT_RANGE[0] <= p < ports.PORT_RANGE[1] and ports.is_free(p) for p in chosen.values())


def test_saved_ports_are_read_from_kwokctl_config(tmp_path: Path) -> None:
    config = {"kind": "KwokctlConfiguration", "options": {"etcdPort": 32765, "kubeApiserverPort": 32764}}
    (tmp_path / "kwok.yaml").write_text(yaml.safe_dump_all([config, {"kind": "Stage"}]))
    assert ports.saved(tmp_path) == {"etcdPort": 32765, "kubeApiserverPort": 32764}
    assert ports.saved(tmp_path / "missing") == {}


def test_a_port_held_by_another_process_is_taken_unless_its_component_is_ours_and_running() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        held = listener.getsockname()[1]
        free = ports.choose()["etcdPort"]
        saved = {"etcdPort": held, "kubeApiserverPort": free}
        assert ports.taken(saved, running_components=[]) == {"etcdPort": held}
        assert ports.taken(saved, running_components=["etcd"]) == {}
