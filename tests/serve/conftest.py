"""What the serving tests share: the small trained models, and a real server on a socket."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def model_dirs(served_model_dirs) -> dict[str, Path]:
    return served_model_dirs  # trained once per session (tests/conftest.py)


@pytest.fixture(scope="session")
def live_server():
    """``with live_server(app) as url:`` serves ``app`` on a real loopback socket."""
    return _live_server


@contextmanager
def _live_server(app, timeout_s: float = 30) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a free loopback port in this process; yield its URL."""
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout_s
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout_s)
