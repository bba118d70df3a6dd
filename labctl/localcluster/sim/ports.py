"""The TCP ports of a simulated cluster's components: chosen at random when it is created,
checked before it is restarted.

kwokctl picks ports by scanning down from 32766, so two clusters created at the same moment
can pick the same one, and a stopped cluster's ports can be taken by a newer one: restarting
it would then connect its fresh API server to the other cluster's etcd. Random ports make the
first unlikely; the check before a restart makes the second impossible.
"""

from __future__ import annotations

import random
import socket
from collections.abc import Iterable
from pathlib import Path

import yaml

# kwokctl option -> the component (its pid file's name) that listens on it.
PORT_OPTIONS: dict[str, str] = {
    "etcdPort": "etcd",
    "etcdPeerPort": "etcd",
    "kubeApiserverPort": "kube-apiserver",
    "kubeControllerManagerPort": "kube-controller-manager",
    "kubeSchedulerPort": "kube-scheduler",
    "kwokControllerPort": "kwok-controller",
}
# Below Linux's ephemeral range (32768+), so no outgoing connection holds one by chance.
PORT_RANGE = (20000, 32000)


def is_free(port: int) -> bool:
    """Whether a listener could bind ``port`` on every address now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def choose(rng: random.Random | None = None) -> dict[str, int]:
    """A free, distinct port for each component option."""
    rng = rng or random.SystemRandom()
    chosen: dict[str, int] = {}
    while len(chosen) < len(PORT_OPTIONS):
        port = rng.randrange(*PORT_RANGE)
        if port not in chosen.values() and is_free(port):
            chosen[list(PORT_OPTIONS)[len(chosen)]] = port
    return chosen


def saved(cluster_directory: Path) -> dict[str, int]:
    """The ports kwokctl recorded for a cluster (its kwok.yaml), by option name."""
    try:
        documents = list(yaml.safe_load_all((cluster_directory / "kwok.yaml").read_text()))
    except (OSError, yaml.YAMLError):
        return {}
    for doc in documents:
        if isinstance(doc, dict) and doc.get("kind") == "KwokctlConfiguration":
            options = doc.get("options") or {}
            return {key: int(options[key]) for key in PORT_OPTIONS if options.get(key)}
    return {}


def taken(ports: dict[str, int], running_components: Iterable[str]) -> dict[str, int]:
    """The ports that something other than the cluster's own running components holds."""
    running = set(running_components)
    return {
        key: port for key, port in ports.items() if PORT_OPTIONS[key] not in running and not is_free(port)
    }
