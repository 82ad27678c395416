"""The FastAPI application: routes, error answers, and the web page.

``create_app(models)`` serves already-loaded models (see :mod:`polymodal.serve.registry`):

- ``GET  /health``                 — liveness and how busy the inference pool is
- ``GET  /models``                 — each model's kind, columns (with categories), classes,
  conditions, versions
- ``GET  /models/{name}``          — one of them
- ``POST /models/{name}/predict``  — JSON rows, or multipart rows + image/audio files
- ``POST /models/{name}/generate`` — JSON; base64 PNGs, or one PNG grid for ``Accept: image/png``
- ``POST /models/{name}/edit``     — multipart image (+ mask) and a strength
- ``GET  /``                       — the single-page UI (static/index.html, no build step)

The OpenAPI document is exact for this server: the model names are enums (each route
lists the models of its kind), every bound of :class:`ServeLimits` is a minimum/maximum,
and every 4xx answer is documented. Every error is ``{"detail": message, "field": name}``:
400 for a Host header the server does not answer to (:mod:`polymodal.serve.hosts`), 404
for an unknown model, 413 for a body or image over the limits, 422 for anything else the
client got wrong, 503 with ``Retry-After`` when the inference pool is full. Models run on
the pool's threads, never on the event loop. There is no CORS unless ``cors_origins``
asks for it.
"""

# No `from __future__ import annotations` here: the routes' parameter types are made in
# create_app (model-name enums, the server's bounds), and FastAPI resolves string
# annotations against module globals only.

import json
import re
from collections.abc import Sequence
from contextlib import asynccontextmanager
from pathlib import Path as FilePath
from typing import Annotated, Any

import numpy as np
from fastapi import FastAPI, File, Form, Path, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import TypeAdapter, ValidationError
from starlette.exceptions import HTTPException

from polymodal import __version__
from polymodal.errors import DataError, PolymodalError
from polymodal.serve.hosts import HostCheck, host_patterns
from polymodal.serve.limits import (
    BodySizeLimit,
    InferencePool,
    JsonDepthLimit,
    RequestTooLarge,
    ServeLimits,
    ServerBusy,
    check_json_depth,
)
from polymodal.serve.messages import (
    GUIDANCE_RANGE,
    MAX_SEED,
    ErrorBody,
    HealthResponse,
    ImagesResponse,
    ModelInfo,
    ModelsResponse,
    PredictResponse,
    condition_value_type,
    generate_request_model,
    predict_request_model,
)
from polymodal.serve.registry import ServedModel, describe, example_conditions, example_row
from polymodal.serve.rows import media_conditions, prediction_payload, rows_to_frame
from polymodal.serve.uploads import check_image
from polymodal.workflows.media import grid_image, image_to_array, png_base64, png_bytes

INDEX_HTML = FilePath(__file__).parent / "static" / "index.html"


def _answer(description: str) -> dict:
    return {"model": ErrorBody, "description": description}


# Answers any route may give; the routes add their own below.
COMMON_ERRORS = {
    400: _answer("The Host header names a host this server does not answer to (a defence "
                 "against DNS rebinding; see --allow-host), or the body cannot be read as "
                 "its content type (e.g. a multipart body without its boundary)."),
    413: _answer("The request body is over max_upload_bytes."),
}
NAMED_ERRORS = {
    404: _answer("No model of that name, or it is not of the kind this route needs."),
    422: _answer("A request field is invalid; 'field' names it."),
}
INFERENCE_ERRORS = {
    **NAMED_ERRORS,
    413: _answer("The request body is over max_upload_bytes, an image over "
                 "max_image_pixels, or an audio clip over max_audio_s."),
    503: _answer("Every worker is busy and the queue is full; retry after Retry-After "
                 "seconds."),
}
PNG_OR_JSON = {200: {"content": {"image/png": {"schema": {"type": "string", "format": "binary"}}},
                     "description": "JSON with base64 PNGs, or one PNG (a grid of all images) "
                                    "when the request's Accept header asks for image/png."}}


