"""Where the toolchain lives on disk, and which binaries are still missing.

Binaries are cached under ``~/.cache/labctl/bin/<group>-<version>/`` so bumping a pin
never reuses a stale build, and two checkouts share one build.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from labctl.localcluster.toolchain import versions


@dataclass(frozen=True)
class Group:
    """Binaries built from one Go module in one ``go build`` invocation."""

    name: str
    module: str
    version: str
    binaries: dict[str, str]  # binary name -> Go package path

    @property
    def key(self) -> str:
        return f"{self.name}-{self.version}"


KUBERNETES = Group(
    name="kubernetes",
    module="k8s.io/kubernetes",
    version=versions.KUBERNETES,
    binaries={
        "kube-apiserver": "k8s.io/kubernetes/cmd/kube-apiserver",
        "kube-controller-manager": "k8s.io/kubernetes/cmd/kube-controller-manager",
        "kube-scheduler": "k8s.io/kubernetes/cmd/kube-scheduler",
        "kubectl": "k8s.io/kubernetes/cmd/kubectl",
    },
)
ETCD = Group(
    name="etcd",
    module="go.etcd.io/etcd/server/v3",
    version=versions.ETCD,
    binaries={"etcd": "go.etcd.io/etcd/server/v3"},
)
KWOK = Group(
    name="kwok",
    module="sigs.k8s.io/kwok",
    version=versions.KWOK,
    binaries={"kwok": "sigs.k8s.io/kwok/cmd/kwok", "kwokctl": "sigs.k8s.io/kwok/cmd/kwokctl"},
)

VERSITYGW = Group(
    name="versitygw",
    module="github.com/versity/versitygw",
    version=versions.VERSITYGW,
    binaries={"versitygw": "github.com/versity/versitygw/cmd/versitygw"},
)

GROUPS: tuple[Group, ...] = (ETCD, KWOK, KUBERNETES, VERSITYGW)

# A real node (``labctl sim up --real-node``): the node agents, from the same module and
# version as the control plane, and cluster DNS. Not in GROUPS: a kwok-only sim needs none
# of them, so `labctl toolchain build` does not pay their build time.
KUBERNETES_NODE = Group(
    name="kubernetes-node",
    module="k8s.io/kubernetes",
    version=versions.KUBERNETES,
    binaries={
        "kubelet": "k8s.io/kubernetes/cmd/kubelet",
        "kube-proxy": "k8s.io/kubernetes/cmd/kube-proxy",
    },
)
COREDNS = Group(
    name="coredns",
    module="github.com/coredns/coredns",
    version=versions.COREDNS,
    binaries={"coredns": "github.com/coredns/coredns"},
)
NODE_GROUPS: tuple[Group, ...] = (KUBERNETES_NODE, COREDNS)

# Analyzers: kube-score checks every manifest labctl renders (`make lint`); cyclonus computes
# which pods the NetworkPolicies let reach which (the egress tests). Not needed to run a sim.
KUBE_SCORE = Group(
    name="kube-score",
    module="github.com/zegl/kube-score",
    version=versions.KUBE_SCORE,
    binaries={"kube-score": "github.com/zegl/kube-score/cmd/kube-score"},
)
CYCLONUS = Group(
    name="cyclonus",
    module="github.com/mattfenwick/cyclonus",
    version=versions.CYCLONUS,
    binaries={"cyclonus": "github.com/mattfenwick/cyclonus/cmd/cyclonus"},
)
ANALYZER_GROUPS: tuple[Group, ...] = (KUBE_SCORE, CYCLONUS)
ALL_GROUPS: tuple[Group, ...] = GROUPS + NODE_GROUPS + ANALYZER_GROUPS


def group_named(name: str) -> Group:
    """The group called ``name`` (``kubernetes``, ``kube-score``, ...); KeyError names the known ones."""
    for group in ALL_GROUPS:
        if group.name == name:
            return group
    raise KeyError(f"unknown toolchain group {name!r}; known: {', '.join(g.name for g in ALL_GROUPS)}")


def cache_root() -> Path:
    """The labctl cache: ``$LABCTL_CACHE_DIR``, else ``$XDG_CACHE_HOME/labctl``, else ``~/.cache/labctl``."""
    if explicit := os.environ.get("LABCTL_CACHE_DIR"):
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "labctl"


def bin_dir(group: Group) -> Path:
    return cache_root() / "bin" / group.key


def binary(name: str) -> Path:
    """The cached path of one binary, whether or not it is built yet."""
    for group in ALL_GROUPS:
        if name in group.binaries:
            return bin_dir(group) / name
    raise KeyError(f"unknown toolchain binary {name!r}")


def missing(groups: tuple[Group, ...] = GROUPS) -> list[str]:
    """Names of binaries not yet built, in build order."""
    return [
        name for group in groups for name in group.binaries if not os.access(bin_dir(group) / name, os.X_OK)
    ]
