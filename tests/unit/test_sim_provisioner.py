"""The sim provisioner decides as a dynamic provisioner would: which claims, what volume, when to reclaim."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from labctl.localcluster.sim.provisioner import (
    PROVISIONED_BY,
    PROVISIONER,
    STORAGE_CLASS,
    released,
    volume_for,
    wants_volume,
)


def claim(**spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "data", "namespace": "ns", "uid": "1234"},
        "spec": {
            "storageClassName": STORAGE_CLASS,
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "2Gi"}},
            **spec,
        },
        "status": {"phase": "Pending"},
    }


def test_only_pending_claims_of_our_class_without_a_volume_get_one() -> None:
    assert wants_volume(claim())
    assert not wants_volume(claim(storageClassName="fast-ssd"))
    assert not wants_volume(claim(volumeName="pvc-1234"))
    bound = claim()
    bound["status"]["phase"] = "Bound"
    assert not wants_volume(bound)
    going = claim()
    going["metadata"]["deletionTimestamp"] = "2026-11-25T00:00:00Z"
    assert not wants_volume(going)


def test_the_volume_is_pre_bound_to_that_claim_with_its_size_and_modes() -> None:
    volume = volume_for(claim(accessModes=["ReadWriteMany"]), Path("/srv/volumes"))
    assert volume["metadata"]["name"] == "pvc-1234"
    # A directory of its own, which must exist: a real node's kubelet mounts it.
    assert volume["spec"]["hostPath"] == {"path": "/srv/volumes/pvc-1234", "type": "Directory"}
    assert volume["metadata"]["annotations"] == {PROVISIONED_BY: PROVISIONER}
    assert volume["spec"]["capacity"] == {"storage": "2Gi"}
    assert volume["spec"]["accessModes"] == ["ReadWriteMany"]
    assert volume["spec"]["claimRef"] == {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "namespace": "ns",
        "name": "data",
        "uid": "1234",
    }
    assert volume["spec"]["persistentVolumeReclaimPolicy"] == "Delete"


def test_only_our_released_volumes_are_reclaimed() -> None:
    volume = volume_for(claim(), Path("/srv/volumes"))
    volume["status"] = {"phase": "Released"}
    assert released(volume)
    volume["status"] = {"phase": "Bound"}
    assert not released(volume)
    foreign = volume_for(claim(), Path("/srv/volumes"))
    foreign["metadata"]["annotations"] = {PROVISIONED_BY: "ebs.csi.aws.com"}
    foreign["status"] = {"phase": "Released"}
    assert not released(foreign)
