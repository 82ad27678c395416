"""What one request may ask of the server, and the bounded pool that runs inference.

Two guards keep a busy or hostile client from taking the server down:

- :class:`ServeLimits` caps the size of each request (body bytes, JSON nesting, image
  pixels, audio seconds, rows, images per generation, sampler steps, prompt length). A request over a
  cap is refused before any model runs, with 413 (too large a body, image or clip) or 422
  (too deep, too many rows/images/steps, too long a prompt), and the message names the
  limit and its value.
- :class:`InferencePool` runs models on a few worker threads, off the event loop, so
  ``/health`` stays responsive while a model works. It admits at most
  ``max_workers + max_queue`` jobs; one more is refused at once with
  :class:`ServerBusy` (503 + ``Retry-After``) instead of piling up until clients time out.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import TypeVar

import numpy as np
from starlette.exceptions import HTTPException

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
    max_audio_s: int = 60
    """Longest uploaded audio clip, in seconds; longer → 413 (a predictor hears only a clip's
    first few seconds, and hours of compressed silence fit in a small file)."""
    max_rows: int = 1024
    """Most rows in one /predict request; more → 422."""
    max_images: int = 64
    """Most images in one /generate request (``n``); more → 422."""
    max_steps: int = 200
    """Most sampler steps in one /generate or /edit request; more → 422."""
    max_prompt_chars: int = 2000
    """Longest text prompt, in characters (each one, when a list is sent); longer → 422."""
    max_json_depth: int = 32
    """Deepest nesting of JSON arrays/objects in a body or form field; deeper → 422. A
    request needs 4 levels; without a cap, deep nesting exhausts the parser's recursion."""
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


class RequestRefused(HTTPException):
    """A refusal raised while the body is read, naming the request field at fault.

    It is an HTTPException because FastAPI re-raises those from its body parsing (any
    other exception there becomes a generic 400), so the client gets this message.
    """

    def __init__(self, status: int, message: str, *, field: str | None):
        super().__init__(status, message)
        self.field = field


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
                    raise RequestRefused(413, self._message(f"over {self.max_bytes:,}"),
                                         field="body")
            return message

        await self.app(scope, counting_receive, send)


# A JSON string (escapes included), written as an unrolled loop so that it runs in linear time.
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_OPENERS = np.frombuffer(b"[{", dtype=np.uint8)
_CLOSERS = np.frombuffer(b"]}", dtype=np.uint8)


def json_depth(text: bytes | str) -> int:
    """How deeply the arrays and objects of a JSON text nest; brackets in strings do not count.

    It reads the text without parsing it, so it is safe on any input: a malformed text
    gives some depth, and the parser then refuses it.
    """
    data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else bytes(text)
    skeleton = np.frombuffer(_JSON_STRING.sub(b"", data), dtype=np.uint8)
    step = np.isin(skeleton, _OPENERS).astype(np.int64) - np.isin(skeleton, _CLOSERS)
    return int(np.cumsum(step).max(initial=0))


def check_json_depth(text: bytes | str, max_depth: int, *, field: str) -> None:
    """Refuse (422) a JSON text nested deeper than ``max_depth``, naming ``field``."""
    depth = json_depth(text)
    if depth > max_depth:
        raise RequestRefused(422, f"{field}: the JSON nests {depth:,} levels deep, over this "
                                  f"server's limit max_json_depth={max_depth}; a request needs "
                                  "about 4 levels", field=field)


_FORM_TYPES = (b"multipart/form-data", b"application/x-www-form-urlencoded")


class JsonDepthLimit:
    """ASGI middleware refusing (422) a body nested deeper than ``max_depth``.

    Python's JSON parser recurses once per level, so 100,000 ``[`` would exhaust its
    stack before any validation runs. The body is checked as the application reads it
    (forms are left alone: their JSON fields are checked where they are parsed).
    """

    def __init__(self, app, max_depth: int):
        self.app = app
        self.max_depth = max_depth

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        content_type = dict(scope.get("headers") or []).get(b"content-type", b"")
        if content_type.split(b";")[0].strip().lower() in _FORM_TYPES:
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []

        async def checking_receive():
            message = await receive()
            if message["type"] == "http.request":
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    check_json_depth(b"".join(chunks), self.max_depth, field="body")
                    chunks.clear()
            return message

        await self.app(scope, checking_receive, send)
