"""``Generator``: a conditional image generator trained from one table, on a CPU budget.

The scikit-learn pattern (see :mod:`polymodal.api.predictor`): ``__init__`` stores its
arguments unchanged, ``fit`` returns ``self``, learned state ends in ``_``, and using an
unfitted generator raises :class:`~polymodal.errors.NotFittedError`. This module is the
surface; the work is done below it:

- reading the table, decoding the images, the conditions asked for:
  :mod:`polymodal.data.generator_rows`, :mod:`polymodal.data.generator_inputs`;
- what trains and samples, resolved once per fit: :mod:`polymodal.recipes.generator`;
- the network and sampling: :mod:`polymodal.models.generator_net`,
  :mod:`polymodal.models.samplers`;
- the training run: :mod:`polymodal.train.generator_fit`; sample grids:
  :mod:`polymodal.evaluate.generator_grids`.
"""

from __future__ import annotations

import logging
import numbers
import os
import warnings
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch

from polymodal.api.generator_folder import FORMAT_VERSION, read_generator, write_generator
from polymodal.api.params import get_params, set_params
from polymodal.data.generator_inputs import condition_batch, condition_frame, edit_images, keep_mask
from polymodal.data.generator_rows import (
    conditions_info,
    grid_conditions,
    read_image_table,
    training_rows,
)
from polymodal.data.image_encoding import tensor_to_uint8
from polymodal.data.schema import Schema
from polymodal.data.text import TEXT_KINDS, minilm_available
from polymodal.data.transforms import TableTransform
from polymodal.errors import ConfigError, DataError, NotFittedError
from polymodal.evaluate.generator_grids import write_sample_grid
from polymodal.models.condition import CONDITION_MODALITIES
from polymodal.models.generator_net import (
    SAMPLE_BATCH_SIZE,
    GeneratorNetwork,
    build_network,
    integrate,
    network_config,
    velocity_fn,
)
from polymodal.models.samplers import (
    DEFAULT_GUIDANCE_INTERVAL,
    edit_sample,
    inpaint_sample,
    variation_sample,
)
from polymodal.recipes.base import to_dict
from polymodal.recipes.generator import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_CONDITION_DROPOUT,
    DEFAULT_EMA_HALFLIFE_IMAGES,
    DEFAULT_GUIDANCE,
    DEFAULT_NUM_STEPS,
    DEFAULT_SAMPLER,
    PRESETS,
    SamplingRecipe,
    argument_problems,
    resolve_generator,
    sampling_problems,
    sampling_recipe,
)
from polymodal.train.budget import TimeBudget
from polymodal.train.config import bf16_pays_for_images
from polymodal.train.generator_fit import generator_train_config, run_summary, train_generator

logger = logging.getLogger(__name__)

# The constructor arguments that feed the recipe (see resolve_generator).
RECIPE_ARGUMENTS = ("preset", "batch_size", "lr", "ema_halflife_images", "condition_dropout",
                    "coord_channels", "spatial_condition", "sampler", "num_steps", "guidance",
                    "guidance_interval")


