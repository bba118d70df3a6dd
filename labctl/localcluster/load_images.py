"""Put built images into a sim's real node (its containerd), idempotently by digest.

Above sim, realnode and images (it uses all three), so none of them imports another's caller."""

from __future__ import annotations

from labctl.core.errors import LabctlError
from labctl.localcluster.images.stack import Built
from labctl.localcluster.realnode import containerd
from labctl.localcluster.realnode import node as realnode
from labctl.localcluster.realnode.layout import Layout
from labctl.localcluster.sim import cluster as sim_cluster

IMPORTED, UNCHANGED, REPLACED = "imported", "unchanged", "replaced"


def node_layout(sim: str) -> Layout:
    """The real node of sim ``sim``; a LabctlError saying how to start it when there is none."""
    cluster = sim_cluster.find(sim)
    if cluster is None:
        raise LabctlError(f"no simulated cluster {sim!r}: labctl sim up {sim} --real-node")
    if not realnode.exists(cluster.directory):
        raise LabctlError(f"simulated cluster {sim!r} has no real node: labctl sim up {sim} --real-node")
    return Layout(sim, cluster.directory)


def present_digest(layout: Layout, name: str) -> str | None:
    """The manifest digest containerd has for ``name``, or None."""
    listing = containerd.ctr(layout, "images", "ls", f"name=={name}", what=f"look up {name}", check=False)
    for line in listing.splitlines()[1:]:  # REF TYPE DIGEST SIZE PLATFORMS LABELS
        fields = line.split()
        if len(fields) >= 3 and fields[0] == name:
            return fields[2]
    return None


def load(built: Built, sim: str) -> str:
    """Import ``built`` into the real node unless the same digest is there: imported, unchanged
    or replaced (another digest under the name: removed first, then imported)."""
    layout = node_layout(sim)
    current = present_digest(layout, built.name)
    if current == built.digest:
        return UNCHANGED
    if current is not None:
        containerd.ctr(layout, "images", "rm", built.name, what=f"remove the old {built.name}")
    realnode.load_image(sim, layout.cluster_dir, built.archive, built.name)
    loaded = present_digest(layout, built.name)
    if loaded != built.digest:
        raise LabctlError(f"{built.name}: containerd has digest {loaded}, the archive {built.digest}")
    return IMPORTED if current is None else REPLACED
