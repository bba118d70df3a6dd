"""The learner's MLflow tracking server and model registry.

sqlite on a claim for runs and the registry; artifacts proxied by the server to the object
store's ``mlflow`` bucket, so learners' clients need only the tracking URI.

Sized for hundreds of learners per cluster: one process. ``mlflow server`` resolves its options
into environment variables, creates or checks the stores, then spawns uvicorn and waits on it:
a launcher that holds ~215 MiB (PSS) of imports for nothing (issue 6). The container runs what
that launcher would, in-process (:data:`LAUNCHER`): the same environment (:func:`server_env`,
MLflow 3.17's ``mlflow.server._run_server``), the stores initialised before serving, then
uvicorn on MLflow's FastAPI app. It is a ``python -c`` program rather than a file of ours so
the upstream image (``python:3.11-slim`` + ``pip install mlflow[...]``) runs it unchanged.
"""

from __future__ import annotations

from labctl.provision import network
from labctl.provision.stacks import object_store
from labctl.provision.stacks.common import (
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
    selector,
    service,
    startup,
)
from labctl.provision.stacks.settings import Component

COMPONENT: Component = "mlflow"
SERVICE = COMPONENT
PORT = 5000
DATA = "/mlflow"
APP = "mlflow.server.fastapi_app:app"  # what `mlflow server` serves with uvicorn (its default)

# `python -c LAUNCHER <uvicorn options> APP`. What `mlflow server` does before and instead of
# spawning uvicorn, minus the process. Stores first, as the CLI does: a database that cannot be
# opened or migrated fails the pod at start, not a learner's first request, and the tables are
# created before requests can race to create them. uvicorn's own CLI then parses the options,
# with MLflow's log format (its file's path differs between images).
LAUNCHER = """\
import os, sys
from pathlib import Path

# Optional imports MLflow's server never uses with our settings but loads when installed:
# pyarrow through pandas (~35 MiB resident), scipy.sparse through mlflow.models (~7 MiB).
# A None entry makes `import` raise ImportError, which both callers handle.
for name in ("pyarrow", "scipy"):
    sys.modules[name] = None

import uvicorn
from mlflow.server import handlers

handlers.initialize_backend_stores(
    backend_store_uri=os.environ["_MLFLOW_SERVER_FILE_STORE"],
    registry_store_uri=os.environ["_MLFLOW_SERVER_REGISTRY_STORE"],
    default_artifact_root=os.environ["_MLFLOW_SERVER_ARTIFACT_ROOT"],
)
sys.argv[1:1] = ["--log-config", str(Path(handlers.__file__).with_name("uvicorn_log_config.yaml"))]
uvicorn.main()
"""

# MLflow's own defaults, kept when we name our Service: loopback (port-forward) and private IPs.
_DEFAULT_HOSTS = (
    "localhost",
    "localhost:*",
    "127.0.0.1",
    "127.0.0.1:*",
    "[[]::1]:*",
    "10.*",
    *(f"172.{i}.*" for i in range(16, 32)),
    "192.168.*",
    "fc00:*",
    "fd00:*",
)


def tracking_uri(namespace: str) -> str:
    return f"http://{SERVICE}.{namespace}.svc:{PORT}"


def allowed_hosts(namespace: str) -> str:
    """Host headers MLflow accepts (its DNS-rebinding guard): the Service's names, with or
    without port and cluster domain, and MLflow's defaults. Health checks are exempt."""
    names = (SERVICE, f"{SERVICE}.{namespace}", f"{SERVICE}.{namespace}.svc")
    patterns = [p for name in names for p in (name, f"{name}:*")]
    patterns.append(f"{SERVICE}.{namespace}.svc.*")  # .cluster.local, or the cluster's own domain
    return ",".join([*patterns, *_DEFAULT_HOSTS])


def server_command() -> list[str]:
    """The container's command: ``python`` is on the PATH of both images."""
    return ["python", "-c", LAUNCHER]


def server_args(host: str, port: int) -> list[str]:
    """uvicorn's options. One worker: uvicorn then serves in its own process, no supervisor."""
    return [f"--host={host}", f"--port={port}", "--workers=1", APP]