class ModelNotFound(Exception):
    """No model of that name (or of the kind an endpoint needs)."""


def _model_name(names: list[str], what: str):
    """A ``name`` path parameter whose OpenAPI schema lists ``names``. Any other name is
    still a 404 that lists the models, rather than a bare schema error."""
    return Annotated[str, Path(description=f"The name of {what}: one of {names}.",
                               json_schema_extra={"enum": names})]


def create_app(models: dict[str, ServedModel], limits: ServeLimits | None = None, *,
               allow_hosts: Sequence[str] = (), cors_origins: Sequence[str] = ()) -> FastAPI:
    """The application serving ``models`` (name -> loaded model) within ``limits``.

    It answers requests whose Host header is a loopback name (localhost, 127.0.0.1,
    [::1]) or one of ``allow_hosts`` (``"*"`` for any; ``"*.example.com"`` for
    subdomains), and 400 to others. ``cors_origins`` (e.g. ``["http://localhost:3000"]``)
    lets pages from those origins call the API; by default no other origin may.
    """
    limits = limits or ServeLimits()
    pool = InferencePool(limits)
    predictors = sorted(n for n, m in models.items() if m.kind == "predictor")
    generators = sorted(n for n, m in models.items() if m.kind == "generator")
    AnyName = _model_name(sorted(models), "a served model")
    PredictorName = _model_name(predictors, "a served predictor")
    GeneratorName = _model_name(generators, "a served generator")
    described = {name: describe(served) for name, served in models.items()}
    # The documented examples are requests the first served model of each kind accepts.
    PredictRequest = predict_request_model(
        limits, example_row(described[predictors[0]]) if predictors else None)
    GenerateRequest = generate_request_model(
        limits, example_conditions(described[generators[0]]) if generators else None)
    media_columns = sorted({column["name"] for name in predictors
                            for column in described[name]["columns"]
                            if column["modality"] in ("image", "audio")})
    conditions_form = TypeAdapter(dict[str, condition_value_type(limits)
                                       | list[condition_value_type(limits)]])

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        # uvicorn has already let in-flight requests finish; stop the idle workers.
        pool.shutdown()

    app = FastAPI(title="polymodal", version=__version__, lifespan=lifespan,
                  responses=COMMON_ERRORS,
                  description="Predict, generate and edit with saved polymodal models.")
    app.state.models, app.state.limits, app.state.pool = models, limits, pool
    # The last added runs first: the Host check, then CORS, then the body guards.
    app.add_middleware(JsonDepthLimit, max_depth=limits.max_json_depth)
    app.add_middleware(BodySizeLimit, max_bytes=limits.max_upload_bytes)
    if cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(cors_origins),
                           allow_methods=["GET", "POST"], allow_headers=["content-type", "accept"],
                           expose_headers=["retry-after"])
    app.add_middleware(HostCheck, hosts=host_patterns(None, allow_hosts))
    _add_error_handlers(app, limits)

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

    @app.get("/models/{name}", response_model=ModelInfo, responses=NAMED_ERRORS,
             include_in_schema=bool(models))
    async def one_model(name: AnyName) -> dict:
        if name not in models:
            raise ModelNotFound(f"no model named {name!r}; this server has {sorted(models)}")
        return describe(models[name])

    # A route with no model of its kind stays (its 404 says where to go) but is not
    # documented: no name would be valid.
    @app.post("/models/{name}/predict", response_model=PredictResponse, responses=INFERENCE_ERRORS,
              openapi_extra=_predict_request_doc(PredictRequest, media_columns),
              include_in_schema=bool(predictors))
    async def predict(name: PredictorName, request: Request) -> dict:
        """Predict each row. Send JSON ``{"rows": [...]}``, or multipart/form-data with a
        ``rows`` field (that JSON list) plus image/audio files named ``COLUMN`` (one row) or
        ``COLUMN[ROW]``."""
        served = find(name, "predictor")
        rows, files = await _read_predict_body(request, PredictRequest, limits)

        def work() -> dict:  # decoding uploads is CPU work too: on a worker, not the loop
            table = rows_to_frame(rows, files, served.model.schema_, limits)
            return prediction_payload(served.model, table)

        return await pool.run(work)

    @app.post("/models/{name}/generate", response_model=ImagesResponse,
              responses={**INFERENCE_ERRORS, **PNG_OR_JSON}, include_in_schema=bool(generators))
    async def generate(name: GeneratorName, body: GenerateRequest, request: Request):
        """Sample ``n`` images conditioned on ``conditions`` and/or ``prompt``."""
        served = find(name, "generator")
        as_png = _accepts_png(request.headers.get("accept", ""))

        def work():
            # The Generator checks the conditions and prompt itself (ConfigError -> 422);
            # image/audio conditions are base64 files, decoded here.
            conditions = media_conditions(body.conditions, served.model.conditions_, limits)
            images = served.model.sample(body.n, conditions=conditions, prompts=body.prompt,
                                         num_steps=body.steps, guidance=body.guidance,
                                         seed=body.seed)
            return _encode_images(np.asarray(images), as_png)

        return await pool.run(work)

    lo, hi = GUIDANCE_RANGE

    # Form fields are never null in a form: an optional one is left out, so none of them
    # is declared nullable (a null would reach the model as the text "null").
    @app.post("/models/{name}/edit", response_model=ImagesResponse,
              responses={**INFERENCE_ERRORS, **PNG_OR_JSON}, include_in_schema=bool(generators))
    async def edit(
        name: GeneratorName,
        request: Request,
        image: Annotated[UploadFile, File(description="The image to edit.")],
        mask: Annotated[UploadFile, File(description=(
            "Optional greyscale mask of the image's size: white pixels are kept, black ones "
            "are redrawn (inpainting; strength then only needs to be above 0)."))] = None,
        strength: Annotated[float, Form(ge=0.0, le=1.0, allow_inf_nan=False, description=(
            "Without a mask: 0 keeps the image, 1 redraws it entirely."))] = 0.5,
        conditions: Annotated[str, Form(description=(
            'JSON object of condition column -> value, e.g. {"label": 3}.'))] = None,
        prompt: Annotated[str, Form(max_length=limits.max_prompt_chars, description=(
            "A text prompt (models conditioned on a text column only)."))] = None,
        steps: Annotated[int, Form(ge=1, le=limits.max_steps, description=(
            "Sampler steps (default: the model's). At most max_steps."))] = None,
        guidance: Annotated[float, Form(ge=lo, le=hi, allow_inf_nan=False, description=(
            "Classifier-free guidance scale (default: the model's)."))] = None,
        seed: Annotated[int, Form(ge=0, le=MAX_SEED)] = 0,
    ):
        """Redraw an uploaded image (only its black mask pixels when a mask is given)."""
        served = find(name, "generator")
        _check_form_fields(await request.form(), EDIT_FIELDS)
        parsed_conditions = _parse_conditions_form(conditions, conditions_form, limits)
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
            conditions = media_conditions(parsed_conditions, served.model.conditions_, limits)
            images = served.model.edit(pixels, strength=strength, conditions=conditions,
                                       prompts=prompt, mask=keep, num_steps=steps,
                                       guidance=guidance, seed=seed)
            return _encode_images(np.asarray(images), as_png)

        return await pool.run(work)

    return app


