"""cyclonus (github.com/mattfenwick/cyclonus, built by labctl's toolchain) as a judge of NetworkPolicies.

``cyclonus analyze --mode query-traffic`` reads policies from a directory and, for each
connection of a traffic file (source and destination: a pod with its labels and namespace's
labels, or a bare IP; a port and protocol), says which policies allow or deny it in each
direction and whether it is allowed. :func:`reachability` returns those verdicts, parsed from
its tables; nothing here decides anything itself.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from labctl.localcluster.toolchain import paths


@dataclass(frozen=True)
class Pod:
    namespace: str
    labels: Mapping[str, str]
    ip: str


@dataclass(frozen=True)
class External:
    ip: str


Peer = Pod | External


@dataclass(frozen=True)
class Connection:
    source: Pod
    destination: Peer
    port: int
    protocol: str = "TCP"
    port_name: str = ""


@dataclass(frozen=True)
class Verdict:
    """cyclonus's answer for one connection: allowed overall, and the (direction, action) rows
    of its table, e.g. ("Egress", "Deny")."""

    allowed: bool
    rows: frozenset[tuple[str, str]] = field(default_factory=frozenset)

    def allowed_by(self, direction: str) -> bool:
        """A direction allows when no policy of it selects the pod, or one that does allows."""
        actions = {action for kind, action in self.rows if kind == direction}
        return not actions or "Allow" in actions


def binary() -> Path:
    path = paths.binary("cyclonus")
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"cyclonus is not built ({path}): run `labctl toolchain build --group cyclonus`")
    return path


def _peer(peer: Peer, namespaces: Mapping[str, Mapping[str, str]]) -> dict[str, Any]:
    if isinstance(peer, External):
        return {"IP": peer.ip}
    internal = {
        "PodLabels": dict(peer.labels),
        "NamespaceLabels": dict(namespaces[peer.namespace]),
        "Namespace": peer.namespace,
    }
    return {"Internal": internal, "IP": peer.ip}


def reachability(
    policies: Iterable[Mapping[str, Any]],
    namespaces: Mapping[str, Mapping[str, str]],
    connections: Sequence[Connection],
    workdir: Path,
) -> list[Verdict]:
    """cyclonus's verdict for each of ``connections`` under ``policies`` (namespace -> its labels)."""
    policy_dir = workdir / "policies"
    policy_dir.mkdir(parents=True, exist_ok=True)
    for i, policy in enumerate(policies):
        (policy_dir / f"{i:03d}-{policy['metadata']['name']}.yaml").write_text(yaml.safe_dump(dict(policy)))
    traffic = [
        {
            "Source": _peer(c.source, namespaces),
            "Destination": _peer(c.destination, namespaces),
            "ResolvedPort": c.port,
            "ResolvedPortName": c.port_name,
            "Protocol": c.protocol,
        }
        for c in connections
    ]
    traffic_path = workdir / "traffic.json"
    traffic_path.write_text(json.dumps(traffic))
    cmd = [
        str(binary()),
        "analyze",
        "--mode",
        "query-traffic",
        "--policy-path",
        str(policy_dir),
        "--traffic-path",
        str(traffic_path),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    if proc.returncode != 0:
        raise AssertionError(f"cyclonus exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    verdicts = parse(proc.stdout)
    if len(verdicts) != len(connections):
        raise AssertionError(
            f"cyclonus answered {len(verdicts)} of {len(connections)} queries:\n{proc.stdout}"
        )
    return verdicts


def parse(output: str) -> list[Verdict]:
    """The "Is traffic allowed?" tables of ``cyclonus analyze --mode query-traffic``, in order.

    Rows are | TYPE | ACTION | TARGET |; equal cells of consecutive rows are merged (left
    blank), a blank row separates Ingress from Egress, and the footer is | IS ALLOWED? | TRUE |.
    """
    verdicts = []
    for block in output.split("Is traffic allowed?")[1:]:
        rows: set[tuple[str, str]] = set()
        kind = action = ""
        allowed: bool | None = None
        for line in block.splitlines():
            if not line.startswith("|"):
                continue
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if cells[0] == "IS ALLOWED?":
                allowed = cells[1] == "TRUE"
                break
            if cells[0] == "TYPE":
                continue
            if not any(cells):
                kind = action = ""
                continue
            kind, action = cells[0] or kind, cells[1] or action
            if kind and action:
                rows.add((kind, action))
        if allowed is None:
            raise AssertionError(f"no verdict in cyclonus's table:\n{block}")
        verdicts.append(Verdict(allowed, frozenset(rows)))
    return verdicts
