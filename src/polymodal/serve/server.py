"""Run the service: load the model folders once, then serve them with uvicorn.

uvicorn handles SIGINT/SIGTERM gracefully: it stops accepting connections, lets the
requests in flight finish (their inference included), then runs the app's shutdown.
"""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Sequence

from polymodal.errors import ConfigError
from polymodal.serve.limits import ServeLimits

LOOPBACK = "127.0.0.1"


def run_server(directories: list[str | os.PathLike], *, host: str = LOOPBACK, port: int = 8000,
               names: list[str] | None = None, limits: ServeLimits | None = None,
               allow_hosts: Sequence[str] = (), cors_origins: Sequence[str] = (),
               log_level: str = "info", on_ready=None, device: str = "auto") -> None:
    """Load every model folder and serve them until interrupted (blocks).

    ``host`` defaults to loopback: exposing models on a network is a choice to make
    explicitly (``host="0.0.0.0"``). Requests must name the server by a loopback name, by
    ``host`` itself, or by one of ``allow_hosts`` in their Host header (see
    :mod:`polymodal.serve.hosts`); ``cors_origins`` lets pages of those origins call it.
    ``on_ready(models)`` is called once the models are loaded, before the socket opens
    (the CLI prints what it serves). The models predict and sample on ``device`` (the
    API's ``device=``).
    """
    if not 1 <= port <= 65535:
        raise ConfigError(f"--port {port} is not a TCP port; choose one in 1..65535")
    sock = bind_socket(host, port)  # before loading: a busy port is said at once, in one line
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # models load local weights only
    import uvicorn

    from polymodal.serve.app import create_app
    from polymodal.serve.registry import load_models

    try:
        models = load_models(list(directories), names, device=device)
        if on_ready is not None:
            on_ready(models)
        app = create_app(models, limits, allow_hosts=[host, *allow_hosts],
                         cors_origins=cors_origins)
        config = uvicorn.Config(app, host=host, port=port, log_level=log_level,
                                timeout_graceful_shutdown=30)
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()


def bind_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` (uvicorn listens on it), or ConfigError naming
    --port or --host and the fix: uvicorn itself would log the failure and exit 3."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as exc:
        raise ConfigError(f"--host {host}: not an address or a name this machine can resolve "
                          f"({exc.strerror}); pass 127.0.0.1, 0.0.0.0 or one of its "
                          "interfaces' addresses") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(f"--port {port}: already in use on {host} (another server runs "
                              "there); choose another --port, or stop that server") from None
        if exc.errno == errno.EADDRNOTAVAIL:
            raise ConfigError(f"--host {host}: not an address of this machine; pass 127.0.0.1, "
                              "0.0.0.0 or one of its interfaces' addresses") from None
        if exc.errno == errno.EACCES:
            raise ConfigError(f"--port {port}: not allowed for this user (ports below 1024 "
                              "need privileges); choose a port of 1024 or more") from None
        raise ConfigError(f"--host {host} --port {port}: cannot listen there "
                          f"({exc.strerror}); choose another address or port") from None
    return sock
