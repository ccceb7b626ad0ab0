"""Serving the label app on this machine only: the port is bound here first, so a port in use is a
one-line error before anything starts, and uvicorn serves on that very socket (no race for the port)."""

from __future__ import annotations

import errno
import socket

import uvicorn
from fastapi import FastAPI

from spurbench.errors import SpurbenchError

HOST = "127.0.0.1"  # labels are a local, single-user affair: never listen on other interfaces


def bind(port: int) -> socket.socket:
    """A listening socket on 127.0.0.1:``port``; a one-line SpurbenchError when the port is taken."""
    if not 0 < port < 65536:
        raise SpurbenchError(f"--port {port}: expected 1-65535")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: a just-closed server's port is free
    try:
        sock.bind((HOST, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise SpurbenchError(
            f"port {port} is in use; pick another with --port"
            if exc.errno == errno.EADDRINUSE
            else f"cannot listen on {HOST}:{port} ({exc.strerror})"
        ) from None
    return sock


def serve(app: FastAPI, sock: socket.socket) -> None:
    """Serve ``app`` on ``sock`` until Ctrl-C (a normal way to stop it, not an interruption)."""
    config = uvicorn.Config(app, log_level="warning", access_log=False)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn shuts down gracefully, then raises the signal it caught again
        pass
