"""The FastAPI application: routes, error answers, and the web page.

``create_app(models)`` serves already-loaded models (see :mod:`polymodal.serve.registry`):

- ``GET  /health``                 — liveness and how busy the inference pool is
- ``GET  /models``                 — each model's kind, columns, classes, conditions, versions
- ``GET  /models/{name}``          — one of them
- ``POST /models/{name}/predict``  — JSON rows, or multipart rows + image/audio files
- ``POST /models/{name}/generate`` — JSON; base64 PNGs, or one PNG grid for ``Accept: image/png``
- ``POST /models/{name}/edit``     — multipart image (+ mask) and a strength
- ``GET  /``                       — the single-page UI (static/index.html, no build step)

Every error is ``{"detail": message, "field": name}``: 404 for an unknown model, 413 for a
body or image over the limits, 422 for anything else the client got wrong, 503 with
``Retry-After`` when the inference pool is full. Models run on the pool's threads, never
on the event loop.
"""

from __future__ import annotations

import json
import re
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import TypeAdapter, ValidationError
from starlette.exceptions import HTTPException

from polymodal import __version__
from polymodal.errors import DataError, PolymodalError
from polymodal.serve.limits import (
    BodySizeLimit,
    InferencePool,
    RequestTooLarge,
    ServeLimits,
    ServerBusy,
    check_at_most,
)
from polymodal.serve.messages import (
    MAX_SEED,
    ErrorBody,
    GenerateRequest,
    HealthResponse,
    ImagesResponse,
    ModelInfo,
    ModelsResponse,
    PredictRequest,
    PredictResponse,
    Scalar,
)
from polymodal.serve.registry import ServedModel, describe
from polymodal.serve.rows import prediction_payload, rows_to_frame
from polymodal.serve.uploads import check_image
from polymodal.workflows.media import grid_image, image_to_array, png_base64, png_bytes

INDEX_HTML = Path(__file__).parent / "static" / "index.html"
ERRORS = {status: {"model": ErrorBody} for status in (404, 413, 422, 503)}
PNG_OR_JSON = {200: {"content": {"image/png": {"schema": {"type": "string", "format": "binary"}}},
                     "description": "JSON with base64 PNGs, or one PNG (a grid of all images) "
                                    "when the request's Accept header asks for image/png."}}
_CONDITIONS = TypeAdapter(dict[str, Scalar | list[Scalar]])


class ModelNotFound(Exception):
    """No model of that name (or of the kind an endpoint needs)."""


