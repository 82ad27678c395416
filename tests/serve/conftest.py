"""What the serving tests share: the small trained models, and a real server on a socket
(in this process, or started as ``polymodal serve`` in another)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest


@pytest.fixture(scope="module")
def model_dirs(served_model_dirs) -> dict[str, Path]:
    return served_model_dirs  # trained once per session (tests/conftest.py)


@pytest.fixture(scope="module")
def http(url):
    """A client of the module's own live server (each module defines ``url``)."""
    with httpx.Client(base_url=url, timeout=60) as client:
        yield client


@pytest.fixture(scope="session")
def clip_gen_dir(tmp_path_factory, write_tiny_table):
    """A generator of the tiny table's images conditioned on its audio column, one epoch
    (the table's files beside its folder, ``model``)."""
    import pandas as pd
    import torch

    from polymodal import Generator

    folder = tmp_path_factory.mktemp("clip-gen")
    rows = pd.read_csv(write_tiny_table(folder))
    table = pd.concat([rows, rows], ignore_index=True)  # 16 images, the fewest a fit takes
    table.attrs["base_dir"] = str(folder)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # on a shared 2-core machine two threads are often slower
    try:
        Generator(image="image", condition=["audio"], recipe={"training.max_epochs": "1"},
                  verbosity=0).fit(table).save(folder / "model")
    finally:
        torch.set_num_threads(threads)
    return folder / "model"


@pytest.fixture(scope="session")
def video_bytes() -> bytes:
    """The start of an MP4 file (its first box, as a phone's video starts), then nothing
    usable: what a user uploads by mistake for an audio column."""
    return b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + bytes(2000)


@pytest.fixture(scope="session")
def live_server():
    """``with live_server(app) as url:`` serves ``app`` on a real loopback socket."""
    return _live_server


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def serve_process():
    """``with serve_process(*args) as (process, url):`` runs ``polymodal serve *args`` on a
    free loopback port in another process, as a user starts it, and waits until it answers.
    The process is killed afterwards unless the test has stopped it."""
    return _serve_process


@contextmanager
def _serve_process(*args, timeout_s: float = 120) -> Iterator[tuple[subprocess.Popen, str]]:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "polymodal.cli", "serve", *map(str, args), "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        _wait_until_up(process, url, timeout_s)
        yield process, url
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _wait_until_up(process: subprocess.Popen, url: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the server exited with {process.returncode}: "
                                 f"{process.stdout.read()}")
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.2)
    raise AssertionError(f"the server did not answer within {timeout_s} s")


@contextmanager
def _live_server(app, timeout_s: float = 30) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a free loopback port in this process; yield its URL."""
    import uvicorn

    port = _free_port()
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
