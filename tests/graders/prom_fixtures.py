"""Real monitoring for the Prometheus checks' tests: Prometheus, Alertmanager and a drift server.

Each starts as its own process group on a free loopback port (``server_process``), with its
data in a temporary directory, and fast intervals (1 s scrape and evaluation) so a drift
scenario plays out in seconds.
"""

from __future__ import annotations

import json
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import yaml

from tests.helpers.processes import free_port, server_process

PROMETHEUS = "/usr/bin/prometheus"
ALERTMANAGER = "/usr/bin/prometheus-alertmanager"
DRIFT_SERVER = Path(__file__).with_name("drift_server.py")

# The mean petal length of recent requests, from the drift server's Summary: what a learner's
# drift rule compares with the training mean (3.76 cm, std 1.76 cm on iris).
RECENT_MEAN = (
    'rate(model_input_feature_sum{feature="petal_length_cm"}[6s])'
    ' / rate(model_input_feature_count{feature="petal_length_cm"}[6s])'
)


def drift_rules(threshold: float, *, for_: str = "2s", alert: str = "DataDrift") -> str:
    """A rule file as a learner writes it: alert when the recent mean moves ``threshold`` cm away."""
    rule = {
        "alert": alert,
        "expr": f"abs({RECENT_MEAN} - 3.76) > {threshold}",
        "for": for_,
        "labels": {"severity": "warning"},
        "annotations": {"summary": "petal length drifted from its training distribution"},
    }
    return yaml.safe_dump({"groups": [{"name": "drift", "rules": [rule]}]}, sort_keys=False)


def answers(url: str, *, containing: str = "") -> bool:
    """Whether ``url`` answers 200 (with ``containing`` in the body: our process, not one that
    took the port between ``free_port()`` and our bind)."""
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return bool(resp.status == 200 and containing in resp.read().decode(errors="replace"))
    except OSError:
        return False


@contextmanager
def drift_server(tmp: Path, *, model: str = "iris") -> Iterator[str]:
    """The model server; yields its base URL (predict at ``/v1/models/iris:predict``)."""
    port, token = free_port(), uuid.uuid4().hex
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, str(DRIFT_SERVER), "--port", str(port), "--model", model, "--token", token]
    with (
        (tmp / "drift-server.log").open("wb") as log,
        server_process(cmd, ready=lambda: answers(f"{url}/healthz", containing=token), log=log),
    ):
        yield url


@contextmanager
def alertmanager(tmp: Path) -> Iterator[str]:
    """Alertmanager with a receiver that sends nothing anywhere; yields its URL."""
    tmp.mkdir(parents=True, exist_ok=True)
    receiver = f"null-{uuid.uuid4().hex}"  # also tells our Alertmanager from another on the port
    config = {
        "route": {"receiver": receiver, "group_wait": "1s", "group_interval": "1s", "repeat_interval": "1h"},
        "receivers": [{"name": receiver}],
    }
    (tmp / "alertmanager.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [
        ALERTMANAGER,
        f"--config.file={tmp / 'alertmanager.yml'}",
        f"--storage.path={tmp / 'am-data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",  # no gossip: one lone Alertmanager
    ]
    with (
        (tmp / "alertmanager.log").open("wb") as log,
        server_process(cmd, ready=lambda: answers(f"{url}/api/v2/status", containing=receiver), log=log),
    ):
        yield url


@dataclass(frozen=True)
class Monitoring:
    prometheus: str
    alertmanager: str


@contextmanager
def prometheus(tmp: Path, *, rules: str, scrape: str, alertmanager_url: str) -> Iterator[str]:
    """Prometheus scraping ``scrape`` (a metrics URL) every second, evaluating ``rules`` every second."""
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "rules.yaml").write_text(rules)
    target = scrape.split("://", 1)[1]
    host, _, path = target.partition("/")
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(tmp / "rules.yaml")],
        "alerting": {
            "alertmanagers": [{"static_configs": [{"targets": [alertmanager_url.split("://", 1)[1]]}]}]
        },
        "scrape_configs": [
            {"job_name": "model", "metrics_path": f"/{path}", "static_configs": [{"targets": [host]}]}
        ],
    }
    (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [
        PROMETHEUS,
        f"--config.file={tmp / 'prometheus.yml'}",
        f"--storage.tsdb.path={tmp / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    with (
        (tmp / "prometheus.log").open("wb") as log,
        server_process(cmd, ready=lambda: ours(url, tmp / "tsdb") and scraped(url), log=log),
    ):
        yield url


def ours(url: str, tsdb: Path) -> bool:
    """Our Prometheus is ready: it answers /-/ready and its storage is our directory."""
    return answers(f"{url}/-/ready") and answers(f"{url}/api/v1/status/flags", containing=f'"{tsdb}"')


def scraped(url: str) -> bool:
    """Whether Prometheus has scraped its target once (up or down). It applies discovered targets
    on a 5 s tick, so a fresh Prometheus scrapes nothing for ~5 s: a lab's Prometheus has run
    for long before grading, and the scenario's clean phase must not spend its time on that."""
    try:
        with urllib.request.urlopen(f"{url}/api/v1/targets?state=active", timeout=1) as resp:
            targets = json.load(resp)["data"]["activeTargets"]
    except (OSError, ValueError, KeyError):
        return False
    return bool(targets) and all(t.get("health") in ("up", "down") for t in targets)


@contextmanager
def monitoring(tmp: Path, *, rules: str, scrape: str) -> Iterator[Monitoring]:
    """A fresh Alertmanager and a Prometheus sending to it: no alert history from another test."""
    with (
        alertmanager(tmp / "am") as am_url,
        prometheus(tmp / "prom", rules=rules, scrape=scrape, alertmanager_url=am_url) as prom_url,
    ):
        yield Monitoring(prom_url, am_url)
