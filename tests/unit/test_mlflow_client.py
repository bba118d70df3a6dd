"""The MLflow REST client against a real HTTP server on loopback that answers from a script:
503 + Retry-After then 200, MLflow's error answers, a download dropped mid-body, a hung answer.

The graders' adapter (:mod:`graders._mlflow_tracking`) is exercised here too, for how the
client's errors become a check's; tests/graders run both against a real ``mlflow server``.
"""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from graders._mlflow_tracking import Mlflow, TrackingParams
from graders.core import Context, GraderError, TransientGraderError
from labctl.clients import mlflow as client_mod
from labctl.clients.mlflow import MlflowError, MlflowRest, NotFound, TooLarge
from labctl.core.retry import RetryPolicy
from tests.helpers.processes import free_port

Action = Callable[[http.server.BaseHTTPRequestHandler], None]
FAST = RetryPolicy(attempts=3, first_delay_s=0.01)


@dataclass
class Script:
    """What the server answers, request by request (the last action repeats), and what it saw."""

    actions: list[Action] = field(default_factory=list)
    seen: list[tuple[str, str, bytes]] = field(default_factory=list)

    def next(self) -> Action:
        return self.actions.pop(0) if len(self.actions) > 1 else self.actions[0]


def reply(
    status: int, body: Any = None, *, headers: dict[str, str] | None = None, raw: bytes | None = None
) -> Action:
    data = raw if raw is not None else json.dumps(body if body is not None else {}).encode()

    def act(h: http.server.BaseHTTPRequestHandler) -> None:
        h.send_response(status)
        for name, value in (headers or {}).items():
            h.send_header(name, value)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    return act


def dropped_after(data: bytes, sent: int) -> Action:
    """Promise ``data`` (Content-Length), send ``sent`` bytes of it, close the connection."""

    def act(h: http.server.BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data[:sent])
        h.wfile.flush()
        h.close_connection = True
        h.connection.shutdown(2)

    return act


def hung(seconds: float) -> Action:
    def act(h: http.server.BaseHTTPRequestHandler) -> None:
        time.sleep(seconds)
        reply(200, {})(h)

    return act


def mlflow_error(status: int, code: str, message: str) -> Action:
    return reply(status, {"error_code": code, "message": message})


@pytest.fixture
def server() -> Iterator[tuple[str, Script]]:
    script = Script()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # quiet test output
            pass

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            script.seen.append((self.command, self.path, self.rfile.read(length)))
            script.next()(self)

        do_GET = do_POST = _serve

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", script
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


# -- retries --------------------------------------------------------------------------------------


def test_503_with_retry_after_then_200(server: tuple[str, Script]) -> None:
    url, script = server
    script.actions = [reply(503, headers={"Retry-After": "1"}), reply(200, {"experiment": {"name": "iris"}})]
    started = time.monotonic()
    answer = MlflowRest(url, policy=FAST).get("experiments/get-by-name", experiment_name="iris")
    assert answer == {"experiment": {"name": "iris"}}
    assert time.monotonic() - started >= 1.0  # the server's Retry-After, not FAST's 10 ms
    assert [path for _, path, _ in script.seen] == [
        "/api/2.0/mlflow/experiments/get-by-name?experiment_name=iris"
    ] * 2


def test_persistent_5xx_gives_up_transient_with_status_and_code(server: tuple[str, Script]) -> None:
    url, script = server
    script.actions = [mlflow_error(500, "INTERNAL_ERROR", "database is locked")]
    with pytest.raises(MlflowError) as caught:
        MlflowRest(url, policy=FAST).post("runs/search", {"experiment_ids": ["1"]})
    err = caught.value
    assert (err.status, err.error_code, err.kind, err.transient) == (500, "INTERNAL_ERROR", "http", True)
    assert (
        str(err) == f"MLflow at {url} answered POST runs/search with 500 INTERNAL_ERROR: database is locked"
    )
    assert len(script.seen) == 3
    assert json.loads(script.seen[0][2]) == {"experiment_ids": ["1"]}


def test_client_errors_are_not_retried(server: tuple[str, Script]) -> None:
    url, script = server
    script.actions = [mlflow_error(400, "INVALID_PARAMETER_VALUE", "bad filter")]
    with pytest.raises(MlflowError) as caught:
        MlflowRest(url, where="learner ada: MLflow", policy=FAST).get("runs/search", filter="x ~ 1")
    assert not isinstance(caught.value, NotFound)
    assert (caught.value.status, caught.value.transient) == (400, False)
    assert str(caught.value) == (
        "learner ada: MLflow answered GET runs/search?filter=x+~+1"
        " with 400 INVALID_PARAMETER_VALUE: bad filter"
    )
    assert len(script.seen) == 1


