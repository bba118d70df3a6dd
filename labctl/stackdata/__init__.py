"""Saving a learner's stack data before their namespace goes: MLflow, then the object store.

Given endpoints that answer (the caller reaches the learner's pods, e.g. by port-forward),
:func:`dump_mlflow` saves the tracking server and model registry through MLflow's REST API and
:func:`dump_buckets` every bucket of the S3-compatible store. Each writes a fresh folder with a
stable, documented layout (see their modules) and returns a summary to print; any failure is a
:class:`DumpError` naming the learner and endpoint, raised before the caller deletes anything.
"""

from __future__ import annotations

from labctl.stackdata._files import DumpError
from labctl.stackdata.bucket_dump import BucketSummary, dump_buckets
from labctl.stackdata.mlflow_dump import MlflowSummary, dump_mlflow

__all__ = ["BucketSummary", "DumpError", "MlflowSummary", "dump_buckets", "dump_mlflow"]