# ----------------------------------------------------------------------------- helpers


async def _read_predict_body(request: Request, model, limits: ServeLimits
                             ) -> tuple[Any, dict[str, bytes]]:
    """``(rows, files)`` from a JSON or multipart body; ``model`` checks a JSON body."""
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
        rows = [{}] if rows_text is None else _parse_json(rows_text, "rows", limits)
        return rows, files
    if content_type not in ("application/json", ""):
        raise DataError(f"body: content type {content_type!r} is not accepted; send "
                        "application/json, or multipart/form-data (a form) for files")
    raw = await request.body()  # JsonDepthLimit has checked its nesting
    doc = _parse_json(raw, "body", limits)
    try:
        return model.model_validate(doc).rows, {}
    except ValidationError as exc:
        raise RequestValidationError(exc.errors()) from None


def _parse_json(text: str | bytes, field: str, limits: ServeLimits):
    check_json_depth(text, limits.max_json_depth, field=field)
    try:
        return json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise DataError(f"{field}: not valid JSON ({exc})") from None


EDIT_FIELDS = ("image", "mask", "strength", "conditions", "prompt", "steps", "guidance", "seed")


def _check_form_fields(form, known: Sequence[str]) -> None:
    """A form field the route does not read (``n`` sent to /edit, a misspelt ``strenght``)
    or one sent twice would be ignored silently; DataError naming it instead."""
    names = [key for key, _ in form.multi_items()]
    for key in names:
        if key not in known:
            raise DataError(f"{key}: not a field of this form; it takes {', '.join(known)} "
                            "(one image per request; /generate makes n images)")
        if names.count(key) > 1:
            raise DataError(f"{key}: sent {names.count(key)} times; send it once")