def server_env(backend_store_uri: str, artifacts_destination: str) -> dict[str, str]:
    """What ``mlflow server --backend-store-uri=B --artifacts-destination=A`` (serve-artifacts
    on, its default) hands its uvicorn child, as ``mlflow.server._run_server`` sets it in MLflow
    3.17; names from ``mlflow/server/constants.py`` (a unit test checks they still exist)."""
    return {
        "_MLFLOW_SERVER_FILE_STORE": backend_store_uri,
        "_MLFLOW_SERVER_REGISTRY_STORE": backend_store_uri,  # the CLI's default: the same store
        # New experiments' artifacts go through the server's proxy, to the destination below.
        "_MLFLOW_SERVER_ARTIFACT_ROOT": "mlflow-artifacts:/",
        "_MLFLOW_SERVER_SERVE_ARTIFACTS": "true",
        "_MLFLOW_SERVER_ARTIFACT_DESTINATION": artifacts_destination,
        # Nothing starts the job runner now (only the CLI did); this makes job APIs say so.
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    }


def render(stack: Stack) -> list[Object]:
    settings = stack.settings
    data, claims = data_volume(stack, COMPONENT, "data", settings.storage.mlflow)
    with_store = settings.is_enabled(object_store.COMPONENT)
    # Without the object store (a lab level may not need it) artifacts stay on MLflow's claim.
    artifacts = f"s3://{object_store.MLFLOW_BUCKET}/" if with_store else f"{DATA}/artifacts"
    env = [
        *({"name": k, "value": v} for k, v in server_env(f"sqlite:///{DATA}/mlflow.db", artifacts).items()),
        # Read by the server itself (the CLI's --allowed-hosts only sets this variable).
        {"name": "MLFLOW_SERVER_ALLOWED_HOSTS", "value": allowed_hosts(stack.namespace)},
        {"name": "HOME", "value": "/tmp"},  # the image's HOME is root's, read-only for our user
    ]
    # AWS_* and MLFLOW_S3_ENDPOINT_URL for boto3, from the learner's own Secret.
    env_from = [{"secretRef": {"name": object_store.SECRET}}] if with_store else []
    tmp = scratch_volume("tmp", settings.storage.mlflow_scratch)
    server = container(
        "mlflow",
        settings.images.mlflow,
        settings.resources.mlflow,
        command=server_command(),
        args=server_args("0.0.0.0", PORT),
        env=env,
        env_from=env_from,
        ports=[("http", PORT)],
        mounts=[("data", DATA, False), ("tmp", "/tmp", False)],
        # The root filesystem is read-only and HOME is /tmp. uvicorn logs a line per request
        # (probes included); an upload is written whole to /tmp before it goes to the store, and
        # a download is fetched there before it is served: a lab's models are small, an artifact
        # or two at a time is the usual. The limit holds all of /tmp (and the data, without a claim).
        disk=disk_for("128Mi", settings.storage.container_logs, data, tmp),
        probes={
            # Imports and database migrations take seconds, more under a tight CPU limit:
            # liveness starts counting only once this has passed (up to 3 minutes).
            "startupProbe": startup(http_get("/health", "http"), within_s=180),
            # Can it serve now: /version is answered by MLflow's Flask app, through the worker
            # threads that also serve the tracking and registry APIs and the UI. All of them
            # busy (large uploads, slow queries) means requests wait: not ready.
            "readinessProbe": readiness(http_get("/version", "http")),
            # Is it wedged: /health is a route of the FastAPI app, answered on uvicorn's event
            # loop without a worker thread, so a server busy in its threads still answers it.
            # Both paths are exempt from MLflow's Host check (the kubelet sends the pod's IP).
            "livenessProbe": liveness(http_get("/health", "http")),
        },
    )
    volumes = [data, tmp]
    spec = pod_spec(stack, [server], volumes)
    return [
        *claims,
        deployment(stack, COMPONENT, spec),
        service(stack, COMPONENT, [("http", PORT)]),
        egress_policy(stack, COMPONENT, _egress(with_store)),
    ]


def _egress(with_store: bool) -> list[Object]:
    """The server proxies artifacts to the object store, named by its Service's DNS name; it
    calls nothing else (clients come to it; the registry and runs are on its own claim)."""
    if not with_store:
        return []
    store = selector(object_store.COMPONENT)
    to_store = network.own_namespace_rule(pods=store, ports=[network.tcp(object_store.PORT)])
    return [network.dns_rule(), to_store]
