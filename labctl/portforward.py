"""A local port that reaches a pod's port through the API server, like `kubectl port-forward`.

``with forwarded(kube, namespace, pod, port) as url:`` listens on 127.0.0.1 (a free port) and
relays each accepted connection over its own port-forward stream (:meth:`Kube.port_forward`).
Works wherever labctl has a kubeconfig: no route to pod IPs, no cluster DNS needed.
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import threading
from collections.abc import Iterator
from typing import Any

from labctl.kube import Kube

log = logging.getLogger(__name__)
CHUNK = 64 << 10
IDLE_S = 300.0  # a relay with no traffic this long is closed, as kubelet streams time out


@contextlib.contextmanager
def forwarded(kube: Kube, namespace: str, pod: str, port: int, *, local_port: int = 0) -> Iterator[str]:
    """``http://127.0.0.1:<local port>`` reaching ``pod``:``port`` while the block runs (a free
    local port unless ``local_port`` names one, as ``kubectl port-forward 5000:5000`` does)."""
    listener = socket.create_server(("127.0.0.1", local_port))
    local_port = listener.getsockname()[1]
    done = threading.Event()

    def accept() -> None:
        while not done.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return  # the listener was closed: the block ended
            threading.Thread(target=_serve, args=(kube, namespace, pod, port, conn), daemon=True).start()

    acceptor = threading.Thread(target=accept, name=f"port-forward {pod}:{port}", daemon=True)
    acceptor.start()
    try:
        yield f"http://127.0.0.1:{local_port}"
    finally:
        done.set()
        listener.close()
        acceptor.join(timeout=5)


def _serve(kube: Kube, namespace: str, pod: str, port: int, conn: socket.socket) -> None:
    stream: Any = None
    try:
        stream = kube.port_forward(namespace, pod, port)
        _relay(conn, stream.socket(port))
    except Exception as exc:  # a thread of its own: the client sees its connection close
        log.warning("port-forward to %s/%s:%d: %s", namespace, pod, port, exc)
    finally:
        conn.close()
        if stream is not None:
            stream.close()


def _relay(local: socket.socket, remote: Any) -> None:
    """Copy bytes both ways until either side closes."""
    peers = {local.fileno(): remote, remote.fileno(): local}
    while True:
        readable, _, _ = select.select([local, remote], [], [], IDLE_S)
        if not readable:
            return
        for side in readable:
            data = side.recv(CHUNK)
            if not data:
                return
            peers[side.fileno()].sendall(data)