def create_app(models: dict[str, ServedModel], limits: ServeLimits | None = None) -> FastAPI:
    """The application serving ``models`` (name -> loaded model) within ``limits``."""
    limits = limits or ServeLimits()
    pool = InferencePool(limits)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        # uvicorn has already let in-flight requests finish; stop the idle workers.
        pool.shutdown()

    app = FastAPI(title="polymodal", version=__version__, lifespan=lifespan,
                  description="Predict, generate and edit with saved polymodal models.")
    app.state.models, app.state.limits, app.state.pool = models, limits, pool
    app.add_middleware(BodySizeLimit, max_bytes=limits.max_upload_bytes)
    _add_error_handlers(app)

    def find(name: str, kind: str) -> ServedModel:
        served = models.get(name)
        if served is None:
            raise ModelNotFound(f"no model named {name!r}; this server has "
                                f"{sorted(models) or 'none'} (see GET /models)")
        if served.kind != kind:
            fits = ("/predict" if served.kind == "predictor" else "/generate or /edit")
            raise ModelNotFound(f"model {name!r} is a {served.kind}, not a {kind}; send this "
                                f"request to /models/{name}{fits}")
        return served

    @app.get("/", include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse(INDEX_HTML.read_text(encoding="utf-8"))

    @app.get("/health", response_model=HealthResponse)
    async def health() -> dict:
        """Answers at once even while every worker is busy (it runs on the event loop)."""
        return {"status": "ok", "models": sorted(models), "in_flight": pool.in_flight,
                "capacity": pool.capacity, "completed": pool.completed,
                "rejected": pool.rejected, "version": __version__}

    @app.get("/models", response_model=ModelsResponse)
    async def list_models() -> dict:
        return {"models": [describe(m) for m in models.values()]}

    @app.get("/models/{name}", response_model=ModelInfo, responses={404: {"model": ErrorBody}})
    async def one_model(name: str) -> dict:
        if name not in models:
            raise ModelNotFound(f"no model named {name!r}; this server has {sorted(models)}")
        return describe(models[name])

    @app.post("/models/{name}/predict", response_model=PredictResponse, responses=ERRORS,
              openapi_extra=_predict_request_doc())
    async def predict(name: str, request: Request) -> dict:
        """Predict each row. Send JSON ``{"rows": [...]}``, or multipart/form-data with a
        ``rows`` field (that JSON list) plus image/audio files named ``COLUMN`` (one row) or
        ``COLUMN[ROW]``."""
        served = find(name, "predictor")
        rows, files = await _read_predict_body(request)

        def work() -> dict:  # decoding uploads is CPU work too: on a worker, not the loop
            table = rows_to_frame(rows, files, served.model.schema_, limits)
            return prediction_payload(served.model, table)

        return await pool.run(work)

    @app.post("/models/{name}/generate", response_model=ImagesResponse,
              responses={**ERRORS, **PNG_OR_JSON})
    async def generate(name: str, body: GenerateRequest, request: Request):
        """Sample ``n`` images conditioned on ``conditions`` and/or ``prompt``."""
        served = find(name, "generator")
        check_at_most(body.n, limits.max_images, field="n", limit_name="max_images")
        _check_steps(body.steps, limits)
        as_png = _accepts_png(request.headers.get("accept", ""))

        def work():
            # The Generator checks the conditions and prompt itself (ConfigError -> 422).
            images = served.model.sample(body.n, conditions=body.conditions, prompts=body.prompt,
                                         num_steps=body.steps, guidance=body.guidance,
                                         seed=body.seed)
            return _encode_images(np.asarray(images), as_png)

        return await pool.run(work)

    @app.post("/models/{name}/edit", response_model=ImagesResponse,
              responses={**ERRORS, **PNG_OR_JSON})
    async def edit(
        name: str,
        request: Request,
        image: Annotated[UploadFile, File(description="The image to edit.")],
        mask: Annotated[UploadFile | None, File(description=(
            "Optional greyscale mask of the image's size: white pixels are kept, black ones "
            "are redrawn (inpainting; strength then only needs to be above 0)."))] = None,
        strength: Annotated[float, Form(ge=0.0, le=1.0, description=(
            "Without a mask: 0 keeps the image, 1 redraws it entirely."))] = 0.5,
        conditions: Annotated[str | None, Form(description=(
            'JSON object of condition column -> value, e.g. {"label": 3}.'))] = None,
        prompt: Annotated[str | None, Form()] = None,
        steps: Annotated[int | None, Form(ge=1)] = None,
        guidance: Annotated[float | None, Form(allow_inf_nan=False)] = None,
        seed: Annotated[int, Form(ge=0, le=MAX_SEED)] = 0,
    ):
        """Redraw an uploaded image (only its black mask pixels when a mask is given)."""
        served = find(name, "generator")
        _check_steps(steps, limits)
        parsed_conditions = _parse_conditions_form(conditions)
        as_png = _accepts_png(request.headers.get("accept", ""))
        image_bytes = await image.read()
        mask_bytes = None if mask is None else await mask.read()

        def work():
            picture = check_image(image_bytes, field="image", max_pixels=limits.max_image_pixels)
            pixels = image_to_array(picture)[None]  # (1, H, W, C) uint8
            keep = None
            if mask_bytes is not None:
                mask_image = check_image(mask_bytes, field="mask",
                                         max_pixels=limits.max_image_pixels, channels=1)
                if mask_image.size != picture.size:
                    raise DataError(f"mask: its size {mask_image.size[0]}x{mask_image.size[1]} "
                                    f"differs from the image's {picture.size[0]}x"
                                    f"{picture.size[1]}; send a mask of the same size")
                keep = image_to_array(mask_image)[None, ..., 0]  # (1, H, W) uint8, 255 = keep
            images = served.model.edit(pixels, strength=strength, conditions=parsed_conditions,
                                       prompts=prompt, mask=keep, num_steps=steps,
                                       guidance=guidance, seed=seed)
            return _encode_images(np.asarray(images), as_png)

        return await pool.run(work)

    return app


# ----------------------------------------------------------------------------- helpers


async def _read_predict_body(request: Request) -> tuple[Any, dict[str, bytes]]:
    """``(rows, files)`` from a JSON or multipart body."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type in ("multipart/form-data", "application/x-www-form-urlencoded"):
        form = await request.form()
        files: dict[str, bytes] = {}
        rows_text = None
        for key, value in form.multi_items():
            if isinstance(value, str):
                if key != "rows":
                    raise DataError(f"form field {key!r}: only 'rows' (a JSON list) and files "
                                    "named after image/audio columns are accepted")
                rows_text = value
            else:
                if key in files:
                    raise DataError(f"file field {key!r} is sent twice; send each file once")
                files[key] = await value.read()
        rows = [{}] if rows_text is None else _parse_json(rows_text, "rows")
        return rows, files
    if content_type not in ("application/json", ""):
        raise DataError(f"body: content type {content_type!r} is not accepted; send "
                        "application/json, or multipart/form-data (a form) for files")
    raw = await request.body()
    doc = _parse_json(raw, "body")
    try:
        return PredictRequest.model_validate(doc).rows, {}
    except ValidationError as exc:
        raise RequestValidationError(exc.errors()) from None


def _parse_json(text: str | bytes, field: str):
    try:
        return json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise DataError(f"{field}: not valid JSON ({exc})") from None


def _parse_conditions_form(text: str | None) -> dict | None:
    if text is None or not text.strip():
        return None
    try:
        return _CONDITIONS.validate_python(_parse_json(text, "conditions"))
    except ValidationError:
        raise DataError(f"conditions: expected a JSON object of column -> value, got "
                        f"{text[:80]!r}") from None


def _check_steps(steps: int | None, limits: ServeLimits) -> None:
    if steps is not None:
        check_at_most(steps, limits.max_steps, field="steps", limit_name="max_steps")


def _encode_images(images: np.ndarray, as_png: bool):
    """uint8 (N, H, W, C) as JSON base64 PNGs, or one PNG (a grid when N > 1)."""
    assert images.ndim == 4 and images.dtype == np.uint8, (images.shape, images.dtype)
    if as_png:
        data = png_bytes(images[0] if len(images) == 1 else grid_image(images))
        return Response(data, media_type="image/png")
    return {"images": [png_base64(im) for im in images], "width": int(images.shape[2]),
            "height": int(images.shape[1])}


def _accepts_png(accept: str) -> bool:
    """True when the Accept header names image/png itself (``*/*`` alone means JSON)."""
    return any(part.split(";")[0].strip().lower() == "image/png" for part in accept.split(","))


def _error(status: int, detail: str, field: str | None = None, headers=None) -> JSONResponse:
    return JSONResponse({"detail": detail, "field": field}, status_code=status, headers=headers)


_UNION_TAGS = {"str", "int", "float", "bool", "list", "dict"}


def _error_field(error: dict) -> str | None:
    """``("body", "conditions", "label", "float")`` -> ``"conditions.label"``: the request
    field, without the names pydantic gives the members of a union."""
    parts = [str(p) for p in error.get("loc", ()) if p not in ("body", "query", "path")]
    parts = [p for p in parts if p not in _UNION_TAGS and "[" not in p
             and not p.startswith("function-")]
    return ".".join(parts) or None


def _validation_message(errors: list[dict]) -> tuple[str, str | None]:
    """FastAPI/pydantic validation errors as one line naming the first bad field.

    A value that fits no member of a union yields one error per member; the one that is
    not a plain type mismatch ("should be a finite number" rather than "should be a
    valid string") says best what is wrong.
    """
    first_field = _error_field(errors[0])
    same_field = [e for e in errors if _error_field(e) == first_field]
    error = min(same_field, key=lambda e: str(e.get("type", "")).endswith("_type"))
    shown = error.get("input")
    got = f" (got {shown!r:.80})" if "input" in error and not isinstance(shown, dict) else ""
    others = len({_error_field(e) for e in errors} - {first_field})
    more = f"; and {others} more field(s) with problems" if others else ""
    return f"{first_field or 'body'}: {error.get('msg', 'invalid')}{got}{more}", first_field


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def on_validation(_request, exc: RequestValidationError):
        detail, field = _validation_message(list(exc.errors()))
        return _error(422, detail, field)

    @app.exception_handler(PolymodalError)
    async def on_user_error(_request, exc: PolymodalError):
        return _error(422, str(exc), _field_of(str(exc)))

    @app.exception_handler(RequestTooLarge)
    async def on_too_large(_request, exc: RequestTooLarge):
        return _error(exc.status, str(exc), exc.field)

    @app.exception_handler(ModelNotFound)
    async def on_not_found(_request, exc: ModelNotFound):
        return _error(404, str(exc), "name")

    @app.exception_handler(ServerBusy)
    async def on_busy(_request, exc: ServerBusy):
        return _error(503, str(exc), None, headers={"Retry-After": str(exc.retry_after_s)})

    @app.exception_handler(HTTPException)
    async def on_http(_request, exc: HTTPException):
        field = "body" if exc.status_code == 413 else None
        return _error(exc.status_code, str(exc.detail), field, headers=exc.headers)


_LEADING_FIELD = re.compile(r"^([\w.\[\]]+)(?:=|: )")
# Python API parameter names -> the request fields they come from.
_API_TO_FIELD = {"num_steps": "steps", "prompts": "prompt"}


def _field_of(message: str) -> str | None:
    """The field a message starts with (``"rows[0].price: ..."``, ``"guidance=-3 ..."``),
    named as in the request; None when the message does not start with one."""
    match = _LEADING_FIELD.match(message)
    if match is None:
        return None
    return _API_TO_FIELD.get(match.group(1), match.group(1))


def _predict_request_doc() -> dict:
    """The OpenAPI request body of /predict: JSON rows, or a form of rows + files."""
    rows = {"type": "string", "description": "The rows as a JSON list of objects (default: "
                                             "one empty row)."}
    return {"requestBody": {"required": True, "content": {
        "application/json": {"schema": PredictRequest.model_json_schema()},
        "multipart/form-data": {"schema": {
            "type": "object",
            "properties": {"rows": rows},
            "additionalProperties": {"type": "string", "format": "binary", "description": (
                "An image/audio file for column COLUMN (one row) or COLUMN[ROW].")},
        }},
        "application/x-www-form-urlencoded": {"schema": {
            "type": "object", "properties": {"rows": rows}}},
    }}}
