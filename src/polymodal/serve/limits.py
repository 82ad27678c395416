"""What one request may ask of the server, and the bounded pool that runs inference.

Two guards keep a busy or hostile client from taking the server down:

- :class:`ServeLimits` caps the size of each request (body bytes, image pixels, rows,
  images per generation, sampler steps). A request over a cap is refused before any
  model runs, with 413 (too large a body or image) or 422 (too many rows/images/steps),
  and the message names the limit and its value.
- :class:`InferencePool` runs models on a few worker threads, off the event loop, so
  ``/health`` stays responsive while a model works. It admits at most
  ``max_workers + max_queue`` jobs; one more is refused at once with
  :class:`ServerBusy` (503 + ``Retry-After``) instead of piling up until clients time out.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import TypeVar

from polymodal.errors import ConfigError

T = TypeVar("T")


@dataclass(frozen=True)
class ServeLimits:
    """Per-request caps and the size of the inference pool.

    The defaults fit a 2-core CPU serving small models; raise them on bigger machines.
    """

    max_upload_bytes: int = 16 * 1024 * 1024
    """Largest request body (JSON or multipart, all files together); larger → 413."""
    max_image_pixels: int = 4_000_000
    """Largest uploaded image, width x height; larger → 413 (also stops decompression bombs)."""
    max_rows: int = 1024
    """Most rows in one /predict request; more → 422."""
    max_images: int = 64
    """Most images in one /generate request (``n``); more → 422."""
    max_steps: int = 200
    """Most sampler steps in one /generate or /edit request; more → 422."""
    max_workers: int = 1
    """Inference threads. One suits a small CPU: torch already uses every core per call."""
    max_queue: int = 8
    """Requests allowed to wait for a worker; one more gets 503 with Retry-After."""
    retry_after_s: int = 1
    """The Retry-After a 503 suggests."""

    def __post_init__(self) -> None:
        problems = [f"{name}={value!r}" for name, value in asdict(self).items()
                    if isinstance(value, bool) or not isinstance(value, int)
                    or value < (0 if name == "max_queue" else 1)]
        if problems:
            raise ConfigError(f"serve limits must be positive integers (max_queue may be 0); got "
                              f"{', '.join(problems)}")


class RequestTooLarge(Exception):
    """A request exceeds one of :class:`ServeLimits`; ``status`` is 413 or 422."""

    def __init__(self, message: str, *, field: str | None, status: int = 413):
        super().__init__(message)
        self.field = field
        self.status = status


class ServerBusy(Exception):
    """Every worker is busy and the queue is full; the client should retry later."""

    def __init__(self, retry_after_s: int, capacity: int):
        super().__init__(f"the server is busy: {capacity} request(s) are already running or "
                         f"queued (limits max_workers + max_queue); retry in {retry_after_s} s")
        self.retry_after_s = retry_after_s


def check_at_most(value: int, limit: int, *, field: str, limit_name: str) -> None:
    """Refuse (422) a count above a limit, naming the field and the limit."""
    if value > limit:
        raise RequestTooLarge(f"{field}={value} exceeds this server's limit {limit_name}={limit}; "
                              f"ask for at most {limit} (or start the server with a higher limit)",
                              field=field, status=422)


class InferencePool:
    """A fixed set of worker threads with a bounded number of admitted jobs."""

    def __init__(self, limits: ServeLimits):
        self.limits = limits
        self.capacity = limits.max_workers + limits.max_queue
        self._executor = ThreadPoolExecutor(max_workers=limits.max_workers,
                                            thread_name_prefix="polymodal-infer")
        self._lock = threading.Lock()
        self._admitted = 0
        self.completed = 0
        self.rejected = 0

    @property
    def in_flight(self) -> int:
        """Jobs running or waiting for a worker right now."""
        return self._admitted

    async def run(self, fn: Callable[..., T], *args, **kwargs) -> T:
        """Run ``fn(*args, **kwargs)`` on a worker; raise :class:`ServerBusy` when full."""
        with self._lock:
            if self._admitted >= self.capacity:
                self.rejected += 1
                raise ServerBusy(self.limits.retry_after_s, self.capacity)
            self._admitted += 1
        try:
            future = self._executor.submit(fn, *args, **kwargs)
        except BaseException:
            self._release(None)
            raise
        # Released when the job really ends, not when the client stops waiting: a
        # disconnected client's job still holds its worker until it finishes (or is
        # cancelled while still queued), so abandoned work cannot overfill the pool.
        future.add_done_callback(self._release)
        return await asyncio.wrap_future(future)

    def _release(self, _future) -> None:
        with self._lock:
            self._admitted -= 1
            self.completed += 1

    def shutdown(self) -> None:
        """Let running jobs finish, then stop the workers."""
        self._executor.shutdown(wait=True, cancel_futures=False)


class BodySizeLimit:
    """ASGI middleware refusing request bodies over ``max_bytes`` with 413.

    A declared ``Content-Length`` over the limit is refused before a byte is read; a body
    streamed without one is counted as it arrives and refused when it crosses the limit,
    so a client cannot make the server buffer an unbounded upload.
    """

    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    def _message(self, size: str) -> str:
        return (f"the request body is {size} bytes, over this server's limit "
                f"max_upload_bytes={self.max_bytes:,}; send smaller files or fewer rows")

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        from starlette.exceptions import HTTPException
        from starlette.responses import JSONResponse

        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            body = {"detail": self._message(f"{int(declared):,}"), "field": "body"}
            await JSONResponse(body, status_code=413, headers={"Connection": "close"})(
                scope, receive, send)
            return
        received = 0

        async def counting_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # FastAPI re-raises HTTPException from body parsing, so this becomes
                    # the 413 answer rather than a generic "error parsing the body".
                    raise HTTPException(413, self._message(f"over {self.max_bytes:,}"))
            return message

        await self.app(scope, counting_receive, send)
