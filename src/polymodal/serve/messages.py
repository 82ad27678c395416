"""The service's request and response bodies, as pydantic models.

FastAPI builds the OpenAPI document from these, so what ``/docs`` shows is what the
handlers accept and return. The request models are made per application, from its
:class:`~polymodal.serve.limits.ServeLimits`, so that the document states the server's
own bounds (a client or a fuzzer then knows the valid values). Request models forbid
unknown fields: a typo such as ``"step": 20`` is a 422 naming it rather than silently
ignored.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictInt, StrictStr

from polymodal.serve.limits import ServeLimits

# JSON parsers accept NaN and Infinity; no condition value or setting means either.
FiniteFloat = Annotated[float, Field(strict=True, allow_inf_nan=False)]


def _whole_float_to_int(value):
    return int(value) if isinstance(value, float) and value.is_integer() else value


def whole_number(*, ge: int, le: int):
    """A count or seed in [ge, le]: JSON Schema's integer, which 3.0 is too (some encoders
    write every number that way); "3", true and 3.5 are not. (The bounds sit inside, before
    the conversion, so that the document shows them as minimum/maximum.)"""
    return Annotated[StrictInt, Field(ge=ge, le=le), BeforeValidator(_whole_float_to_int)]
Scalar = StrictStr | StrictInt | FiniteFloat | bool
# The largest integer every JSON parser reads exactly (JavaScript's included): a larger seed
# would be rounded on its way and no longer give the same images.
MAX_SEED = 2**53 - 1
# The Generator's own guidance range (recipes.generator.GUIDANCE_RANGE, which this layer may
# not import; a test checks that the two agree).
GUIDANCE_RANGE = (0.0, 20.0)


class ErrorBody(BaseModel):
    """Every 4xx/5xx answer: a message that says what was wrong and how to fix it."""

    detail: str = Field(description="What was wrong and how to fix it.")
    field: str | None = Field(None, description="The request field at fault, e.g. 'rows[0].price' or 'n'.")


def predict_request_model(limits: ServeLimits, example_row: dict | None = None
                          ) -> type[BaseModel]:
    """The JSON body of /predict, bounded by ``limits``; ``example_row`` is a row one of the
    served predictors accepts."""

    class PredictRequest(BaseModel):
        """Rows to predict on: one object per row, keyed by column name."""

        model_config = ConfigDict(extra="forbid")
        rows: list[dict[str, Any]] = Field(
            ..., min_length=1, max_length=limits.max_rows,
            description="One object per row (at most max_rows). Image/audio cells are base64 "
                        "strings (or data: URLs); image, audio and text columns may be left out; "
                        "null marks a missing value.",
            examples=[[example_row]] if example_row else None)

    return PredictRequest


class PredictResponse(BaseModel):
    predictions: list[Any] = Field(description="One prediction per row, in the label's own values.")
    probabilities: list[dict[str, float]] | None = Field(
        None, description="Per row, class -> probability (classification and multilabel); "
                          "null for regression.")
    classes: list[Any] | None = Field(None, description="The classes, in output order.")
    unseen_categories: dict[str, dict[str, int]] = Field(
        default_factory=dict, description="Per categorical column, the values in the rows the "
        "model never learned (predicted as an unknown category) and how many rows hold each.")


def condition_value_type(limits: ServeLimits):
    """One condition value: a class, a number, a flag, or a text. A text is bounded by
    max_prompt_chars unless it is an image or audio condition's base64 file (which only
    max_upload_bytes bounds), so the length is checked per column (rows.media_conditions)."""
    return StrictStr | StrictInt | FiniteFloat | bool


def generate_request_model(limits: ServeLimits, example_conditions: dict | None = None
                           ) -> type[BaseModel]:
    """The JSON body of /generate, bounded by ``limits`` (and the Generator's ranges);
    ``example_conditions`` are conditions one of the served generators accepts."""
    Value = condition_value_type(limits)
    Prompt = Annotated[StrictStr, Field(max_length=limits.max_prompt_chars)]
    lo, hi = GUIDANCE_RANGE
    Guidance = (Annotated[float, Field(strict=True, allow_inf_nan=False, ge=lo, le=hi)]
                | Annotated[int, Field(strict=True, ge=int(lo), le=int(hi))])

    class GenerateRequest(BaseModel):
        """What to generate: how many images, conditioned on what, sampled how."""

        model_config = ConfigDict(extra="forbid")
        n: whole_number(ge=1, le=limits.max_images) = Field(
            8, description="Number of images (at most max_images).")
        conditions: dict[str, Value | Annotated[list[Value], Field(max_length=limits.max_images)]
                         ] | None = Field(
            None, description="Condition column -> one value for every image, or a list with one "
                              "value per image.",
            examples=[example_conditions] if example_conditions else None)
        prompt: Prompt | Annotated[list[Prompt], Field(max_length=limits.max_images)] | None = Field(
            None, description="A text prompt for every image, or one per image (models conditioned "
                              "on a text column only); at most max_prompt_chars characters each.")
        steps: whole_number(ge=1, le=limits.max_steps) | None = Field(
            None, description="Sampler steps; null uses the model's default. At most max_steps.")
        guidance: Guidance | None = Field(
            None, description="Classifier-free guidance scale (1 = none); null uses the model's "
                              "default.")
        seed: whole_number(ge=0, le=MAX_SEED) = Field(
            0, description="The same seed and request give the same images.")

    return GenerateRequest


class ImagesResponse(BaseModel):
    images: list[str] = Field(description="PNG images, base64-encoded.")
    width: int
    height: int


class ModelInfo(BaseModel):
    name: str
    kind: Literal["predictor", "generator"]
    versions: dict[str, str] = Field(description="Library versions the model was saved with.")
    label: str | None = None
    problem_type: str | None = None
    classes: list[Any] | None = None
    columns: list[dict[str, Any]] | None = Field(
        None, description="Predictors: each feature column's name, modality, whether a row "
                          "needs it, and why it has that modality; categorical columns list "
                          "the categories the model knows (most frequent first), multilabel "
                          "columns their tags.")
    conditions: dict[str, dict[str, Any]] | None = Field(
        None, description="Generators: condition column -> {modality, and classes "
                          "(categorical), min/max/mean (numeric) or tags (multilabel)}.")
    image_shape: list[int] | None = Field(
        None, description="Generators: (channels, height, width) of the images they make.")


class ModelsResponse(BaseModel):
    models: list[ModelInfo]


class HealthResponse(BaseModel):
    status: Literal["ok"]
    models: list[str]
    in_flight: int = Field(description="Inference jobs running or queued now.")
    capacity: int = Field(description="max_workers + max_queue; beyond it requests get 503.")
    completed: int
    rejected: int = Field(description="Requests refused with 503 since the server started.")
    version: str