class Generator:
    """Generate images like those of one column of a table, conditioned on other columns.

    Args:
        image: the image column to learn to generate.
        condition: columns to condition on (categorical, numeric, datetime, multilabel,
            text or image); ``None`` or ``[]`` for an unconditional generator.
        image_size: side of the square images generated; ``None`` infers it from the data.
        image_channels: 1 or 3; ``None`` infers it (1 when most images are grey).
        seed: seeds the weights, the training order and the noise; the same seed and
            data give identical weights on CPU (with no time limit).
        time_limit: seconds for the whole ``fit``; ``None`` trains the preset's epochs.
        preset: ``"fast"`` or ``"best"`` (see :func:`~polymodal.recipes.generator.preset_recipe`).
        text_encoder: for text conditions and prompts: ``"auto"`` (MiniLM's sentence
            vector beside hashed n-grams when MiniLM is installed, else the n-grams),
            ``"minilm"``, ``"hashed"`` or ``"minilm+hashed"``.
        guidance: default classifier-free guidance scale for sampling (1 = none).
        num_steps: default number of sampler steps.
        sampler: default sampler, ``"heun"`` (2nd order) or ``"euler"``.
        guidance_interval: ``(lo, hi)``: guidance applies at sampler times t in this range
            only (t = 1 is pure noise); elsewhere one conditional pass runs.
        condition_dropout: share of training rows whose whole condition is replaced by the
            null condition (and, with several columns, of single columns hidden).
        batch_size: training batch size.
        lr: peak AdamW learning rate (warm-up, then cosine decay); None uses the preset's.
        ema_halflife_images: half-life of the weight EMA in training images.
        columns: modality overrides ``{column: modality}``, e.g. ``{"photo": "image"}``.
        coord_channels: give the UNet two pixel-coordinate input channels (off: they did
            not improve position on ``shapes``; bench/RESULTS.md, 'text_to_image_shapes').
        spatial_condition: let the condition add a learned coarse map to the UNet's
            bottleneck (see :class:`~polymodal.models.unet.UNet`), so it can say where
            things go; ignored by an unconditional generator (bench/RESULTS.md,
            'text_to_image_shapes'). A caption-only generator places shapes too when its
            text encoder gives it the words (the default ``text_encoder``).
        recipe: overrides of the resolved recipe by dotted key, e.g.
            ``{"network.base_channels": 24, "training.weight_decay": 0.01}`` (see
            :class:`~polymodal.recipes.generator.GeneratorRecipe`); an unknown key is an
            error. The sampling arguments and ``sampling.*`` keys are read again at every
            call, so changing them after ``fit`` changes how it samples.
        verbosity: 0 silent; 1 one line per stage and the training progress bar.
    """

    def __init__(
        self,
        image: str = "image",
        condition: list[str] | str | None = None,
        *,
        image_size: int | None = None,
        image_channels: int | None = None,
        seed: int = 0,
        time_limit: float | None = None,
        preset: str = "fast",
        text_encoder: str = "auto",
        guidance: float = DEFAULT_GUIDANCE,
        num_steps: int = DEFAULT_NUM_STEPS,
        sampler: str = DEFAULT_SAMPLER,
        guidance_interval: tuple[float, float] = DEFAULT_GUIDANCE_INTERVAL,
        condition_dropout: float = DEFAULT_CONDITION_DROPOUT,
        batch_size: int = DEFAULT_BATCH_SIZE,
        lr: float | None = None,
        ema_halflife_images: float | None = DEFAULT_EMA_HALFLIFE_IMAGES,
        columns: dict[str, str] | None = None,
        coord_channels: bool = False,
        spatial_condition: bool = True,
        recipe: dict | None = None,
        verbosity: int = 1,
    ):
        self.image = image
        self.condition = condition
        self.image_size = image_size
        self.image_channels = image_channels
        self.seed = seed
        self.time_limit = time_limit
        self.preset = preset
        self.text_encoder = text_encoder
        self.guidance = guidance
        self.num_steps = num_steps
        self.sampler = sampler
        self.guidance_interval = guidance_interval
        self.condition_dropout = condition_dropout
        self.batch_size = batch_size
        self.lr = lr
        self.ema_halflife_images = ema_halflife_images
        self.columns = columns
        self.coord_channels = coord_channels
        self.spatial_condition = spatial_condition
        self.recipe = recipe
        self.verbosity = verbosity

    # ------------------------------------------------------------------ configuration

    def get_params(self, deep: bool = True) -> dict:
        """The constructor arguments, as stored (scikit-learn's contract; JSON-able)."""
        return get_params(self)

    def set_params(self, **params):
        """Set constructor arguments (scikit-learn's contract); refit to apply them."""
        return set_params(self, params)

    def _condition_columns(self) -> list[str]:
        if self.condition is None:
            return []
        return [self.condition] if isinstance(self.condition, str) else list(self.condition)

    def _text_kind(self) -> str:
        """``"auto"`` resolved for generation: hashed n-grams beside MiniLM's sentence
        vector, since a prompt names what to draw in literal words (bench/RESULTS.md,
        'text_to_image_shapes'); the predictor's ``"auto"`` stays MiniLM alone."""
        if self.text_encoder != "auto":
            return self.text_encoder
        return "minilm+hashed" if minilm_available() else "hashed"

    def _recipe_arguments(self) -> dict:
        return {name: getattr(self, name) for name in RECIPE_ARGUMENTS}

    def _validate_params(self) -> None:
        """Check every argument once and report all problems in one ConfigError."""
        problems = []

        def is_int(v) -> bool:
            return isinstance(v, numbers.Integral) and not isinstance(v, bool)

        if not isinstance(self.image, str) or not self.image:
            problems.append(f"image={self.image!r} must be a column name (a non-empty string)")
        cond = self.condition
        if cond is not None and not isinstance(cond, str) and not (
                isinstance(cond, list | tuple) and all(isinstance(c, str) for c in cond)):
            problems.append(f"condition={cond!r} must be None, a column name or a list of them")
        elif len(set(self._condition_columns())) != len(self._condition_columns()):
            problems.append(f"condition={cond!r} names a column twice")
        elif self.image in self._condition_columns():
            problems.append(f"condition={cond!r} includes the image column {self.image!r} "
                            "itself; condition on other columns")
        if self.image_size is not None and (not is_int(self.image_size) or self.image_size < 8):
            problems.append(f"image_size={self.image_size!r} must be an integer >= 8, or None "
                            "to infer it")
        if self.image_channels not in (None, 1, 3):
            problems.append(f"image_channels={self.image_channels!r} must be 1, 3 or None")
        if not is_int(self.seed) or self.seed < 0:
            problems.append(f"seed={self.seed!r} must be an integer >= 0")
        if self.time_limit is not None and not (
                isinstance(self.time_limit, numbers.Real) and not isinstance(self.time_limit, bool)
                and np.isfinite(self.time_limit) and self.time_limit > 0):
            problems.append(f"time_limit={self.time_limit!r} must be a number of seconds > 0, "
                            "or None")
        if self.preset not in PRESETS:
            problems.append(f"preset={self.preset!r} must be one of {list(PRESETS)}")
        if self.text_encoder not in TEXT_KINDS:
            problems.append(f"text_encoder={self.text_encoder!r} must be one of {list(TEXT_KINDS)}")
        if self.columns is not None and not (
                isinstance(self.columns, dict)
                and all(isinstance(k, str) and isinstance(v, str)
                        for k, v in self.columns.items())):
            problems.append(f"columns={self.columns!r} must be a dict {{column: modality}}, e.g. "
                            "{'photo': 'image'}")
        if not is_int(self.verbosity) or self.verbosity < 0:
            problems.append(f"verbosity={self.verbosity!r} must be an integer >= 0")
        if self.recipe is not None and not isinstance(self.recipe, dict):
            problems.append(f"recipe={self.recipe!r} must be a dict of recipe fields, e.g. "
                            "{'network.base_channels': 24}")
        else:  # the arguments the recipe is made of, and its overrides
            problems += argument_problems(overrides=self.recipe, **self._recipe_arguments())
        if problems:
            raise ConfigError("Generator: " + "; ".join(problems))

    def _say(self, message: str) -> None:
        logger.info(message)
        if self.verbosity > 0:
            from rich.console import Console

            Console(stderr=True).print(message, highlight=False, soft_wrap=True)

    def _check_fitted(self) -> None:
        if not hasattr(self, "network_"):
            raise NotFittedError("this Generator is not fitted; call .fit(table) or "
                                 "Generator.load(folder) first")

    # ------------------------------------------------------------------ fit

    def fit(self, table, *, out_dir: str | os.PathLike | None = None,
            resume: bool = False, budget: TimeBudget | None = None) -> Generator:
        """Train on the images of ``table`` (a DataFrame or a path ``read_table`` reads).

        ``out_dir`` receives the training log, resumable checkpoints and sample grids
        (``samples/step_XXXXXX.png``, ``samples/latest.png``); ``resume=True`` continues
        an interrupted fit from its checkpoint there (same data and settings).
        ``budget``: the caller's clock for ``time_limit``, when the command started it
        before this fit (the CLI does, so that reading the table counts); by default the
        fit starts its own.
        """
        budget = budget or TimeBudget(self.time_limit)
        if budget.time_limit_s != self.time_limit:
            raise ConfigError(f"budget= counts to {budget.time_limit_s} s but time_limit="
                              f"{self.time_limit}; give the Generator the budget's limit")
        # 1. Check every argument at once, before any work; forget an earlier fit.
        self._validate_params()
        if resume and out_dir is None:
            raise ConfigError("resume=True needs out_dir=, the folder of the interrupted fit")
        for name in [k for k in vars(self) if k.endswith("_") and not k.startswith("_")]:
            delattr(self, name)  # a fit that fails leaves the generator unfitted, not half-old
        self._warned_null = set()
        # 2. Read the table; infer the modalities of the image and condition columns.
        df, schema = read_image_table(table, self.image, self._condition_columns(),
                                      columns=self.columns, seed=self.seed,
                                      condition_modalities=CONDITION_MODALITIES)
        # 3. Fit the transforms; decode every target image once, skipping unreadable ones.
        transform = TableTransform(schema, image_size=self.image_size,
                                   image_channels=self.image_channels,
                                   text_encoder=self._text_kind()).fit(df)
        dataset, rows = training_rows(df, transform, self.image)
        self._describe(schema, transform, rows, num_rows=len(df))
        # 4. Resolve the recipe for these images (saved with the model).
        self.recipe_ = resolve_generator(schema, len(dataset), self.image_shape_,
                                         image_column=self.image, overrides=self.recipe,
                                         **self._recipe_arguments())
        # 5. Build the network: a UNet sized by the recipe and the condition encoder.
        network = self._build_network()
        # 6. Train it with the shared loop, writing sample grids into out_dir as it goes.
        time_left = None if budget.time_limit_s is None else max(1.0, budget.left_s())
        config = generator_train_config(
            len(dataset), **asdict(self.recipe_.training), time_left_s=time_left,
            seed=self.seed, progress=self.verbosity > 0, precision=self._training_precision(),
            checkpoints=out_dir is not None)
        result = train_generator(network, dataset, config, out_dir=out_dir, resume=resume,
                                 write_grid=self._write_grid)
        # 7. Keep the trained network and what the run did; write the final grid.
        self._keep(network, result, out_dir, num_rows=len(df), num_images=len(dataset))
        return self

    def _describe(self, schema: Schema, transform: TableTransform, rows, num_rows: int) -> None:
        """Keep what the data says (schema, transform, image shape, conditions); report it."""
        if num_rows > len(rows):
            message = (f"{num_rows - len(rows)} of {num_rows} rows skipped: their "
                       f"{self.image!r} image is missing or unreadable")
            warnings.warn(message, UserWarning, stacklevel=3)
            self._say(f"[yellow]note:[/] {message}")
        self.schema_, self.transform_ = schema, transform
        self.image_shape_ = tuple(transform.image_shapes_[self.image])
        self.conditions_ = conditions_info(schema, transform, rows, self._condition_columns())
        self._grid = grid_conditions(rows, self.conditions_)
        channels, height, width = self.image_shape_
        described = ", ".join(f"{c} ({i['modality']})" for c, i in self.conditions_.items())
        self._say(f"[bold]{self.image}[/]: {len(rows):,} images, {width}x{height}, "
                  f"{channels} channel(s); conditions: {described or 'none'}")

    def _build_network(self) -> GeneratorNetwork:
        return build_network(self.transform_.feature_spec(), list(self.conditions_),
                             self.image_shape_, image_column=self.image, seed=self.seed,
                             condition_dropout=self.recipe_.condition.dropout,
                             **asdict(self.recipe_.network))

    def _training_precision(self) -> str:
        """bf16 where it pays for these images (bench/RESULTS.md, 'Ad-hoc probes'), else
        auto; sampling stays fp32."""
        return "bf16" if bf16_pays_for_images([self.image_shape_]) else "auto"

    def _keep(self, network: GeneratorNetwork, result, out_dir, *, num_rows: int,
              num_images: int) -> None:
        network.eval()
        self.network_ = network
        self.unet_, self.condition_encoder_ = network.unet, network.condition
        self.out_dir_ = None if out_dir is None else str(Path(out_dir).absolute())
        self.training_history_, self.train_result_ = run_summary(
            result, num_images=num_images, skipped_rows=num_rows - num_images,
            precision=self._training_precision())
        if result.stop_reason == "nan_loss":
            message = (f"training stopped at step {result.nan_step}: the loss (or its gradient) "
                       "became NaN/inf; the generator keeps the last good (EMA) weights. Try a "
                       "smaller batch_size or check the images")
            warnings.warn(message, UserWarning, stacklevel=3)
            self._say(f"[yellow]warning:[/] {message}")
        if out_dir is not None:
            self._write_grid(network, Path(out_dir), result.steps)
        self._say(f"trained {result.steps:,} steps ({result.epochs:g} epochs, "
                  f"{result.images_per_s:.0f} images/s), stopped by {result.stop_reason}")

    def _write_grid(self, network: GeneratorNetwork, folder: Path, step: int) -> None:
        write_sample_grid(network, folder, step, transform=self.transform_,
                          info=self.conditions_, grid=self._grid, image_shape=self.image_shape_,
                          sampling=asdict(self._sampling()))

    # ------------------------------------------------------------------ sample / edit

    def _sampling(self, num_steps=None, guidance=None, sampler=None) -> SamplingRecipe:
        """The sampling settings of a call: its arguments, else the generator's."""
        settings = sampling_recipe(sampler=self.sampler, num_steps=self.num_steps,
                                   guidance=self.guidance,
                                   guidance_interval=self.guidance_interval,
                                   overrides=self.recipe)
        given = {"num_steps": num_steps, "guidance": guidance, "sampler": sampler}
        settings = replace(settings, **{k: v for k, v in given.items() if v is not None})
        problems = sampling_problems(settings.guidance, settings.num_steps, settings.sampler,
                                     settings.guidance_interval)
        if problems:
            raise ConfigError("; ".join(problems))
        return replace(settings, num_steps=int(settings.num_steps),
                       guidance=float(settings.guidance))

    def _condition_vectors(self, n: int, conditions, prompts) -> torch.Tensor | None:
        """(n, D) condition vectors, or None for an unconditional generator."""
        frame, null = condition_frame(self.conditions_, n, conditions, prompts)
        if null and null not in self._warned_null:
            self._warned_null.add(null)
            warnings.warn(f"no value given for condition column(s) {list(null)}: sampling them "
                          "unconditionally (the null condition)", UserWarning, stacklevel=3)
        if self.condition_encoder_ is None:
            return None
        batch = condition_batch(frame, self.transform_, self.conditions_)
        device = next(self.network_.parameters()).device
        with torch.no_grad():
            return self.condition_encoder_(batch.to(device)).cpu()  # (n, D)

    def sample(self, n: int = 16, *, conditions: dict | None = None,
               prompts: list[str] | str | None = None, num_steps: int | None = None,
               guidance: float | None = None, sampler: str | None = None, seed: int = 0,
               batch_size: int = SAMPLE_BATCH_SIZE) -> np.ndarray:
        """``n`` new images as uint8 (n, H, W, C), the same for the same arguments and seed.

        ``conditions`` maps condition columns to one value or a list of values: ``n`` of
        them, or ``k`` dividing ``n``, each then used for ``n/k`` consecutive images
        (``conditions={"label": [3, 7]}`` with n=16 gives eight 3s, then eight 7s).
        ``prompts`` gives the texts of the (single) text condition column, the same way.
        Columns not given are sampled unconditionally (the null condition).
        ``guidance`` 1 is plain conditional sampling.
        """
        self._check_fitted()
        _check_count("n", n)
        _check_count("batch_size", batch_size)
        _check_seed(seed)
        settings = self._sampling(num_steps, guidance, sampler)
        cond = self._condition_vectors(n, conditions, prompts)
        noise = torch.randn(n, *self.image_shape_, generator=torch.Generator().manual_seed(seed))
        x = integrate(self.unet_, cond, noise, batch_size=batch_size, **asdict(settings))
        return tensor_to_uint8(x)  # (n, H, W, C)

    def edit(self, images, *, strength: float = 0.5, conditions: dict | None = None,
             prompts: list[str] | str | None = None, mask=None, num_steps: int | None = None,
             guidance: float | None = None, seed: int = 0) -> np.ndarray:
        """Edit ``images`` (uint8 arrays, PIL images or paths; one or a list) -> uint8 (N, H, W, C).

        Without ``mask``: SDEdit -- noise each image to ``strength`` (0 keeps it, 1 redraws
        it) and sample back under the conditions. With ``mask`` ((H, W) or (N, H, W),
        True/255 = keep the pixel): inpaint the other pixels, keeping the known ones exactly.
        Images of another size or channel count are converted (with a warning).
        """
        self._check_fitted()
        _check_seed(seed)
        _check_strength(strength, " (0 returns the input, 1 redraws it completely)")
        s = self._sampling(num_steps, guidance)
        x = self._images_tensor(images)  # (N, C, H, W)
        keep = None if mask is None else keep_mask(mask, x.shape[0], self.image_shape_)
        if strength == 0:
            return tensor_to_uint8(x)
        velocity = self._velocity_fn(self._condition_vectors(x.shape[0], conditions, prompts), s)
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            if keep is not None:
                out = inpaint_sample(velocity, x, keep, num_steps=s.num_steps, method=s.sampler,
                                     shift=s.shift, generator=generator)
            else:
                out = edit_sample(velocity, x, strength=float(strength), num_steps=s.num_steps,
                                  method=s.sampler, shift=s.shift, generator=generator)
        return tensor_to_uint8(out.cpu())

    def variations(self, image, n: int = 8, strength: float = 0.6, seed: int = 0, *,
                   conditions: dict | None = None, prompts: list[str] | str | None = None,
                   num_steps: int | None = None, guidance: float | None = None) -> np.ndarray:
        """``n`` variations of one image (SDEdit with independent noise) -> uint8 (n, H, W, C)."""
        self._check_fitted()
        _check_count("n", n)
        _check_seed(seed)
        _check_strength(strength, "; 0.6 is typical")
        s = self._sampling(num_steps, guidance)
        x = self._images_tensor(image)
        if x.shape[0] != 1:
            raise DataError(f"variations takes one image, got {x.shape[0]}; call it per image")
        velocity = self._velocity_fn(self._condition_vectors(n, conditions, prompts), s)
        with torch.no_grad():
            out = variation_sample(velocity, x, num_variations=n, strength=float(strength),
                                   num_steps=s.num_steps, method=s.sampler, shift=s.shift,
                                   generator=torch.Generator().manual_seed(seed))
        return tensor_to_uint8(out.cpu())

    def _velocity_fn(self, cond: torch.Tensor | None, settings: SamplingRecipe):
        return velocity_fn(self.unet_, cond, guidance=settings.guidance,
                           guidance_interval=settings.guidance_interval)

    def _images_tensor(self, images) -> torch.Tensor:
        x, converted = edit_images(images, self.transform_, self.image, self.image_shape_)
        if converted:
            channels, height, width = self.image_shape_
            warnings.warn(f"{', '.join(converted)} converted to the model's {width}x{height}, "
                          f"{channels} channel(s)", UserWarning, stacklevel=3)
        return x

    # ------------------------------------------------------------------ save / load

    def config_dict(self) -> dict:
        """The resolved configuration saved as ``config.json`` (JSON-able)."""
        self._check_fitted()
        return {
            "format_version": FORMAT_VERSION, "kind": "generator", "params": self.get_params(),
            "recipe": to_dict(self.recipe_), "image_column": self.image,
            "condition_columns": list(self.conditions_), "image_shape": list(self.image_shape_),
            "network": network_config(self.network_), "conditions": self.conditions_,
            "grid": self._grid, "training": self.train_result_,
        }

    def save(self, directory: str | os.PathLike) -> Path:
        """Write the generator to ``directory`` atomically; ``Generator.load`` reads it back.

        An existing folder is replaced only if it is a polymodal model folder or the
        generator's own ``fit(out_dir=...)`` folder, whose log, grids and checkpoint move in.
        """
        self._check_fitted()
        return write_generator(self, directory)

    @classmethod
    def load(cls, directory: str | os.PathLike) -> Generator:
        """Rebuild a generator saved by :meth:`save`; it samples exactly the same images."""
        return read_generator(cls, directory)

    def __repr__(self) -> str:
        state = "fitted" if hasattr(self, "network_") else "not fitted"
        return (f"Generator(image={self.image!r}, condition={self._condition_columns()}, "
                f"{state})")


def _check_count(name: str, value) -> None:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"{name}={value!r} must be an integer >= 1")


def _check_seed(seed) -> None:
    if not isinstance(seed, numbers.Integral) or isinstance(seed, bool) or seed < 0:
        raise ConfigError(f"seed={seed!r} must be an integer >= 0")


def _check_strength(strength, hint: str) -> None:
    if not (isinstance(strength, numbers.Real) and 0.0 <= strength <= 1.0):
        raise ConfigError(f"strength={strength!r} must be in [0, 1]{hint}")
