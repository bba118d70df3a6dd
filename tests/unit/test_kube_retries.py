"""Retry policy of the API module (pure logic: the failing call is a local function)."""

from __future__ import annotations

import json

import pytest
from kubernetes.client.exceptions import ApiException

from labctl import kube as kube_mod
from labctl.kube import KubeError, with_retries


class _Flaky:
    def __init__(self, failures: list[ApiException]) -> None:
        self.failures = failures
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return "ok"


def _api_error(status: int, headers: dict | None = None, message: str = "boom") -> ApiException:
    exc = ApiException(status=status, reason="Reason")
    exc.body = json.dumps({"message": message})
    exc.headers = headers or {}
    return exc


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    recorded: list[float] = []
    monkeypatch.setattr(kube_mod.time, "sleep", recorded.append)
    return recorded


def test_retries_429_and_honours_retry_after(sleeps: list[float]) -> None:
    flaky = _Flaky([_api_error(429, {"Retry-After": "3"}), _api_error(503)])
    assert with_retries(flaky, what="get Pod a/b") == "ok"
    assert flaky.calls == 3
    assert 2.4 <= sleeps[0] <= 3.6  # Retry-After, with jitter
    assert sleeps[1] < 1.0


def test_client_errors_are_not_retried_and_name_the_object(sleeps: list[float]) -> None:
    flaky = _Flaky([_api_error(403, message='pods is forbidden: User "x" cannot list')])
    with pytest.raises(KubeError) as exc:
        with_retries(flaky, what="list Pod in team-b")
    assert flaky.calls == 1
    assert exc.value.status == 403
    assert str(exc.value).startswith("list Pod in team-b: pods is forbidden")
    assert sleeps == []


def test_gives_up_after_the_last_attempt(sleeps: list[float]) -> None:
    flaky = _Flaky([_api_error(500) for _ in range(10)])
    with pytest.raises(KubeError, match="HTTP 500"):
        with_retries(flaky, what="apply Namespace x", attempts=3)
    assert flaky.calls == 3
