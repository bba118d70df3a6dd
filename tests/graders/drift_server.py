"""A real model server that exports what a drift alert watches, for the Prometheus checks' tests.

Trains a scikit-learn model on a bundled dataset (fixed seed), serves KServe V1 predictions and
exports prometheus-client metrics on ``/metrics``, as a learner's instrumented server would::

    python tests/graders/drift_server.py --dataset iris --port 8080

Metrics:

- ``model_predictions_total``: rows predicted.
- ``model_input_feature{feature=...}``: a Summary of every input value per feature, so a rule can
  take the recent mean, ``rate(..._sum[w]) / rate(..._count[w])``, and compare it with training.
- ``model_drift_score``: the largest shift of a feature's mean over the last rows, in training
  standard deviations.

A ``/malformed`` path prefix misbehaves on purpose: predictions come back as truncated JSON and
``/malformed/metrics`` is not in the exposition format.
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Summary, generate_latest

SEED = 7
WINDOW = 50  # rows behind the drift score


def feature_names(dataset: str) -> list[str]:
    """Metric-label-safe names: ``petal length (cm)`` -> ``petal_length_cm``."""
    from sklearn import datasets

    names = getattr(datasets, f"load_{dataset}")().feature_names
    return [re.sub(r"[^a-z0-9]+", "_", str(n).lower()).strip("_") for n in names]


class Model:
    """The trained model, its training statistics, and the metrics of what it is sent."""

    def __init__(self, dataset: str, name: str) -> None:
        import numpy as np
        from sklearn import datasets
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import train_test_split
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        loaded = getattr(datasets, f"load_{dataset}")()
        x_train, _, y_train, _ = train_test_split(
            loaded.data, loaded.target, test_size=0.2, random_state=SEED, stratify=loaded.target
        )
        self.np, self.name, self.columns = np, name, feature_names(dataset)
        self.pipeline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(
            x_train, y_train
        )
        self.mean, self.std = x_train.mean(axis=0), x_train.std(axis=0)
        self.recent: collections.deque[Any] = collections.deque(maxlen=WINDOW)
        self.lock = threading.Lock()
        self.registry = CollectorRegistry()
        self.predictions = Counter("model_predictions", "Rows predicted.", registry=self.registry)
        self.inputs = Summary(
            "model_input_feature", "Input values per feature.", ["feature"], registry=self.registry
        )
        self.drift = Gauge(
            "model_drift_score", "Largest recent shift of a feature mean, in std.", registry=self.registry
        )

    def predict(self, rows: list[list[float]]) -> list[Any]:
        x = self.np.asarray(rows, dtype=float)
        if x.ndim != 2 or x.shape[1] != len(self.columns):
            raise ValueError(f"expected rows of {len(self.columns)} features, got shape {list(x.shape)}")
        answers: list[Any] = self.pipeline.predict(x).tolist()
        self.predictions.inc(len(rows))
        for column, name in enumerate(self.columns):
            child = self.inputs.labels(feature=name)
            for value in x[:, column]:
                child.observe(float(value))
        with self.lock:  # handler threads: the window and the score move together
            self.recent.extend(x)
            window = self.np.asarray(self.recent)
            self.drift.set(float((abs(window.mean(axis=0) - self.mean) / self.std).max()))
        return answers


def handler_for(model: Model, token: str = "") -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _route(self) -> tuple[bool, str]:
            malformed = self.path.startswith("/malformed/")
            return malformed, self.path.removeprefix("/malformed") if malformed else self.path

        def do_GET(self) -> None:
            malformed, path = self._route()
            if path == "/metrics":
                text = b"model_drift_score{ 0.5\n" if malformed else generate_latest(model.registry)
                self._send(200, text, "text/plain; version=0.0.4; charset=utf-8")
            elif path in ("/healthz", f"/v1/models/{model.name}"):
                self._send(200, json.dumps({"name": model.name, "ready": True, "token": token}).encode())
            else:
                self._send(404, json.dumps({"error": f"no route {path}"}).encode())

        def do_POST(self) -> None:
            malformed, path = self._route()
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if path != f"/v1/models/{model.name}:predict":
                self._send(404, json.dumps({"error": f"no route {path}"}).encode())
                return
            try:
                body = json.dumps({"predictions": model.predict(json.loads(raw)["instances"])}).encode()
            except (ValueError, KeyError, TypeError) as exc:
                self._send(400, json.dumps({"error": f"bad request: {exc}"}).encode())
                return
            self._send(200, body[:-7] if malformed else body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--dataset", default="iris")
    parser.add_argument("--model", default="", help="KServe model name (default: the dataset)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--token", default="", help="echoed by /healthz: tells this server from another")
    args = parser.parse_args(argv)
    model = Model(args.dataset, args.model or args.dataset)
    Server((args.host, args.port), handler_for(model, args.token)).serve_forever()


if __name__ == "__main__":
    main()
