"""Run the service: load the model folders once, then serve them with uvicorn.

uvicorn handles SIGINT/SIGTERM gracefully: it stops accepting connections, lets the
requests in flight finish (their inference included), then runs the app's shutdown.
"""

from __future__ import annotations

import os

from polymodal.errors import ConfigError
from polymodal.serve.limits import ServeLimits

LOOPBACK = "127.0.0.1"


def run_server(directories: list[str | os.PathLike], *, host: str = LOOPBACK, port: int = 8000,
               names: list[str] | None = None, limits: ServeLimits | None = None,
               log_level: str = "info", on_ready=None, device: str = "auto") -> None:
    """Load every model folder and serve them until interrupted (blocks).

    ``host`` defaults to loopback: exposing models on a network is a choice to make
    explicitly (``host="0.0.0.0"``). ``on_ready(models)`` is called once the models are
    loaded, before the socket opens (the CLI prints what it serves). The models predict
    and sample on ``device`` (the API's ``device=``).
    """
    if not 1 <= port <= 65535:
        raise ConfigError(f"--port {port} is not a TCP port; choose one in 1..65535")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # models load local weights only
    import uvicorn

    from polymodal.serve.app import create_app
    from polymodal.serve.registry import load_models

    models = load_models(list(directories), names, device=device)
    if on_ready is not None:
        on_ready(models)
    app = create_app(models, limits)
    uvicorn.run(app, host=host, port=port, log_level=log_level,
                timeout_graceful_shutdown=30)
