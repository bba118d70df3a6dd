"""Run the controller: the same code in-cluster (Deployment) and locally (`labctl controller run`)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ctypes
import logging
import threading

import kopf
from prometheus_client import start_http_server

from labctl.controller.memo import Memo
from labctl.core.errors import LabctlError
from labctl.kube import Kube
from labctl.provision.install import KEY_SECRET
from labctl.provision.stacks import StackSettings
from labctl.provision.tenancy import CONTROLLER_NAMESPACE


def load_key(kube: Kube) -> bytes:
    """The key learners' credentials are derived from, made once by `labctl install`."""
    secret = kube.get("v1", "Secret", KEY_SECRET, CONTROLLER_NAMESPACE)
    if secret is None:
        raise LabctlError(f"Secret {CONTROLLER_NAMESPACE}/{KEY_SECRET} not found: run `labctl install` first")
    return base64.b64decode(secret["data"]["key"])


def run(
    kube: Kube,
    *,
    metrics_port: int | None = None,
    liveness_port: int | None = None,
    stop: threading.Event | None = None,
    ready: threading.Event | None = None,
    stack_settings: StackSettings | None = None,
) -> None:
    """Block running the operator until ``stop`` is set (or SIGINT/SIGTERM)."""
    from labctl.controller import handlers  # noqa: F401  (registers the handlers)

    _fewer_malloc_arenas()
    memo = Memo(kube=kube, key=load_key(kube), stack_settings=stack_settings)
    if metrics_port is not None:
        start_http_server(metrics_port)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    liveness = f"http://0.0.0.0:{liveness_port}/healthz" if liveness_port else None
    loop = asyncio.new_event_loop()
    stop_flag: asyncio.Future[None] | None = None
    if stop is not None:
        stop_flag = loop.create_future()
        threading.Thread(target=_relay, args=(stop, loop, stop_flag), daemon=True).start()
    try:
        loop.run_until_complete(
            kopf.operator(
                clusterwide=True,
                standalone=True,
                memo=memo,
                liveness_endpoint=liveness,
                stop_flag=stop_flag,
                ready_flag=_ready_future(loop, ready),
            )
        )
    finally:
        with contextlib.suppress(Exception):
            loop.close()


def _fewer_malloc_arenas(arenas: int = 2) -> None:
    """Cap glibc's malloc arenas, before the handler threads start.

    glibc gives threads that allocate arenas of their own, up to 8 per core; what reconciles
    free in one is rarely handed back to the system or reused by another, so with dozens of
    handler and status threads the resident size drifted far above what was in use.
    """
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").mallopt(-8, arenas)  # -8: M_ARENA_MAX


def _relay(stop: threading.Event, loop: asyncio.AbstractEventLoop, flag: asyncio.Future[None]) -> None:
    stop.wait()

    def finish() -> None:
        if not flag.done():
            flag.set_result(None)

    loop.call_soon_threadsafe(finish)


def _ready_future(
    loop: asyncio.AbstractEventLoop, ready: threading.Event | None
) -> asyncio.Future[None] | None:
    if ready is None:
        return None
    future: asyncio.Future[None] = loop.create_future()
    future.add_done_callback(lambda _f: ready.set())
    return future
