"""The simulated cluster's volume provisioner: binds every claim of the ``labctl-sim`` class.

Claims must bind, or every pod that uses one stays unschedulable. This does what a real
dynamic provisioner does (Rancher's local-path provisioner, say), through the API: for each
pending claim of our StorageClass it makes a directory on this machine and a hostPath
PersistentVolume pre-bound to that claim (the PV controller then binds them), and it deletes
both once their claim is gone (reclaim policy Delete). kwok's pods mount nothing; a real
node's pods mount the directory. Quotas still count the claims.

Run by ``labctl sim up`` as its own process (``python -m labctl.localcluster.sim.provisioner``); its pid
lives beside kwokctl's so ``labctl sim down`` ends it with the rest.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any

from labctl.kube import Kube, KubeError

STORAGE_CLASS = "labctl-sim"
PROVISIONER = "labctl.dev/sim"
PROVISIONED_BY = "pv.kubernetes.io/provisioned-by"
RESYNC_S = 60  # a re-list of every claim and volume: cheap, but not free at 1000s of them

log = logging.getLogger("labctl.localcluster.sim.provisioner")


def storage_class() -> dict[str, Any]:
    """The default StorageClass of a simulated cluster."""
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {
            "name": STORAGE_CLASS,
            "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
            "labels": {"app.kubernetes.io/managed-by": "labctl"},
        },
        "provisioner": PROVISIONER,
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "Immediate",
        "allowVolumeExpansion": True,
    }


def wants_volume(claim: dict[str, Any]) -> bool:
    """A claim of our class that no volume is bound to yet."""
    spec = claim.get("spec") or {}
    return (
        spec.get("storageClassName") == STORAGE_CLASS
        and not spec.get("volumeName")
        and (claim.get("status") or {}).get("phase", "Pending") == "Pending"
        and not claim["metadata"].get("deletionTimestamp")
    )


def volume_name(claim_uid: str) -> str:
    # Named after the claim's uid, as real provisioners do: one claim, one volume, ever.
    return f"pvc-{claim_uid}"


def volume_for(claim: dict[str, Any], root: Path) -> dict[str, Any]:
    """The PersistentVolume a provisioner makes for ``claim`` under ``root``: its size, modes,
    pre-bound to it."""
    meta, spec = claim["metadata"], claim["spec"]
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {
            "name": volume_name(meta["uid"]),
            "annotations": {PROVISIONED_BY: PROVISIONER},
            "labels": {"app.kubernetes.io/managed-by": "labctl"},
        },
        "spec": {
            "capacity": {"storage": spec["resources"]["requests"]["storage"]},
            "accessModes": spec.get("accessModes") or ["ReadWriteOnce"],
            "volumeMode": spec.get("volumeMode", "Filesystem"),
            "persistentVolumeReclaimPolicy": "Delete",
            "storageClassName": STORAGE_CLASS,
            "hostPath": {"path": str(root / volume_name(meta["uid"])), "type": "Directory"},
            "claimRef": {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "namespace": meta["namespace"],
                "name": meta["name"],
                "uid": meta["uid"],
            },
        },
    }


def released(volume: dict[str, Any]) -> bool:
    """One of our volumes whose claim is gone: ours to delete."""
    annotations = volume["metadata"].get("annotations") or {}
    return (
        annotations.get(PROVISIONED_BY) == PROVISIONER
        and (volume.get("status") or {}).get("phase") in ("Released", "Failed")
        and (volume.get("spec") or {}).get("persistentVolumeReclaimPolicy") == "Delete"
    )


class Provisioner:
    """Watch claims and give each a volume; sweep released volumes on every resync."""

    def __init__(self, kube: Kube, root: Path) -> None:
        self.kube = kube
        self.root = root  # the volumes' directories
        self.stopping = False
        # Claims (by uid) given a volume: a claim changes a few times before it binds, and
        # each create of an existing volume would be a refused write the API server pays for.
        self.provisioned: set[str] = set()

    def provision(self, claim: dict[str, Any]) -> None:
        uid = claim["metadata"]["uid"]
        if uid in self.provisioned or not wants_volume(claim):
            return
        volume = volume_for(claim, self.root)
        directory = self.root / volume["metadata"]["name"]
        directory.mkdir(parents=True, exist_ok=True)
        # Any user: pods run as their own non-root uids and hostPath ignores fsGroup
        # (local-path provisioners make their directories 0777 for the same reason).
        directory.chmod(0o777)
        try:
            self.kube.create(volume)
            log.info("provisioned %s for %s/%s", volume["metadata"]["name"], *_where(claim))
        except KubeError as exc:
            if exc.status != 409:  # 409: made on an earlier run; the PV controller binds it
                raise
        self.provisioned.add(uid)

    def reclaim(self, claim: dict[str, Any]) -> None:
        """The claim is gone: its volume goes too (reclaim policy Delete), without waiting
        for the next sweep."""
        uid = claim["metadata"]["uid"]
        self.provisioned.discard(uid)
        name = volume_name(uid)
        volume = self.kube.get("v1", "PersistentVolume", name)
        annotations = (volume or {}).get("metadata", {}).get("annotations") or {}
        ours = annotations.get(PROVISIONED_BY) == PROVISIONER
        if ours and self.kube.delete("v1", "PersistentVolume", name):
            log.info("deleted volume %s of deleted claim %s/%s", name, *_where(claim))
        self.remove_directory(name)

    def sweep(self) -> None:
        for volume in self.kube.list("v1", "PersistentVolume"):
            name = volume["metadata"]["name"]
            if released(volume) and self.kube.delete("v1", "PersistentVolume", name):
                log.info("deleted released volume %s", name)
                self.remove_directory(name)

    def remove_directory(self, volume: str) -> None:
        """The volume's data goes with it, as with any reclaim policy Delete."""
        shutil.rmtree(self.root / volume, ignore_errors=True)

    def run(self) -> None:
        while not self.stopping:
            try:
                self.sweep()
                # A watch without a resourceVersion first replays every existing claim as
                # ADDED, so each pass also re-lists: nothing missed while we were away.
                for kind, claim in self.kube.watch("v1", "PersistentVolumeClaim", timeout_seconds=RESYNC_S):
                    if self.stopping:
                        break
                    if kind in ("ADDED", "MODIFIED"):
                        self.provision(claim)
                    elif kind == "DELETED":
                        self.reclaim(claim)
            except KubeError as exc:
                log.warning("%s; retrying", exc)
                time.sleep(1)


def _where(claim: dict[str, Any]) -> tuple[str, str]:
    return claim["metadata"]["namespace"], claim["metadata"]["name"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m labctl.localcluster.sim.provisioner", description=__doc__
    )
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--context")
    parser.add_argument("--volumes-dir", type=Path, required=True, help="where volumes' directories go")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    kube = Kube.connect(kubeconfig=args.kubeconfig, context=args.context)
    provisioner = Provisioner(kube, args.volumes_dir)

    def stop(_signum: int, _frame: object) -> None:
        provisioner.stopping = True
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    provisioner.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
