"""Images on the real node: the pause image at start, and any archive a caller built."""

from __future__ import annotations

from pathlib import Path

from labctl.localcluster.images import pause
from labctl.localcluster.realnode import containerd
from labctl.localcluster.realnode.layout import Layout


def ensure_pause(layout: Layout) -> bool:
    """Build (cached) and import the sandbox image unless containerd has it; True when imported."""
    if containerd.image_present(layout, pause.NAME):
        return False
    imported = containerd.import_image(layout, pause.pause_archive(), pause.NAME)
    # containerd >= 1.7 keeps pinned images from the kubelet's image GC; older ones ignore the label.
    containerd.ctr(
        layout,
        "images",
        "label",
        pause.NAME,
        "io.cri-containerd.pinned=pinned",
        what="pin pause",
        check=False,
    )
    return imported


def load(layout: Layout, archive: Path, name: str) -> bool:
    """Import an OCI image archive as ``name`` into the node's containerd; True when imported."""
    return containerd.import_image(layout, archive, name)
