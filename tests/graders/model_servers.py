"""A real model server for the endpoint checks' tests: KServe V1 and MLflow scoring, one process.

Trains a scikit-learn model on a bundled dataset (fixed seed) and serves it, misbehaving on
purpose in the ways learners' servers do::

    python tests/graders/model_servers.py --dataset iris --mode good --port 8080

``--mode`` sets how unprefixed paths behave; a path prefix ``/<mode>`` (``/slow/invocations``,
``/flaky/v1/models/iris:predict``) picks another mode per request, so one process can play every
learner and the tests start one server per dataset instead of one per mode.

Modes: good, wrong (right shape, wrong answers), slow (sleeps ``--delay-ms`` first), flaky
(every third request a 503), malformed (truncated JSON), wrong-shape (class probabilities
instead of labels), wrong-count (one prediction short per request).
:func:`hidden_split` gives the test fixtures the held-out rows the server never trained on.
"""

from __future__ import annotations

import argparse
import csv
import http.client
import itertools
import json
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

MODES = ("good", "wrong", "slow", "flaky", "malformed", "wrong-shape", "wrong-count")
DATASETS = ("iris", "breast_cancer", "diabetes")
SEED = 7
HELD_OUT = 30  # rows: small on purpose, so a check is one request at batch size >= 30


def answering(port: int) -> bool:
    """Whether a model server on loopback ``port`` answers ``GET /ping`` with 200."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
    try:
        conn.request("GET", "/ping")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


def hidden_split(dataset: str) -> tuple[Any, Any, Any, Any, list[str]]:
    """``(X_train, X_test, y_train, y_test, feature_names)``: the same split in server and tests."""
    from sklearn import datasets
    from sklearn.model_selection import train_test_split

    loaded = getattr(datasets, f"load_{dataset}")()
    stratify = None if dataset == "diabetes" else loaded.target
    parts = train_test_split(
        loaded.data, loaded.target, test_size=HELD_OUT, random_state=SEED, stratify=stratify
    )
    names = [str(name).replace(" ", "_") for name in loaded.feature_names]
    return (*parts, names)


def write_hidden_csv(dataset: str, path: Path) -> Path:
    """The held-out rows as the grader's hidden CSV: the features, then ``label``."""
    _, x_test, _, y_test, names = hidden_split(dataset)
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow([*names, "label"])
        for row, label in zip(x_test.tolist(), y_test.tolist(), strict=True):
            writer.writerow([*row, label])
    return path


def train(dataset: str) -> Any:
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x_train, _, y_train, _, _ = hidden_split(dataset)
    estimator = Ridge(alpha=0.1) if dataset == "diabetes" else LogisticRegression(max_iter=1000)
    return make_pipeline(StandardScaler(), estimator).fit(x_train, y_train)


class Model:
    """The trained model plus what each mode does to its answers."""

    def __init__(self, dataset: str, name: str, default_mode: str, delay_s: float) -> None:
        import numpy as np

        self.np, self.dataset, self.name = np, dataset, name
        self.default_mode, self.delay_s = default_mode, delay_s
        self.pipeline = train(dataset)
        self.classes = None if dataset == "diabetes" else self.pipeline.classes_
        self.columns = hidden_split(dataset)[4]
        self._requests = itertools.count()  # flaky mode's clock; count() is atomic under the GIL

    def predict(self, rows: list[list[float]], mode: str) -> tuple[int, bytes]:
        """``(status, body)`` for one prediction request in ``mode``."""
        if mode == "slow":
            time.sleep(self.delay_s)
        if mode == "flaky" and next(self._requests) % 3 == 2:
            return 503, b'{"error": "model worker restarting"}'
        x = self.np.asarray(rows, dtype=float)
        if mode == "wrong-shape" and self.classes is not None:
            return 200, _dump({"predictions": self.pipeline.predict_proba(x).round(4).tolist()})
        predictions = self.pipeline.predict(x)
        if mode == "wrong":
            predictions = (
                predictions * 3.0 + 100.0
                if self.classes is None
                else self.np.roll(self.classes, 1)[predictions]
            )
        answers = predictions.tolist()
        if mode == "wrong-count":
            answers = answers[:-1]
        if mode == "malformed":
            return 200, _dump({"predictions": answers})[:-7]
        return 200, _dump({"predictions": answers})


def _dump(payload: object) -> bytes:
    return json.dumps(payload).encode()


def _rows(protocol: str, body: dict[str, Any], columns: list[str]) -> list[list[float]]:
    if protocol == "kserve":
        return body["instances"]
    split = body["dataframe_split"]
    if split.get("columns") and list(split["columns"]) != columns:
        raise ValueError(f"expected columns {columns}, got {split['columns']}")
    return split["data"]


def handler_for(model: Model) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as real model servers do

        def _route(self) -> tuple[str, str]:
            """``(mode, path)`` after taking off a ``/<mode>`` prefix, if any."""
            head, _, rest = self.path.lstrip("/").partition("/")
            if head in MODES:
                return head, "/" + rest
            return model.default_mode, self.path

        def _send(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            mode, path = self._route()
            if path in ("/ping", "/health"):
                self._send(200 if mode != "flaky" else 503, b"\n")
            elif path == f"/v1/models/{model.name}":
                self._send(200, _dump({"name": model.name, "ready": mode != "flaky"}))
            else:
                self._send(404, _dump({"error": f"no route {path}"}))

        def do_POST(self) -> None:
            mode, path = self._route()
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            routes = {f"/v1/models/{model.name}:predict": "kserve", "/invocations": "mlflow"}
            if path not in routes:
                self._send(404, _dump({"error": f"no route {path}"}))
                return
            try:
                rows = _rows(routes[path], json.loads(raw), model.columns)
                status, body = model.predict(rows, mode)
            except (ValueError, KeyError, TypeError) as exc:
                status, body = 400, _dump({"error": f"bad request: {exc}"})
            self._send(status, body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # thousands of requests in the benchmark: keep the logs quiet

    return Handler


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # the default 5 drops SYNs under a grading burst


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--dataset", choices=DATASETS, default="iris")
    parser.add_argument("--model", default="", help="KServe model name (default: the dataset)")
    parser.add_argument("--mode", choices=MODES, default="good")
    parser.add_argument("--delay-ms", type=float, default=300.0, help="slow mode's sleep per request")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    model = Model(args.dataset, args.model or args.dataset, args.mode, args.delay_ms / 1000)
    server = Server((args.host, args.port), handler_for(model))
    server.serve_forever()


if __name__ == "__main__":
    main()
