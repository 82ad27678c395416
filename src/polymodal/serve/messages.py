"""The service's request and response bodies, as pydantic models.

FastAPI builds the OpenAPI document from these, so what ``/docs`` shows is what the
handlers accept and return. Request models forbid unknown fields: a typo such as
``"step": 20`` is a 422 naming it rather than silently ignored.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

# JSON parsers accept NaN and Infinity; no condition value or setting means either.
FiniteFloat = Annotated[float, Field(strict=True, allow_inf_nan=False)]
Scalar = StrictStr | StrictInt | FiniteFloat | bool
MAX_SEED = 2**63 - 1  # torch seeds are 64-bit


class ErrorBody(BaseModel):
    """Every 4xx/5xx answer: a message that says what was wrong and how to fix it."""

    detail: str = Field(description="What was wrong and how to fix it.")
    field: str | None = Field(None, description="The request field at fault, e.g. 'rows[0].price' or 'n'.")


class PredictRequest(BaseModel):
    """Rows to predict on: one object per row, keyed by column name."""

    model_config = ConfigDict(extra="forbid")
    rows: list[dict[str, Any]] = Field(
        ..., min_length=1,
        description="One object per row. Image/audio cells are base64 strings (or data: URLs); "
                    "image, audio and text columns may be left out; null marks a missing value.",
        examples=[[{"price": 9.5, "color": "red", "caption": "a red square"}]])


class PredictResponse(BaseModel):
    predictions: list[Any] = Field(description="One prediction per row, in the label's own values.")
    probabilities: list[dict[str, float]] | None = Field(
        None, description="Per row, class -> probability (classification and multilabel); "
                          "null for regression.")
    classes: list[Any] | None = Field(None, description="The classes, in output order.")


class GenerateRequest(BaseModel):
    """What to generate: how many images, conditioned on what, sampled how."""

    model_config = ConfigDict(extra="forbid")
    n: StrictInt = Field(8, ge=1, description="Number of images (at most the server's max_images).")
    conditions: dict[str, Scalar | list[Scalar]] | None = Field(
        None, description="Condition column -> one value for every image, or a list with one "
                          "value per image.", examples=[{"label": 7}])
    prompt: StrictStr | list[StrictStr] | None = Field(
        None, description="A text prompt for every image, or one per image (models conditioned "
                          "on a text column only).")
    steps: StrictInt | None = Field(None, ge=1, description="Sampler steps; null uses the model's "
                                                            "default. At most max_steps.")
    guidance: FiniteFloat | StrictInt | None = Field(
        None, description="Classifier-free guidance scale; null uses the model's default.")
    seed: StrictInt = Field(0, ge=0, le=MAX_SEED,
                            description="The same seed and request give the same images.")


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
                          "needs it, and why it has that modality.")
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