def _parse_conditions_form(text: str | None, adapter: TypeAdapter, limits: ServeLimits
                           ) -> dict | None:
    if text is None or not text.strip():
        return None
    try:
        return adapter.validate_python(_parse_json(text, "conditions", limits))
    except ValidationError:
        raise DataError(f"conditions: expected a JSON object of column -> value, got "
                        f"{text[:80]!r}") from None


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
             and not p.startswith(("function-", "constrained-"))]
    return ".".join(parts) or None


# (top-level field, pydantic error type) -> the ServeLimits field behind that bound.
_LIMIT_BEHIND = {
    ("n", "less_than_equal"): "max_images",
    ("steps", "less_than_equal"): "max_steps",
    ("rows", "too_long"): "max_rows",
    ("prompt", "string_too_long"): "max_prompt_chars",
    ("prompt", "too_long"): "max_images",
    ("conditions", "string_too_long"): "max_prompt_chars",
    ("conditions", "too_long"): "max_images",
}


def _validation_message(errors: list[dict], limits: ServeLimits | None = None
                        ) -> tuple[str, str | None]:
    """FastAPI/pydantic validation errors as one line naming the first bad field.

    A value that fits no member of a union yields one error per member; the one that is
    not a plain type mismatch ("should be a finite number" rather than "should be a
    valid string") says best what is wrong. A bound that is one of the server's
    ``limits`` says so, and how to raise it.
    """
    first_field = _error_field(errors[0])
    same_field = [e for e in errors if _error_field(e) == first_field]
    error = min(same_field, key=lambda e: str(e.get("type", "")).endswith("_type"))
    message = error.get("msg", "invalid")
    if "Expected UploadFile" in message:  # a text field where a file belongs
        message = "expected an uploaded file; leave the field out to send none"
    shown = error.get("input")
    got = f" (got {shown!r:.80})" if "input" in error and not isinstance(shown, dict) else ""
    limit_name = _LIMIT_BEHIND.get(((first_field or "").split(".")[0], error.get("type")))
    hint = ""
    if limit_name is not None and limits is not None:
        hint = (f"; that is this server's limit {limit_name}={getattr(limits, limit_name)} "
                "(start it with a higher limit to allow more)")
    others = len({_error_field(e) for e in errors} - {first_field})
    more = f"; and {others} more field(s) with problems" if others else ""
    in_body = tuple(errors[0].get("loc", ()))[:1] == ("body",)
    return (f"{first_field or 'body'}: {message}{got}{hint}{more}",
            first_field or ("body" if in_body else None))


