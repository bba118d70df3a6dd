"""The model-server image's program (:mod:`.server`): KServe V1 and MLflow scoring for a
scikit-learn model, with Prometheus metrics. It runs standalone in the image (stdlib, numpy,
scikit-learn/joblib, prometheus-client; PyYAML and cloudpickle for MLflow model directories)."""

from __future__ import annotations

from pathlib import Path

SOURCE = Path(__file__).with_name("server.py")
