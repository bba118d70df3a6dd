"""Names of the locally built images (no imports: stack settings read these).

The tags say what is inside: versitygw's and MLflow's versions, Prometheus's (built from its Go
module), the Debian package's upstream version for Alertmanager, labctl's own version for what labctl wrote.
"""

from __future__ import annotations

REGISTRY = "labctl.local"
MLFLOW_VERSION = "3.17.2"  # what labctl's own environment runs (pyproject: mlflow>=3.1)
VERSITYGW_VERSION = "1.8.0"  # labctl.localcluster.toolchain.versions.VERSITYGW
# labctl.localcluster.images.prombuild.VERSION (upstream; Debian's lacks k8s discovery)
PROMETHEUS_VERSION = "3.5.0"
ALERTMANAGER_VERSION = "0.25.0"  # Debian bookworm's prometheus-alertmanager package
LABCTL_VERSION = "0.1.0"  # labctl.__version__

# image key (what `labctl images build` takes) -> image name
LOCAL_IMAGES: dict[str, str] = {
    "object-store": f"{REGISTRY}/versitygw:{VERSITYGW_VERSION}",
    "prometheus": f"{REGISTRY}/prometheus:{PROMETHEUS_VERSION}",
    "alertmanager": f"{REGISTRY}/alertmanager:{ALERTMANAGER_VERSION}",
    "config-reloader": f"{REGISTRY}/prometheus-config-reloader:{LABCTL_VERSION}",
    "model-server": f"{REGISTRY}/model-server:{LABCTL_VERSION}",
    "mlflow": f"{REGISTRY}/mlflow:{MLFLOW_VERSION}",
    "controller": f"{REGISTRY}/labctl-controller:{LABCTL_VERSION}",  # manifests/controller's image
}