def _unread_body(request: Request, errors: list[dict]) -> str | None:
    """What kept FastAPI from reading the body at all, as one line; None when it read it.

    A JSON route (/generate) gets malformed JSON (pydantic's error would name the
    character offset as the field), or a body of another content type (FastAPI then
    hands the raw bytes over, reported as "should be a valid dictionary"); the form route
    (/edit) gets a body that is not a form (reported as every form field missing)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    sent = f"sent as {content_type!r}" if content_type else "sent without a Content-Type header"
    first = errors[0]
    if first.get("type") == "json_invalid":
        reason = (first.get("ctx") or {}).get("error", "JSON decode error")
        at = first.get("loc", ("body",))[-1]
        return f"body: not valid JSON ({reason} at character {at}); send one JSON object"
    if request.url.path.endswith("/edit"):
        if content_type not in ("multipart/form-data", "application/x-www-form-urlencoded"):
            return (f"body: {sent}; send multipart/form-data (a form) "
                    "with the image as a file field named 'image'")
        return None
    if tuple(first.get("loc", ())) == ("body",):
        if isinstance(first.get("input"), bytes | bytearray):
            return (f"body: {sent}; send a JSON object with "
                    "Content-Type: application/json")
        if first.get("type") == "missing":
            return 'body: the request has no body; send a JSON object, e.g. {"n": 4}'
    return None


def _add_error_handlers(app: FastAPI, limits: ServeLimits) -> None:
    @app.exception_handler(RequestValidationError)
    async def on_validation(request: Request, exc: RequestValidationError):
        errors = list(exc.errors())
        unread = _unread_body(request, errors)
        if unread is not None:
            return _error(422, unread, "body")
        detail, field = _validation_message(errors, limits)
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
        # RequestRefused (raised while a body is read) names its field; a 400 here is a
        # body starlette could not parse; 405 and the like name none.
        field = getattr(exc, "field", "body" if exc.status_code == 400 else None)
        return _error(exc.status_code, str(exc.detail), field, headers=exc.headers)


_LEADING_FIELD = re.compile(r"^([\w.\[\]]+)(?:=|: )")
# The Generator's messages name a condition column as Python does: conditions['price'],
# "condition color='x' is a class ...", "conditions for ['foo'], which ...".
_CONDITION_COLUMN = re.compile(r"^conditions?(?:\[(['\"])(.+?)\1\]| (\w+)=)")
_WHOLE_FIELD = (("conditions for [", "conditions"), ("pass the text for ", "prompt"))
_FORM_FIELD = re.compile(r"^(?:file|form) field '([^']+)'")
# Python API parameter names -> the request fields they come from.
_API_TO_FIELD = {"num_steps": "steps", "prompts": "prompt"}


def _field_of(message: str) -> str | None:
    """The field a message starts with (``"rows[0].price: ..."``, ``"guidance=-3 ..."``,
    ``"conditions['price'] holds ..."``), named as in the request; None when the message
    does not start with one."""
    column = _CONDITION_COLUMN.match(message)
    if column is not None:
        return f"conditions.{column.group(2) or column.group(3)}"
    for start, field in _WHOLE_FIELD:
        if message.startswith(start):
            return field
    form_field = _FORM_FIELD.match(message)
    if form_field is not None:
        return form_field.group(1)
    match = _LEADING_FIELD.match(message)
    if match is None:
        return None
    return _API_TO_FIELD.get(match.group(1), match.group(1))


def _predict_request_doc(model, media_columns: list[str]) -> dict:
    """The OpenAPI request body of /predict: JSON rows (``model``), or a form of rows and
    files named after the served predictors' ``media_columns`` (image/audio)."""
    rows = {"type": "string", "description": "The rows as a JSON list of objects (default: "
                                             "one empty row)."}
    file = {"type": "string", "format": "binary"}
    form = {"type": "object", "additionalProperties": False, "properties": {
        "rows": rows,
        **{c: {**file, "description": f"The {c} file of a one-row request."}
           for c in media_columns}}}
    if media_columns:
        names = "|".join(re.escape(c) for c in media_columns)
        form["patternProperties"] = {f"^({names})\\[[0-9]+\\]$": {
            **file, "description": "COLUMN[ROW]: the file of row ROW (counted from 0)."}}
    return {"requestBody": {"required": True, "content": {
        "application/json": {"schema": model.model_json_schema()},
        "multipart/form-data": {"schema": form},
        "application/x-www-form-urlencoded": {"schema": {
            "type": "object", "properties": {"rows": rows}, "additionalProperties": False}},
    }}}
