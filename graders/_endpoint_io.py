"""The endpoint checks' I/O: one keep-alive connection to a learner's server, the hidden test set.

Plain ``http.client``: a cohort's grading runs thousands of these checks, and a client library's
per-request machinery would cost more than the learner's model does.
"""

from __future__ import annotations

import csv
import http.client
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from graders.core import Context, GraderError

MAX_BODY = 32 << 20  # bytes: a reply bigger than this is not predictions for a hidden test set


class Unreachable(Exception):
    """The learner's endpoint cannot be found or connected to: their failure, not ours."""

    def __init__(self, feedback: str) -> None:
        super().__init__(feedback)
        self.feedback = feedback


# -- talking to it -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """One request's answer; ``status`` None when there was no HTTP answer (``problem`` says why)."""

    status: int | None
    body: bytes = b""
    ms: float | None = None
    problem: str = ""


class Session:
    """One keep-alive connection to the learner's server, for the length of one check."""

    def __init__(self, url: str, ctx: Context, timeout_s: float) -> None:
        parts = urlsplit(url)
        self.url, self.ctx, self.timeout_s = url, ctx, timeout_s
        self.host, self.base = parts.hostname or "", parts.path.rstrip("/")
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.conn_type = (
            http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        )
        self.conn: http.client.HTTPConnection | None = None
        self.used = False  # has the open connection answered before (so it may have gone stale)?

    def _connect(self) -> http.client.HTTPConnection:
        if self.conn is not None:
            return self.conn
        timeout = self.ctx.remaining(at_most=self.timeout_s)
        try:
            reached = urlsplit(self.ctx.reach(self.url))  # feedback keeps showing self.url
            port = reached.port or self.port
            conn = self.conn_type(reached.hostname or self.host, port, timeout=timeout)
            conn.connect()
        except socket.gaierror:
            raise Unreachable(f"could not resolve the host {self.host!r} of {self.url}") from None
        except ConnectionRefusedError:
            raise Unreachable(
                f"connection refused at {self.url}: is your model server running and listening there?"
            ) from None
        except TimeoutError:
            raise Unreachable(f"connecting to {self.url} timed out after {timeout:.3g} s") from None
        except OSError as exc:
            raise Unreachable(f"could not connect to {self.url}: {exc.strerror or exc}") from None
        self.conn, self.used = conn, False
        return conn

    def request(self, method: str, path: str, body: bytes | None = None) -> Reply:
        """Send one request; raises :class:`Unreachable` only when no connection can be made."""
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        for retry in (False, True):
            stale_possible = self.conn is not None and self.used
            conn = self._connect()
            timeout = self.ctx.remaining(at_most=self.timeout_s)
            if conn.sock is not None:
                conn.sock.settimeout(timeout)
            started = time.perf_counter()
            try:
                conn.request(method, self.base + path, body=body, headers=headers)
                response = conn.getresponse()
                data = response.read(MAX_BODY + 1)
            except TimeoutError:
                self.close()
                return Reply(None, problem=f"{method} {self.url}{path} timed out after {timeout:.3g} s")
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                if stale_possible and not retry:
                    continue  # the server closed an idle keep-alive connection: not an error, reconnect
                return Reply(None, problem=f"{method} {self.url}{path} failed: {_describe_exc(exc)}")
            elapsed_ms = (time.perf_counter() - started) * 1000
            self.used = True
            if response.will_close or len(data) > MAX_BODY:
                self.close()  # NB: an oversized body is left unread, so the connection cannot be reused
            if len(data) > MAX_BODY:
                problem = f"{method} {self.url}{path} answered more than {MAX_BODY >> 20} MiB"
                return Reply(None, ms=elapsed_ms, problem=problem)
            return Reply(response.status, data, elapsed_ms)
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.conn = None


@contextmanager
def session(url: str, ctx: Context, timeout_s: float) -> Iterator[Session]:
    s = Session(url, ctx, timeout_s)
    try:
        yield s
    finally:
        s.close()


def _describe_exc(exc: BaseException) -> str:
    if isinstance(exc, http.client.RemoteDisconnected):
        return "the server closed the connection without answering"
    return str(exc) or type(exc).__name__


# -- the hidden data ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Table:
    columns: list[str]
    rows: list[list[float | str]]
    labels: list[float | str]


def _cell(text: str) -> float | str:
    try:
        number = float(text)
    except ValueError:
        return text.strip()
    return int(number) if number.is_integer() and "." not in text and "e" not in text.lower() else number


def load_table(path: Path, label_column: str, *, numeric_labels: bool) -> Table:
    """The hidden test set; its problems are ours (the instructor's file), so GraderError."""
    try:
        with path.open(newline="") as handle:
            lines = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise GraderError(f"cannot read the hidden data {path}: {exc}") from exc
    if not lines or label_column not in lines[0]:
        raise GraderError(f"hidden data {path}: no {label_column!r} column in the header")
    header, at = lines[0], lines[0].index(label_column)
    rows, labels = [], []
    for number, line in enumerate(lines[1:], start=2):
        if not line:
            continue
        if len(line) != len(header):
            raise GraderError(
                f"hidden data {path} line {number}: {len(line)} fields, header has {len(header)}"
            )
        label = _cell(line[at])
        if numeric_labels and isinstance(label, str):
            raise GraderError(f"hidden data {path} line {number}: label {label!r} is not a number")
        labels.append(label)
        rows.append([_cell(value) for i, value in enumerate(line) if i != at])
    if not rows:
        raise GraderError(f"hidden data {path} has no rows")
    return Table([c for i, c in enumerate(header) if i != at], rows, labels)
