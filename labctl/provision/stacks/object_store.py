"""The learner's S3-compatible object store: versitygw over a posix directory on a claim.

The learner's DVC remote and MLflow's artifact store. Its root credentials are the learner's
(derived by the caller, stable across reconciles) and are handed over in a Secret with every
variable boto3, DVC and MLflow read.

Buckets: for the posix backend a bucket *is* a top-level directory of the gateway root
(versitygw's documented layout), so an init container makes both directories before the
server starts. Chosen over a Job that calls CreateBucket because it needs no S3
client image, no wait for the server and no retries, runs again on every pod start (a bucket
the learner deleted comes back), and leaves no finished pod behind for each of hundreds of
learners. It reuses the object-store image, so no extra image is pulled.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field

from labctl.provision.stacks.common import (
    Disk,
    Object,
    Stack,
    container,
    data_volume,
    deployment,
    disk_for,
    egress_policy,
    http_get,
    liveness,
    pod_spec,
    readiness,
    scratch_volume,
    service,
    tcp_socket,
)
from labctl.provision.stacks.settings import Component

COMPONENT: Component = "object-store"
SERVICE = COMPONENT
SECRET = "object-store-credentials"
PORT = 7070
REGION = "us-east-1"  # versitygw's default region; clients must sign for the same one
DVC_BUCKET = "dvc"
MLFLOW_BUCKET = "mlflow"
SUBMISSIONS_BUCKET = "submissions"  # `labctl lab submit` puts git bundles here for the grader
BUCKETS = (DVC_BUCKET, MLFLOW_BUCKET, SUBMISSIONS_BUCKET)
DATA = "/data"
# The gateway serves a subdirectory, not the claim's root: an ext4-formatted volume has a
# root-owned lost+found at its root, which the posix backend would list as a bucket.
ROOT = f"{DATA}/buckets"


@dataclass(frozen=True)
class ObjectStoreCredentials:
    """The store's root key pair. The caller derives it; rendering never makes one up."""

    access_key: str
    secret_key: str = field(repr=False)  # never in logs or tracebacks


def endpoint(namespace: str) -> str:
    """The S3 endpoint, resolvable from any namespace and under any cluster domain."""
    return f"http://{SERVICE}.{namespace}.svc:{PORT}"


def secret_values(namespace: str, credentials: ObjectStoreCredentials) -> dict[str, str]:
    """What a learner's pod gets with ``envFrom: [{secretRef: {name: object-store-credentials}}]``."""
    url = endpoint(namespace)
    return {
        "AWS_ACCESS_KEY_ID": credentials.access_key,
        "AWS_SECRET_ACCESS_KEY": credentials.secret_key,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "AWS_ENDPOINT_URL": url,  # boto3 >= 1.28 and the AWS CLI read it
        "MLFLOW_S3_ENDPOINT_URL": url,  # MLflow's own name for it
        "DVC_BUCKET": DVC_BUCKET,
        "DVC_REMOTE_URL": f"s3://{DVC_BUCKET}",
        "MLFLOW_BUCKET": MLFLOW_BUCKET,
        "SUBMISSIONS_BUCKET": SUBMISSIONS_BUCKET,
    }


def render(stack: Stack, credentials: ObjectStoreCredentials) -> list[Object]:
    settings = stack.settings
    data, claims = data_volume(stack, COMPONENT, "data", settings.storage.object_store)
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": stack.meta(SECRET, COMPONENT),
        "type": "Opaque",
        # data, not stringData: server-side apply then round-trips it and a re-apply is a no-op.
        "data": {
            key: base64.b64encode(value.encode()).decode()
            for key, value in secret_values(stack.namespace, credentials).items()
        },
    }
    tmp = scratch_volume("tmp", "64Mi")
    buckets = container(
        "buckets",
        settings.images.object_store,
        settings.resources.bucket_init,
        command=["mkdir", "-p", *(f"{ROOT}/{bucket}" for bucket in BUCKETS)],
        mounts=[("data", DATA, False)],
        disk=Disk("4Mi", "16Mi"),  # a few directories on the data volume, no log
    )
    server = container(
        "versitygw",
        settings.images.object_store,
        settings.resources.object_store,
        # From the Secret, so the key pair is in neither the Deployment nor the process arguments.
        env=[
            _from_secret("ROOT_ACCESS_KEY_ID", "AWS_ACCESS_KEY_ID"),
            _from_secret("ROOT_SECRET_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY"),
        ],
        args=["--port", f":{PORT}", "--health", "/health", "--quiet", "posix", ROOT],
        ports=[("s3", PORT)],
        mounts=[("data", DATA, False), ("tmp", "/tmp", False)],
        # Objects go to the data volume; --quiet leaves the logs to errors. Whatever it stages
        # in os.TempDir is bounded by the /tmp emptyDir (the root filesystem is read-only).
        disk=disk_for("16Mi", settings.storage.container_logs, data, tmp),
        probes={
            "readinessProbe": readiness(http_get("/health", "s3")),
            # versitygw has one health path: liveness asks only whether it still accepts
            # connections, which a server busy streaming large objects does.
            "livenessProbe": liveness(tcp_socket("s3")),
        },
    )
    spec = pod_spec(
        stack,
        [server],
        [data, tmp],
        init_containers=[buckets],
    )
    return [
        secret,
        *claims,
        deployment(stack, COMPONENT, spec),
        service(stack, COMPONENT, [("s3", PORT)]),
        # A posix backend and a server that only answers: it opens no connection of its own.
        egress_policy(stack, COMPONENT, []),
    ]


def _from_secret(name: str, key: str) -> Object:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": SECRET, "key": key}}}