def test_resource_does_not_exist_is_not_found(server: tuple[str, Script]) -> None:
    url, script = server
    script.actions = [mlflow_error(404, "RESOURCE_DOES_NOT_EXIST", "Run 'abc' not found")]
    with pytest.raises(NotFound) as caught:
        MlflowRest(url, policy=FAST).get("runs/get", run_id="abc")
    assert (caught.value.status, caught.value.error_code, caught.value.transient) == (
        404,
        "RESOURCE_DOES_NOT_EXIST",
        False,
    )
    assert len(script.seen) == 1


def test_refused_connection_is_retried_then_named(monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    tries: list[str] = []
    rest = MlflowRest(
        url, where=f"learner bob: MLflow at {url}", policy=FAST, reach=lambda u: tries.append(u) or u
    )
    with pytest.raises(MlflowError) as caught:
        rest.version()
    assert (caught.value.kind, caught.value.transient, caught.value.status) == ("connection", True, 0)
    assert str(caught.value).startswith(f"learner bob: MLflow at {url}: cannot GET /version: ")
    assert "refused" in caught.value.message.lower()
    assert tries == [f"{url}/version"] * 3


def test_timeouts_retry_only_where_the_policy_allows(server: tuple[str, Script]) -> None:
    url, script = server
    script.actions = [hung(1.0)]
    with pytest.raises(MlflowError) as caught:
        MlflowRest(url, timeout_s=0.3, policy=RetryPolicy(attempts=3, timeouts=False)).get(
            "experiments/search"
        )
    assert (caught.value.kind, caught.value.transient) == ("timeout", False)
    assert str(caught.value) == f"MLflow at {url} did not answer GET experiments/search within 0.3 s"
    assert len(script.seen) == 1
    script.actions = [hung(1.0), reply(200, {"experiments": []})]
    answer = MlflowRest(url, timeout_s=0.3, policy=RetryPolicy(attempts=3, first_delay_s=0.01)).get(
        "experiments/search"
    )
    assert answer == {"experiments": []} and len(script.seen) == 3


def test_the_deadline_bounds_each_request_and_the_retries(server: tuple[str, Script]) -> None:
    url, script = server
    script.actions = [hung(2.0)]
    ends = time.monotonic() + 0.4
    rest = MlflowRest(
        url, timeout_s=10, policy=RetryPolicy(), deadline=lambda: max(0.05, ends - time.monotonic())
    )
    started = time.monotonic()
    with pytest.raises(MlflowError, match="did not answer"):
        rest.get("experiments/search")
    assert time.monotonic() - started < 1.5  # not the client's 10 s, nor its retries
    script.actions = [reply(503, headers={"Retry-After": "20"})]
    started = time.monotonic()
    with pytest.raises(MlflowError) as caught:
        MlflowRest(url, policy=RetryPolicy(), deadline=lambda: 3.0).get("experiments/search")
    assert caught.value.status == 503 and caught.value.transient
    assert time.monotonic() - started < 2  # a 20 s wait does not fit: no wait at all


def test_reach_maps_the_url_and_messages_show_it_as_written(server: tuple[str, Script]) -> None:
    url, script = server
    script.actions = [reply(200, raw=b"<html>a proxy's page</html>")]
    written = "http://mlflow.learner-7.svc:5000"
    rest = MlflowRest(written, policy=FAST, reach=lambda u: u.replace(written, url))
    with pytest.raises(MlflowError) as caught:
        rest.get("experiments/search", max_results=5)
    assert (caught.value.kind, caught.value.transient) == ("answer", False)
    assert str(caught.value) == (
        f"MLflow at {written} answered GET experiments/search?max_results=5 with something other than JSON"
    )
    assert len(script.seen) == 1


# -- pages and files ------------------------------------------------------------------------------


def test_pages_follow_the_token_to_the_end_or_stop_quietly_at_max_pages(server: tuple[str, Script]) -> None:
    url, script = server
    pages = [
        reply(200, {"runs": [1, 2], "next_page_token": "p2"}),
        reply(200, {"runs": [3], "next_page_token": "p3"}),
        reply(200, {"runs": [4]}),
    ]
    script.actions = list(pages)
    rest = MlflowRest(url, policy=FAST)
    assert list(rest.pages("POST", "runs/search", {"max_results": 2}, "runs")) == [1, 2, 3, 4]
    assert [json.loads(body).get("page_token") for _, _, body in script.seen] == [None, "p2", "p3"]
    script.actions = list(pages)
    assert list(rest.pages("GET", "registered-models/search", {}, "runs", max_pages=2)) == [1, 2, 3]
    assert script.seen[-1][1] == "/api/2.0/mlflow/registered-models/search?page_token=p2"


def test_a_token_that_never_ends_is_an_error(
    server: tuple[str, Script], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, script = server
    script.actions = [reply(200, {"runs": [1], "next_page_token": "again"})]
    monkeypatch.setattr(client_mod, "EVERY_PAGE", 5)
    with pytest.raises(MlflowError, match="runs/search still had more pages after 5"):
        list(MlflowRest(url, policy=FAST).pages("POST", "runs/search", {}, "runs"))
    assert len(script.seen) == 5


def test_download_dropped_mid_body_is_fetched_again(server: tuple[str, Script], tmp_path: Path) -> None:
    url, script = server
    data = bytes(range(256)) * 4096  # 1 MiB
    script.actions = [dropped_after(data, 300_000), reply(200, raw=data)]
    target = tmp_path / "run" / "model.pkl"
    size = MlflowRest(url, policy=FAST).download(
        "/get-artifact", {"run_uuid": "r1", "path": "model.pkl"}, target
    )
    assert size == len(data) and target.read_bytes() == data  # the second try, from the start
    assert [path for _, path, _ in script.seen] == ["/get-artifact?run_uuid=r1&path=model.pkl"] * 2


def test_download_that_keeps_dropping_gives_up(server: tuple[str, Script], tmp_path: Path) -> None:
    url, script = server
    script.actions = [dropped_after(b"x" * 1000, 10)]
    with pytest.raises(MlflowError) as caught:
        MlflowRest(url, policy=FAST).download("/get-artifact", {"path": "a"}, tmp_path / "a")
    assert (caught.value.kind, caught.value.transient) == ("connection", True)
    assert str(caught.value).startswith(f"MLflow at {url}: cannot GET /get-artifact?path=a: ")
    assert len(script.seen) == 3


def test_read_refuses_a_file_past_its_limit(server: tuple[str, Script]) -> None:
    url, script = server
    script.actions = [reply(200, raw=b"0123456789")]
    rest = MlflowRest(url, policy=FAST)
    assert rest.read("/get-artifact", {"path": "a"}, limit=10) == b"0123456789"
    with pytest.raises(TooLarge, match="larger than 9 bytes"):
        rest.read("/get-artifact", {"path": "a"}, limit=9)


def test_paths_are_quoted_once(server: tuple[str, Script]) -> None:
    url, script = server
    script.actions = [reply(200, {}), reply(200, raw=b"3.1.0\n")]
    rest = MlflowRest(url, policy=FAST)
    rest.get("logged-models/m 1%/artifacts/directories")
    assert rest.version() == "3.1.0"
    assert script.seen[0][1] == "/api/2.0/mlflow/logged-models/m%201%25/artifacts/directories"


# -- the graders' adapter -------------------------------------------------------------------------


def grader_api(url: str, **ctx: Any) -> Mlflow:
    return Mlflow(TrackingParams(tracking_uri=url, request_timeout_s=2), Context(**ctx))


def test_graders_see_not_found_as_none_and_never_retry_themselves(server: tuple[str, Script]) -> None:
    url, script = server
    script.actions = [mlflow_error(404, "RESOURCE_DOES_NOT_EXIST", "no experiment")]
    assert grader_api(url).get("experiments/get-by-name", experiment_name="iris") is None
    script.actions = [reply(503, headers={"Retry-After": "1"})]
    with pytest.raises(TransientGraderError, match=f"the MLflow tracking server at {url} answered GET"):
        grader_api(url).get("experiments/search")
    assert len(script.seen) == 2  # one each: the engine retries the whole check


def test_graders_errors_name_the_server_as_the_checks_do(server: tuple[str, Script]) -> None:
    url, script = server
    script.actions = [reply(404, raw=b"not found")]
    with pytest.raises(GraderError) as caught:
        grader_api(url).get("experiments/get-by-name", experiment_name="iris")
    assert not isinstance(caught.value, TransientGraderError)
    assert str(caught.value) == (
        f"the MLflow tracking server at {url} answered GET experiments/get-by-name?experiment_name=iris"
        " with 404: Not Found"
    )
    refused = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(
        TransientGraderError, match=f"^cannot connect to the MLflow tracking server at {refused}: "
    ):
        grader_api(refused).get("experiments/search")
    script.actions = [hung(3.0)]
    with pytest.raises(GraderError) as timed_out:
        grader_api(url).get("experiments/search")
    assert not isinstance(timed_out.value, TransientGraderError)  # the check's time, spent
    assert "did not answer GET experiments/search within 2 s" in str(timed_out.value)


def test_graders_fetch_gives_none_for_a_missing_file(server: tuple[str, Script]) -> None:
    url, script = server
    script.actions = [reply(404, raw=b"")]
    assert grader_api(url).fetch("/get-artifact", {"path": "a"}, limit=10) is None
    script.actions = [reply(200, raw=b"x" * 11)]
    with pytest.raises(TooLarge):
        grader_api(url).fetch("/get-artifact", {"path": "a"}, limit=10)


def test_graders_need_the_namespace_the_uri_names() -> None:
    with pytest.raises(GraderError, match="needs the learner's namespace"):
        grader_api("http://mlflow.{namespace}.svc:5000")
    assert (
        grader_api("http://mlflow.{namespace}.svc:5000", namespace="l-7").uri == "http://mlflow.l-7.svc:5000"
    )
