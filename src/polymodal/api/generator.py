"""``Generator``: a conditional image generator trained from one table, on a CPU budget.

The scikit-learn pattern (see :mod:`polymodal.api.predictor`): ``__init__`` stores its
arguments unchanged, ``fit`` returns ``self``, learned state ends in ``_``, and using an
unfitted generator raises :class:`~polymodal.errors.NotFittedError`.

``fit`` does, in order:

1. read the table and infer the modality of the image column and of each condition
   column (``columns`` overrides it), refusing an image column that is not one;
2. fit the transforms (image size and channels, category vocabularies, text embedder)
   and decode every target image once, skipping (and reporting) unreadable ones;
3. build the network -- a :class:`~polymodal.models.unet.UNet` sized for the images and
   a :class:`~polymodal.models.condition.ConditionEncoder` whose vector is added to the
   UNet's time embedding;
4. train with the shared :class:`~polymodal.train.Trainer`: rectified-flow loss
   (:mod:`polymodal.models.flow`), whole-condition dropout for classifier-free guidance,
   EMA by half-life in images, a time limit, and (with ``out_dir``) resumable checkpoints
   and a sample grid at intervals in ``out_dir/samples/``.

``sample``/``edit``/``variations`` integrate the flow with the samplers of
:mod:`polymodal.models.samplers` (conditional and unconditional passes batched together),
deterministically for a seed.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import numbers
import os
import shutil
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn
from torch.utils.data import Dataset

from polymodal.api.model_folder import (
    check_folder,
    is_model_folder,
    write_folder_atomically,
)
from polymodal.api.params import get_params, set_params
from polymodal.data.batch import Batch
from polymodal.data.dataset import TableDataset, collate
from polymodal.data.media import load_image
from polymodal.data.readers import read_table
from polymodal.data.schema import Schema, infer_schema
from polymodal.data.text import TEXT_KINDS, minilm_available
from polymodal.data.transforms import (
    UNKNOWN_INDEX,
    EncodedTable,
    TableTransform,
    tensor_to_uint8,
)
from polymodal.errors import (
    ConfigError,
    DataError,
    ModelFolderError,
    NotFittedError,
    SchemaError,
)
from polymodal.evaluate.images import make_grid, save_png
from polymodal.files import atomic_path, write_json, write_text
from polymodal.models.condition import CONDITION_MODALITIES, ConditionEncoder, condition_spec
from polymodal.models.flow import drop_conditions, rectified_flow_loss
from polymodal.models.samplers import (
    DEFAULT_GUIDANCE_INTERVAL,
    DEFAULT_SHIFT,
    edit_sample,
    euler_sample,
    guided_velocity,
    heun_sample,
    inpaint_sample,
    variation_sample,
)
from polymodal.models.unet import UNet
from polymodal.train import Callback, TrainConfig, Trainer, TrainState
from polymodal.train.config import bf16_pays_for_images

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
WEIGHTS_FILE = "weights.safetensors"
REQUIRED_FILES = ("config.json", "schema.json", "transform/transform.json", WEIGHTS_FILE,
                  "versions.json")

# Sampling defaults: Heun 8 with guidance 3 on t in (0.3, 0.8) (the samplers'
# DEFAULT_GUIDANCE_INTERVAL) was chosen by the sampler sweep on the fully trained 15-minute
# Fashion-MNIST model, where it kept class accuracy above 0.95 with a margin at a lower FD
# and a faster sampling than the earlier defaults; see bench/RESULTS.md,
# 'generator_sampling_sweep'.
DEFAULT_SAMPLER = "heun"
LEGACY_GUIDANCE_INTERVAL = (0.3, 1.0)  # folders saved before the interval was a parameter
DEFAULT_NUM_STEPS = 8
DEFAULT_GUIDANCE = 3.0
# Training defaults from the reference loop of bench/generator_core_probe.py: batch 64 beat
# 128 per CPU-minute (more optimiser steps), AdamW with warm-up + cosine, EMA half-life 5,000
# images. The peak learning rate is 3e-3, not the reference's 1e-3: the condition is what a
# short run learns last, and a higher rate learns it sooner (chosen on 5-minute
# Fashion-MNIST fits, 3e-3 being the safer of the two best rates; see bench/RESULTS.md,
# 'generator_fashion').
DEFAULT_BATCH_SIZE = 64
DEFAULT_EMA_HALFLIFE_IMAGES = 5_000.0
WEIGHT_DECAY = 0.0  # as in the measured reference (bench/generator_core_probe.py)

SAMPLERS = {"euler": euler_sample, "heun": heun_sample}
# Images per sampler chunk (twice that many network rows with guidance): 64 samples as fast
# per image as 256 on 2 CPU cores and keeps the activations' peak lower, which is what holds
# a fit + sample under 1 GiB (see bench/RESULTS.md, 'Ad-hoc probes').
SAMPLE_BATCH_SIZE = 64
GUIDANCE_RANGE = (0.0, 20.0)
NUM_STEPS_RANGE = (1, 1000)
MIN_TRAIN_IMAGES = 16
EVAL_ROWS = 256  # rows of the fixed validation loss the loop evaluates
GRID_EVERY_S = 30.0  # at most one sample grid per this many seconds of training
GRID_PER_ROW = 8
GRID_MAX_ROWS = 10

# "fast" fits a 2-core CPU in a minute or two without a time limit; "best" trains longer
# with two residual blocks per level (capacity that pays off only with the time to use it;
# its learning rate was not re-measured when "fast" moved to 3e-3).
PRESETS: dict[str, dict] = {
    "fast": {"lr": 3e-3, "max_epochs": 20, "cond_dim": 64, "unet": {}},
    "best": {"lr": 1e-3, "max_epochs": 100, "cond_dim": 128, "unet": {"num_res_blocks": 2}},
}


# ----------------------------------------------------------------------------- network


class _GeneratorNetwork(nn.Module):
    """UNet + condition encoder; ``forward(batch)`` is the training loss.

    The loss is the forward pass so that under ``torchrun`` the DDP wrapper sees the whole
    step (see :class:`polymodal.train.Trainer`). ``condition_vector(batch)`` is the
    condition vector (B, D), or None for an unconditional generator.
    """

    def __init__(self, unet: UNet, condition: ConditionEncoder | None, *, image_column: str,
                 condition_dropout: float):
        super().__init__()
        self.unet = unet
        self.condition = condition
        self.image_column = image_column
        self.condition_dropout = condition_dropout

    def condition_vector(self, batch: Batch) -> torch.Tensor | None:
        if self.condition is None:
            return None
        # Hiding single columns (multi-column models) teaches sampling with some left out.
        return self.condition(batch, column_dropout=self.condition_dropout)  # (B, D)

    def forward(self, batch: Batch) -> torch.Tensor:
        x0 = batch.image[self.image_column]  # (B, C, H, W) in [-1, 1]
        cond = self.condition_vector(batch)
        if cond is not None and self.training:
            # Whole-vector dropout to the null (zero) condition: classifier-free guidance.
            cond, _ = drop_conditions(cond, self.condition_dropout)
        return rectified_flow_loss(self.unet, x0, cond=cond)


def _integrate(unet: UNet, cond: torch.Tensor | None, noise: torch.Tensor, *, num_steps: int,
               guidance: float, sampler: str, batch_size: int,
               guidance_interval: tuple[float, float]) -> torch.Tensor:
    """Images (N, C, H, W) from ``noise`` at t = 1, in chunks of ``batch_size``."""
    device = next(unet.parameters()).device
    out = []
    for start in range(0, noise.shape[0], batch_size):
        chunk = noise[start:start + batch_size].to(device)
        c = None if cond is None else cond[start:start + batch_size].to(device)
        velocity_fn = functools.partial(guided_velocity, unet, cond=c,
                                        guidance=guidance if c is not None else 1.0,
                                        guidance_interval=guidance_interval)
        out.append(SAMPLERS[sampler](velocity_fn, chunk, num_steps=num_steps,
                                     shift=DEFAULT_SHIFT).cpu())
    return torch.cat(out)


# ---------------------------------------------------------------------------- data


class _TrainingRows(Dataset):
    """Rows for the generator's training loop: items are row positions; ``collate`` builds
    the :class:`Batch` by slicing pre-decoded arrays (far cheaper than per-row dicts).

    ``images``: (N, C, H, W) uint8, the target images decoded once; ``encoded``: the
    condition columns of the same rows.
    """

    def __init__(self, images: torch.Tensor, encoded: EncodedTable, transform: TableTransform,
                 image_column: str):
        self.images = images
        self.encoded = encoded
        self.transform = transform
        self.image_column = image_column

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, index: int) -> int:
        return int(index)

    def collate(self, indices: list[int]) -> Batch:
        enc, idx = self.encoded, np.asarray(indices, dtype=np.int64)
        x0 = self.images[torch.from_numpy(idx)].float().div_(127.5).sub_(1.0)  # (B, C, H, W)

        def rows(values: np.ndarray | None) -> torch.Tensor | None:
            return None if values is None else torch.from_numpy(values[idx])

        image = {self.image_column: x0}
        mask = {c: torch.from_numpy(m[idx]) for c, m in enc.mask.items()}
        for col, cells in enc.image.items():  # image *conditions*, decoded per row
            if col != self.image_column:
                decoded = [self.transform.image_tensor(cells[i], enc.base_dir, column=col)
                           for i in idx]
                image[col] = torch.stack([x for x, _ in decoded])  # (B, C', H', W')
                # Only now is it known whether the cell decodes.
                mask[col] = torch.tensor([present for _, present in decoded])
        return Batch(index=torch.from_numpy(idx), numeric=rows(enc.numeric),
                     categorical=rows(enc.categorical), multilabel=rows(enc.multilabel),
                     text={c: torch.from_numpy(v[idx]) for c, v in enc.text.items()},
                     image=image, mask=mask)


def _decode_images(transform: TableTransform, df: pd.DataFrame, column: str
                   ) -> tuple[torch.Tensor, np.ndarray]:
    """Every image of ``column`` as uint8 (N_ok, C, H, W), and the (N,) mask of decoded rows.

    uint8 is a quarter of float32's memory (47 MB for Fashion-MNIST's 60,000 images) and
    exact: the transform made its floats as uint8 pixels / 127.5 - 1.
    """
    base_dir = df.attrs.get("base_dir")
    images = torch.empty(len(df), *transform.image_shapes_[column], dtype=torch.uint8)
    ok = np.zeros(len(df), dtype=bool)
    for i, cell in enumerate(df[column].to_numpy(dtype=object)):
        x, present = transform.image_tensor(cell, base_dir, column=column)  # (C, H, W)
        if present:
            ok[i] = True
            images[i] = x.add(1.0).mul_(127.5).round_().to(torch.uint8)
    return images[torch.from_numpy(ok)] if not ok.all() else images, ok


def _sorted_classes(values: list[str]) -> list[str]:
    """Category strings in numeric order when they are all numbers, else alphabetical."""
    try:
        return sorted(values, key=float)
    except ValueError:
        return sorted(values)


# ------------------------------------------------------------------------- callbacks


class _SampleGrids(Callback):
    """Writes ``out_dir/samples/step_XXXXXX.png`` and ``latest.png`` every ``every_s`` or so.

    The first grid is due ``every_s`` after training starts (a grid of the untrained
    network shows nothing and costs a short run much of its budget); ``fit`` writes the
    final one.
    """

    def __init__(self, generator: Generator, every_s: float):
        self.generator = generator
        self.every_s = every_s
        self.last_write = time.perf_counter()

    def on_eval(self, state: TrainState, model: nn.Module) -> None:
        if state.out_dir is None or not state.is_main:
            return
        if time.perf_counter() - self.last_write < self.every_s:
            return
        self.generator._write_grid(model, Path(state.out_dir), state.step)
        self.last_write = time.perf_counter()


# ------------------------------------------------------------------------- generator


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
        preset: ``"fast"`` or ``"best"`` (see ``PRESETS``).
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
        coord_channels: give the UNet two pixel-coordinate input channels. Off by
            default: on caption-conditioned ``shapes`` they did not improve position and
            cost nothing measurable (bench/RESULTS.md, 'text_to_image_shapes').
        spatial_condition: let the condition add a learned coarse map to the UNet's
            bottleneck (see :class:`~polymodal.models.unet.UNet`), so it can say where
            things go; ignored by an unconditional generator. On ``shapes`` conditioned
            on shape, colour, size and position columns it took position from chance to
            always right (see bench/RESULTS.md, 'text_to_image_shapes'). A caption-only
            generator places shapes too when its text encoder gives it the words (the
            default; see ``text_encoder``), not with MiniLM's sentence vector alone.
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
        condition_dropout: float = 0.1,
        batch_size: int = DEFAULT_BATCH_SIZE,
        lr: float | None = None,
        ema_halflife_images: float | None = DEFAULT_EMA_HALFLIFE_IMAGES,
        columns: dict[str, str] | None = None,
        coord_channels: bool = False,
        spatial_condition: bool = True,
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
        """The text encoder ``fit`` uses: ``"auto"`` resolved for generation.

        A prompt names what to draw in literal words ("a small red circle at the top
        left"), and the condition network must read each one in a short fit. On ``shapes``
        hashed n-grams beside MiniLM's sentence vector placed shapes far more often than
        MiniLM alone and were the most robust to new words (bench/RESULTS.md,
        'text_to_image_shapes'). The predictor's ``"auto"`` stays MiniLM alone.
        """
        if self.text_encoder != "auto":
            return self.text_encoder
        return "minilm+hashed" if minilm_available() else "hashed"

    def _validate_params(self) -> None:
        """Check every argument once and report all problems in one ConfigError."""
        problems = []

        def is_int(v) -> bool:
            return isinstance(v, numbers.Integral) and not isinstance(v, bool)

        def is_num(v) -> bool:
            return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)

        if not isinstance(self.image, str) or not self.image:
            problems.append(f"image={self.image!r} must be a column name (a non-empty string)")
        cond = self.condition
        if cond is not None and not isinstance(cond, str) and not (
                isinstance(cond, list | tuple) and all(isinstance(c, str) for c in cond)):
            problems.append(f"condition={cond!r} must be None, a column name or a list of them")
        else:
            names = self._condition_columns()
            if len(set(names)) != len(names):
                problems.append(f"condition={cond!r} names a column twice")
            if self.image in names:
                problems.append(f"condition={cond!r} includes the image column {self.image!r} "
                                "itself; condition on other columns")
        if self.image_size is not None and (not is_int(self.image_size) or self.image_size < 8):
            problems.append(f"image_size={self.image_size!r} must be an integer >= 8, or None "
                            "to infer it")
        if self.image_channels not in (None, 1, 3):
            problems.append(f"image_channels={self.image_channels!r} must be 1, 3 or None")
        if not is_int(self.seed) or self.seed < 0:
            problems.append(f"seed={self.seed!r} must be an integer >= 0")
        if self.time_limit is not None and not (is_num(self.time_limit) and self.time_limit > 0):
            problems.append(f"time_limit={self.time_limit!r} must be a number of seconds > 0, "
                            "or None")
        if self.preset not in PRESETS:
            problems.append(f"preset={self.preset!r} must be one of {list(PRESETS)}")
        if self.text_encoder not in TEXT_KINDS:
            problems.append(f"text_encoder={self.text_encoder!r} must be one of {list(TEXT_KINDS)}")
        problems += _sampling_problems(self.guidance, self.num_steps, self.sampler)
        interval = self.guidance_interval
        if not (isinstance(interval, list | tuple) and len(interval) == 2
                and all(is_num(v) for v in interval) and 0 <= interval[0] < interval[1] <= 1):
            problems.append(f"guidance_interval={interval!r} must be (lo, hi) with "
                            f"0 <= lo < hi <= 1, the times t where guidance applies; default "
                            f"{DEFAULT_GUIDANCE_INTERVAL}")
        if not (is_num(self.condition_dropout) and 0 <= self.condition_dropout < 1):
            problems.append(f"condition_dropout={self.condition_dropout!r} must be in [0, 1); "
                            "0.1 is typical")
        if not is_int(self.batch_size) or self.batch_size < 1:
            problems.append(f"batch_size={self.batch_size!r} must be an integer >= 1")
        if self.lr is not None and not (is_num(self.lr) and 0 < self.lr <= 1):
            problems.append(f"lr={self.lr!r} must be a learning rate in (0, 1], or None for "
                            f"the preset's ({PRESETS['fast']['lr']:g} for 'fast')")
        if self.ema_halflife_images is not None and not (
                is_num(self.ema_halflife_images) and self.ema_halflife_images > 0):
            problems.append(f"ema_halflife_images={self.ema_halflife_images!r} must be a number "
                            "of images > 0, or None for no EMA")
        if self.columns is not None and not (
                isinstance(self.columns, dict)
                and all(isinstance(k, str) and isinstance(v, str)
                        for k, v in self.columns.items())):
            problems.append(f"columns={self.columns!r} must be a dict {{column: modality}}, e.g. "
                            "{'photo': 'image'}")
        if not is_int(self.verbosity) or self.verbosity < 0:
            problems.append(f"verbosity={self.verbosity!r} must be an integer >= 0")
        if not isinstance(self.coord_channels, bool):
            problems.append(f"coord_channels={self.coord_channels!r} must be True or False")
        if not isinstance(self.spatial_condition, bool):
            problems.append(f"spatial_condition={self.spatial_condition!r} must be True or False")
        if problems:
            raise ConfigError("Generator: " + "; ".join(problems))

    def _training_precision(self) -> str:
        """The training loop's precision: bf16 where it pays for these images, else auto."""
        return "bf16" if bf16_pays_for_images([self.image_shape_]) else "auto"

    def _resolved_lr(self) -> float:
        """The peak learning rate training uses: ``lr``, else the preset's."""
        return float(PRESETS[self.preset]["lr"] if self.lr is None else self.lr)

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
            resume: bool = False) -> Generator:
        """Train on the images of ``table`` (a DataFrame or a path ``read_table`` reads).

        ``out_dir`` receives the training log, resumable checkpoints and sample grids
        (``samples/step_XXXXXX.png``, ``samples/latest.png``); ``resume=True`` continues
        an interrupted fit from its checkpoint there (same data and settings).
        """
        start = time.perf_counter()
        self._validate_params()
        if resume and out_dir is None:
            raise ConfigError("resume=True needs out_dir=, the folder of the interrupted fit")
        for name in [k for k in vars(self) if k.endswith("_") and not k.startswith("_")]:
            delattr(self, name)  # a fit that fails leaves the generator unfitted, not half-old
        self._warned_null = set()

        # 1. Read the table; infer the modalities of the image and condition columns.
        df, schema = self._read(table)
        # 2. Transforms; decode every target image once, skipping unreadable ones.
        transform = TableTransform(schema, image_size=self.image_size,
                                   image_channels=self.image_channels,
                                   text_encoder=self._text_kind()).fit(df)
        dataset, rows = self._training_rows(df, transform)
        self.schema_, self.transform_ = schema, transform
        self.image_shape_ = tuple(transform.image_shapes_[self.image])
        self.conditions_ = self._conditions_info(schema, transform, rows)
        self._grid = self._grid_conditions(rows, self.conditions_)
        channels, height, width = self.image_shape_
        described = ", ".join(f"{c} ({i['modality']})" for c, i in self.conditions_.items())
        self._say(f"[bold]{self.image}[/]: {len(dataset):,} images, {width}x{height}, "
                  f"{channels} channel(s); conditions: {described or 'none'}")
        # 3. The network, then 4. training with the shared loop.
        network = self._build_network(transform)
        time_left = (None if self.time_limit is None
                     else max(1.0, self.time_limit - (time.perf_counter() - start)))
        result = self._train(network, dataset, out_dir=out_dir, resume=resume,
                             time_left_s=time_left)

        network.eval()
        self.network_ = network
        self.unet_, self.condition_encoder_ = network.unet, network.condition
        self.out_dir_ = None if out_dir is None else str(Path(out_dir).absolute())
        self.training_history_ = [*result.history, {
            "event": "end", "stop_reason": result.stop_reason, "step": result.steps,
            "nan_step": result.nan_step, "images_per_s": result.images_per_s,
            "wall_s": result.wall_s}]
        self.train_result_ = {
            "stop_reason": result.stop_reason, "steps": result.steps, "epochs": result.epochs,
            "images_seen": result.images_seen, "images_per_s": round(result.images_per_s, 2),
            "wall_s": round(result.wall_s, 2), "nan_step": result.nan_step,
            "num_images": len(dataset), "skipped_rows": len(df) - len(dataset),
            "precision": self._training_precision()}  # of this fit, on this machine
        if result.stop_reason == "nan_loss":
            message = (f"training stopped at step {result.nan_step}: the loss (or its gradient) "
                       "became NaN/inf; the generator keeps the last good (EMA) weights. Try a "
                       "smaller batch_size or check the images")
            warnings.warn(message, UserWarning, stacklevel=2)
            self._say(f"[yellow]warning:[/] {message}")
        if out_dir is not None:
            self._write_grid(network, Path(out_dir), result.steps)
        self._say(f"trained {result.steps:,} steps ({result.epochs:g} epochs, "
                  f"{result.images_per_s:.0f} images/s), stopped by {result.stop_reason}")
        return self

    def _read(self, table) -> tuple[pd.DataFrame, Schema]:
        """The image and condition columns of the table, and their schema."""
        conditions = self._condition_columns()
        df = read_table(table)
        missing = [c for c in [self.image, *conditions] if c not in df.columns]
        if missing:
            raise SchemaError(f"column(s) {missing} are not in the table; its columns are "
                              f"{list(df.columns)[:30]}. Pass image=... and condition=[...] "
                              "with names from it")
        attrs = dict(df.attrs)
        df = df[[self.image, *conditions]].reset_index(drop=True)
        df.attrs = attrs  # base_dir: where relative image paths resolve
        overrides = {k: v for k, v in (self.columns or {}).items() if k in df.columns}
        schema = infer_schema(df, overrides=overrides, seed=self.seed)
        column = schema.columns[self.image]
        if column.modality != "image":
            raise SchemaError(
                f"image column {self.image!r} is {column.modality} ({column.reason}), not an "
                f"image; pass the image column as image=..., or override it with "
                f"columns={{{self.image!r}: 'image'}} if its cells are images")
        for c in conditions:
            col = schema.columns[c]
            if col.modality not in CONDITION_MODALITIES:
                raise SchemaError(
                    f"condition column {c!r} is {col.modality} ({col.reason}); a generator can "
                    f"be conditioned on {', '.join(CONDITION_MODALITIES)} columns. Override it "
                    f"with columns={{{c!r}: 'categorical'}} (or another modality) or leave it out")
        return df, schema

    def _training_rows(self, df: pd.DataFrame, transform: TableTransform
                       ) -> tuple[_TrainingRows, pd.DataFrame]:
        """The rows whose image decodes, as a dataset and as a table (others reported)."""
        images, ok = _decode_images(transform, df, self.image)
        num_ok, num_skipped = int(ok.sum()), int((~ok).sum())
        if num_ok < MIN_TRAIN_IMAGES:
            raise DataError(
                f"image column {self.image!r} has {num_ok} usable image(s) ({num_skipped} of "
                f"{len(df)} rows missing or unreadable); training needs at least "
                f"{MIN_TRAIN_IMAGES}. Add images or fix the unreadable files")
        if num_skipped:
            message = (f"{num_skipped} of {len(df)} rows skipped: their {self.image!r} image is "
                       "missing or unreadable")
            warnings.warn(message, UserWarning, stacklevel=3)
            self._say(f"[yellow]note:[/] {message}")
        rows = df.iloc[np.flatnonzero(ok)].reset_index(drop=True)
        rows.attrs = dict(df.attrs)
        encoded = transform.encode(rows, with_label=False)
        return _TrainingRows(images, encoded, transform, self.image), rows

    def _build_network(self, transform: TableTransform) -> _GeneratorNetwork:
        """UNet + condition encoder; the weights depend on the seed only (the caller's RNG
        is left as it was)."""
        preset = PRESETS[self.preset]
        channels, height, _ = self.image_shape_
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            encoder = None
            if self.conditions_:
                spec = condition_spec(transform.feature_spec(), list(self.conditions_))
                encoder = ConditionEncoder(spec, out_dim=preset["cond_dim"])
            unet = UNet.sized_for(height, channels, cond_dim=encoder.out_dim if encoder else 0,
                                  coord_channels=self.coord_channels,
                                  spatial_condition=self.spatial_condition and encoder is not None,
                                  **preset["unet"])
        return _GeneratorNetwork(unet, encoder, image_column=self.image,
                                 condition_dropout=self.condition_dropout)

    def _train(self, network: _GeneratorNetwork, dataset: _TrainingRows, *,
               out_dir: str | os.PathLike | None, resume: bool, time_left_s: float | None):
        """Train ``network`` in place with the shared loop; returns its ``TrainResult``."""
        preset = PRESETS[self.preset]
        steps_per_epoch = math.ceil(len(dataset) / self.batch_size)
        config = TrainConfig(
            batch_size=self.batch_size, lr=self._resolved_lr(),
            weight_decay=WEIGHT_DECAY,
            warmup_steps=min(50, max(1, steps_per_epoch * preset["max_epochs"] // 20)),
            max_epochs=None if time_left_s is not None else preset["max_epochs"],
            time_limit_s=time_left_s, ema_halflife_images=self.ema_halflife_images,
            # Evaluations are cheap (one fixed batch) and drive the sample grids.
            eval_every_steps=min(steps_per_epoch, 200),
            checkpoint_every_s=60.0 if out_dir is not None else None, seed=self.seed,
            progress=self.verbosity > 0,
            # bf16 autocast where AMX tiles run it and images are large enough: it trained
            # faster at an equal or lower validation loss (see bench/RESULTS.md,
            # 'Ad-hoc probes'); sampling stays fp32.
            precision=self._training_precision(),
            restore_best_weights=False)  # the EMA weights, not the noisiest-best snapshot
        eval_rows = dataset.collate(list(range(min(EVAL_ROWS, len(dataset)))))

        def validation_loss(model: nn.Module) -> dict[str, float]:
            # Fixed rows, times and noise, so evaluations compare across steps.
            device = next(model.parameters()).device
            batch = eval_rows.to(device)
            loss = rectified_flow_loss(model.unet, batch.image[self.image],
                                       cond=model.condition_vector(batch),
                                       generator=torch.Generator(device).manual_seed(0))
            return {"val_loss": float(loss)}

        callbacks = [_SampleGrids(self, GRID_EVERY_S)] if out_dir is not None else []
        return Trainer(config, out_dir=out_dir).fit(
            network, dataset, collate_fn=dataset.collate,
            loss_fn=lambda model, batch: model(batch), eval_fn=validation_loss,
            metric_name="val_loss", resume=resume, callbacks=callbacks)

    def _conditions_info(self, schema: Schema, transform: TableTransform,
                         rows: pd.DataFrame) -> dict:
        """What a caller needs to ask for a condition: modality, classes, ranges."""
        info: dict[str, dict] = {}
        for c in self._condition_columns():
            modality = schema.modality(c)
            entry: dict = {"modality": modality}
            if modality == "categorical":
                entry["classes"] = _sorted_classes(list(transform.vocab_[c]))
            elif modality == "numeric":
                values = pd.to_numeric(rows[c], errors="coerce").dropna()
                if len(values):
                    entry.update(min=float(values.min()), max=float(values.max()),
                                 mean=float(values.mean()))
            elif modality == "multilabel":
                entry["tags"] = list(transform.tag_vocab_[c]["tags"])
            elif modality == "text":
                entry["text_encoder"] = transform.text_embedder_.kind
            elif modality == "image":
                entry["shape"] = list(transform.image_shapes_[c])
            info[c] = entry
        return info

    @staticmethod
    def _grid_conditions(rows: pd.DataFrame, info: dict) -> dict:
        """The data rows whose conditions the progress grids show when no condition is
        categorical (JSON-able; image conditions are left out of grids)."""
        columns = [c for c, i in info.items() if i["modality"] != "image"]
        head = rows[columns].head(GRID_MAX_ROWS // 2)
        return {"rows": {c: [_jsonable(v) for v in head[c]] for c in columns}}

    # ------------------------------------------------------------------ grids

    def _grid_frame(self) -> tuple[pd.DataFrame | None, list[str], int]:
        """(condition table, row labels, rows) for a progress grid: one row per class of
        the first categorical condition, else a few training rows' conditions."""
        categorical = [c for c, i in self.conditions_.items() if i["modality"] == "categorical"]
        frame, labels = None, []
        if categorical:
            c = categorical[0]
            classes = self.conditions_[c]["classes"][:GRID_MAX_ROWS]
            frame = pd.DataFrame({c: np.repeat(np.array(classes, dtype=object), GRID_PER_ROW)})
            labels = [f"{c}={v}" for v in classes]
        elif self._grid["rows"] and len(next(iter(self._grid["rows"].values()))):
            data = pd.DataFrame(self._grid["rows"], dtype=object)
            frame = data.loc[data.index.repeat(GRID_PER_ROW)].reset_index(drop=True)
            labels = [f"row {i}" for i in range(len(data))]
        if frame is None:
            return None, [], GRID_PER_ROW
        for c in self.conditions_:
            if c not in frame:
                frame[c] = None  # not shown: the null condition
        frame.attrs["base_dir"] = os.getcwd()
        return frame, labels, len(labels)

    def _write_grid(self, network: nn.Module, out_dir: Path, step: int) -> None:
        """Sample a fixed grid with ``network`` into ``out_dir/samples/``."""
        frame, labels, num_rows = self._grid_frame()
        n = num_rows * GRID_PER_ROW
        cond = None
        if frame is not None:
            batch = self._condition_batch(frame)
            with torch.no_grad():
                cond = network.condition(batch.to(next(network.parameters()).device))
        noise = torch.randn(n, *self.image_shape_, generator=torch.Generator().manual_seed(0))
        was_training = network.training
        network.eval()
        try:
            x = _integrate(network.unet, cond, noise, num_steps=self.num_steps,
                           guidance=self.guidance, sampler=self.sampler,
                           batch_size=SAMPLE_BATCH_SIZE,
                           guidance_interval=self.guidance_interval)
        finally:
            network.train(was_training)
        scale = max(1, 64 // self.image_shape_[1])
        grid = make_grid(tensor_to_uint8(x), ncols=GRID_PER_ROW, scale=scale,
                         row_labels=labels or None)
        samples = out_dir / "samples"
        save_png(grid, samples / f"step_{step:06d}.png")
        save_png(grid, samples / "latest.png")

    # ------------------------------------------------------------------ conditions

    def _condition_frame(self, n: int, conditions: dict | None, prompts) -> pd.DataFrame:
        """A table of ``n`` rows holding the requested condition values (None = null)."""
        known = list(self.conditions_)
        if conditions is not None and not isinstance(conditions, dict):
            raise ConfigError(f"conditions={conditions!r} must be a dict {{column: value or "
                              "list of n values}}")
        conditions = dict(conditions or {})
        if (conditions or prompts is not None) and not known:
            raise ConfigError("this generator is unconditional (trained with condition=None); "
                              "sample it without conditions= or prompts=")
        if prompts is not None:
            text = [c for c in known if self.conditions_[c]["modality"] == "text"]
            if len(text) != 1:
                described = ", ".join(f"{c} ({self.conditions_[c]['modality']})" for c in known)
                raise ConfigError(
                    f"prompts= needs exactly one text condition column, but this generator is "
                    f"conditioned on {described}" + (
                        "; pass the texts through conditions={column: [...]} instead"
                        if text else "; it takes no text prompts"))
            if isinstance(prompts, str):
                prompts = [prompts]
            if text[0] in conditions:
                raise ConfigError(f"pass the text for {text[0]!r} once: as prompts= or in "
                                  "conditions=, not both")
            conditions[text[0]] = list(prompts)
        unknown = [c for c in conditions if c not in known]
        if unknown:
            raise ConfigError(f"conditions for {unknown}, which this generator does not know; "
                              f"its condition columns are {known}")
        frame = {}
        for col in known:
            if col not in conditions:
                frame[col] = [None] * n
                continue
            value = conditions[col]
            if isinstance(value, list | tuple | np.ndarray | pd.Series):
                values = list(value)
                if not values or n % len(values):
                    raise ConfigError(
                        f"conditions[{col!r}] has {len(values)} values for n={n} images; pass "
                        f"one value, {n} values, or k values with k dividing {n} (each value "
                        f"then gets n/k consecutive images)")
                # k < n values: n/k consecutive images each, e.g. [3, 7] -> 3 3 ... 7 7.
                values = [v for v in values for _ in range(n // len(values))]
            else:
                values = [value] * n
            frame[col] = values
        null = tuple(c for c in known if c not in conditions)
        if null and null not in self._warned_null:
            self._warned_null.add(null)
            warnings.warn(f"no value given for condition column(s) {list(null)}: sampling them "
                          "unconditionally (the null condition)", UserWarning, stacklevel=3)
        df = pd.DataFrame(frame, dtype=object)
        df.attrs["base_dir"] = os.getcwd()
        self._check_condition_values(df, conditions)
        return df

    def _check_condition_values(self, df: pd.DataFrame, given: dict) -> None:
        for col in given:
            info = self.conditions_[col]
            if info["modality"] == "numeric":
                for v in df[col]:
                    if v is None:
                        continue
                    try:
                        ok = math.isfinite(float(v))
                    except (TypeError, ValueError):
                        ok = False
                    if not ok:
                        raise ConfigError(f"conditions[{col!r}] holds {v!r}; this numeric "
                                          f"condition needs finite numbers (seen in training: "
                                          f"{info.get('min')}..{info.get('max')})")

    def _condition_batch(self, df: pd.DataFrame) -> Batch:
        """The condition columns of ``df`` as a Batch (the target image marked absent)."""
        dataset = TableDataset(df, self.transform_, with_label=False, allow_missing_columns=True)
        enc = dataset.encoded
        for col, info in self.conditions_.items():
            if info["modality"] != "categorical":
                continue
            i = list(self.transform_.vocab_).index(col)
            unseen = (enc.categorical[:, i] == UNKNOWN_INDEX) & enc.mask[col]
            if unseen.any():
                value = df[col].iloc[int(np.flatnonzero(unseen)[0])]
                raise ConfigError(f"condition {col}={value!r} is a class the model never saw; "
                                  f"known classes: {info['classes']}")
        return collate([dataset[i] for i in range(len(dataset))])

    def _condition_vectors(self, n: int, conditions, prompts) -> torch.Tensor | None:
        """(n, D) condition vectors, or None for an unconditional generator."""
        frame = self._condition_frame(n, conditions, prompts)
        if self.condition_encoder_ is None:
            return None
        batch = self._condition_batch(frame)
        device = next(self.network_.parameters()).device
        with torch.no_grad():
            return self.condition_encoder_(batch.to(device)).cpu()  # (n, D)

    def _sampling_settings(self, num_steps, guidance, sampler) -> tuple[int, float, str]:
        num_steps = self.num_steps if num_steps is None else num_steps
        guidance = self.guidance if guidance is None else guidance
        sampler = self.sampler if sampler is None else sampler
        problems = _sampling_problems(guidance, num_steps, sampler)
        if problems:
            raise ConfigError("; ".join(problems))
        return int(num_steps), float(guidance), sampler

    # ------------------------------------------------------------------ sample / edit

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
        num_steps, guidance, sampler = self._sampling_settings(num_steps, guidance, sampler)
        cond = self._condition_vectors(n, conditions, prompts)
        noise = torch.randn(n, *self.image_shape_, generator=torch.Generator().manual_seed(seed))
        x = _integrate(self.unet_, cond, noise, num_steps=num_steps, guidance=guidance,
                       sampler=sampler, batch_size=batch_size,
                       guidance_interval=self.guidance_interval)
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
        if not (isinstance(strength, numbers.Real) and 0.0 <= strength <= 1.0):
            raise ConfigError(f"strength={strength!r} must be in [0, 1] (0 returns the input, 1 "
                              "redraws it completely)")
        num_steps, guidance, sampler = self._sampling_settings(num_steps, guidance, None)
        x = self._images_tensor(images)  # (N, C, H, W)
        keep = None if mask is None else self._mask_tensor(mask, x.shape[0])  # (N, 1, H, W)
        if strength == 0:
            return tensor_to_uint8(x)
        cond = self._condition_vectors(x.shape[0], conditions, prompts)
        velocity_fn = self._velocity_fn(cond, guidance)
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            if keep is not None:
                out = inpaint_sample(velocity_fn, x, keep, num_steps=num_steps, method=sampler,
                                     shift=DEFAULT_SHIFT, generator=generator)
            else:
                out = edit_sample(velocity_fn, x, strength=float(strength), num_steps=num_steps,
                                  method=sampler, shift=DEFAULT_SHIFT, generator=generator)
        return tensor_to_uint8(out.cpu())

    def variations(self, image, n: int = 8, strength: float = 0.6, seed: int = 0, *,
                   conditions: dict | None = None, prompts: list[str] | str | None = None,
                   num_steps: int | None = None, guidance: float | None = None) -> np.ndarray:
        """``n`` variations of one image (SDEdit with independent noise) -> uint8 (n, H, W, C)."""
        self._check_fitted()
        _check_count("n", n)
        _check_seed(seed)
        if not (isinstance(strength, numbers.Real) and 0.0 <= strength <= 1.0):
            raise ConfigError(f"strength={strength!r} must be in [0, 1]; 0.6 is typical")
        num_steps, guidance, sampler = self._sampling_settings(num_steps, guidance, None)
        x = self._images_tensor(image)
        if x.shape[0] != 1:
            raise DataError(f"variations takes one image, got {x.shape[0]}; call it per image")
        cond = self._condition_vectors(n, conditions, prompts)
        with torch.no_grad():
            out = variation_sample(self._velocity_fn(cond, guidance), x, num_variations=n,
                                   strength=float(strength), num_steps=num_steps, method=sampler,
                                   shift=DEFAULT_SHIFT,
                                   generator=torch.Generator().manual_seed(seed))
        return tensor_to_uint8(out.cpu())

    def _velocity_fn(self, cond: torch.Tensor | None, guidance: float):
        device = next(self.unet_.parameters()).device
        cond = None if cond is None else cond.to(device)

        def velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            v = guided_velocity(self.unet_, x.to(device), t.to(device), cond=cond,
                                guidance=guidance if cond is not None else 1.0,
                                guidance_interval=self.guidance_interval)
            return v.to(x.device)

        return velocity

    def _images_tensor(self, images) -> torch.Tensor:
        """Edit inputs -> (N, C, H, W) in [-1, 1], converted like training images."""
        if isinstance(images, np.ndarray):
            single = images.ndim == 2 or (images.ndim == 3 and images.shape[-1] in (1, 3, 4))
            items = [images] if single else list(images)
        elif isinstance(images, list | tuple):
            items = list(images)
        else:
            items = [images]
        if not items:
            raise DataError("edit got no images; pass an image or a list of them")
        channels, height, width = self.image_shape_
        converted, out = [], []
        for i, item in enumerate(items):
            try:
                img = load_image(item, os.getcwd())
            except DataError as exc:
                raise DataError(f"image {i}: {exc}") from None
            img_channels = 1 if img.mode in ("L", "1", "I", "F") else 3
            if img.size != (width, height) or img_channels != channels:
                converted.append(f"image {i} ({img.size[0]}x{img.size[1]}, {img_channels} "
                                 "channel(s))")
            x, _ = self.transform_.image_tensor(img, column=self.image)  # (C, H, W)
            out.append(x)
        if converted:
            warnings.warn(f"{', '.join(converted)} converted to the model's {width}x{height}, "
                          f"{channels} channel(s)", UserWarning, stacklevel=3)
        return torch.stack(out)

    def _mask_tensor(self, mask, num_images: int) -> torch.Tensor:
        """A keep-mask (H, W) / (N, H, W), array, PIL image or path -> (N, 1, H, W) bool."""
        _, height, width = self.image_shape_
        if isinstance(mask, torch.Tensor):
            mask = mask.detach().cpu().numpy()
        if not isinstance(mask, np.ndarray):
            mask = np.asarray(load_image(mask, os.getcwd(), channels=1))
        masks = mask[None] if mask.ndim == 2 else mask
        if masks.ndim != 3 or masks.shape[0] not in (1, num_images):
            raise DataError(f"mask has shape {mask.shape}; pass (H, W) or ({num_images}, H, W), "
                            "True/255 where the pixel is kept")
        if masks.dtype == bool:
            keep = masks
        else:
            values = masks.astype(np.float64)
            keep = values > (127.5 if values.max(initial=0) > 1 else 0.5)
        h, w = keep.shape[1:]
        if (h, w) != (height, width):
            if h * width != w * height:
                raise DataError(f"mask is {w}x{h} but the images are {width}x{height}, another "
                                "aspect ratio; pass a mask of the image's size")
            keep = np.stack([np.asarray(Image.fromarray(m).resize((width, height),
                                                                  Image.Resampling.NEAREST))
                             for m in keep])
        keep_t = torch.from_numpy(np.ascontiguousarray(keep))[:, None]  # (N|1, 1, H, W)
        return keep_t.expand(num_images, -1, -1, -1)

    # ------------------------------------------------------------------ evaluate

    # ------------------------------------------------------------------ save / load

    def config_dict(self) -> dict:
        """The resolved configuration saved as ``config.json`` (JSON-able)."""
        self._check_fitted()
        return self._config_document()

    def _config_document(self) -> dict:
        preset = PRESETS[self.preset]
        return {
            "format_version": FORMAT_VERSION,
            "kind": "generator",
            "params": self.get_params(),
            "image_column": self.image,
            "condition_columns": list(self.conditions_),
            "image_shape": list(self.image_shape_),
            "preset": preset,
            "network": {
                "unet": self.unet_.config(),
                "condition": (None if self.condition_encoder_ is None
                              else self.condition_encoder_.config()),
            },
            "optimizer": {"name": "adamw", "lr": self._resolved_lr(), "weight_decay": WEIGHT_DECAY,
                          "batch_size": self.batch_size},
            "objective": {"name": "rectified_flow", "prediction": "velocity",
                          "condition_dropout": self.condition_dropout,
                          "ema_halflife_images": self.ema_halflife_images},
            "sampler": {"method": self.sampler, "num_steps": self.num_steps,
                        "guidance": self.guidance, "shift": DEFAULT_SHIFT,
                        "guidance_interval": list(self.guidance_interval)},
            "conditions": self.conditions_,
            "grid": self._grid,
            "training": self.train_result_,
        }

    def save(self, directory: str | os.PathLike) -> Path:
        """Write the generator to ``directory`` atomically; ``Generator.load`` reads it back.

        An existing folder is replaced only if it is a polymodal model folder or the
        generator's own ``fit(out_dir=...)`` folder, whose log, grids and checkpoint move in.
        """
        self._check_fitted()
        from polymodal import versions

        target = Path(directory).absolute()
        train_dir = None if self.out_dir_ is None else Path(self.out_dir_)
        aside = None
        if (train_dir is not None and target == train_dir and target.is_dir()
                and not is_model_folder(target)):
            # The training folder becomes the model folder: move it aside to copy from it.
            aside = Path(tempfile.mkdtemp(prefix=f".{target.name}.train-", dir=target.parent))
            aside.rmdir()
            os.rename(target, aside)
            train_dir = aside
        state = {k: v.detach().to("cpu").contiguous()
                 for k, v in self.network_.state_dict().items()}

        def write(folder: Path) -> None:
            write_json(folder / "config.json", self._config_document())
            write_json(folder / "schema.json", self.schema_.to_dict())
            self.transform_.save(folder / "transform")
            with atomic_path(folder / WEIGHTS_FILE) as tmp:
                save_file(state, str(tmp))
            write_json(folder / "versions.json", versions())
            write_text(folder / "train_log.jsonl",
                       "".join(json.dumps(r, default=str) + "\n" for r in self.training_history_))
            samples = None if train_dir is None else train_dir / "samples"
            if samples is not None and samples.is_dir():
                shutil.copytree(samples, folder / "samples")
            else:
                self._write_grid(self.network_, folder, self.train_result_["steps"])
            if train_dir is not None:
                for name in ("checkpoint.safetensors", "train_config.json"):
                    if (train_dir / name).is_file():
                        shutil.copy2(train_dir / name, folder / name)

        try:
            path = write_folder_atomically(target, write, format_version=FORMAT_VERSION)
        except BaseException:
            if aside is not None and not target.exists():
                os.rename(aside, target)
            raise
        if aside is not None:
            shutil.rmtree(aside, ignore_errors=True)
        self.out_dir_ = str(path) if aside is not None else self.out_dir_
        return path

    @classmethod
    def load(cls, directory: str | os.PathLike) -> Generator:
        """Rebuild a generator saved by :meth:`save`; it samples exactly the same images."""
        path = check_folder(directory, format_version=FORMAT_VERSION, required=REQUIRED_FILES,
                            kind="generator")
        try:
            config = json.loads((path / "config.json").read_text())
            generator = cls(**config["params"])
            if "spatial_condition" not in config["params"]:
                generator.spatial_condition = False  # saved before the option existed
            if "guidance_interval" not in config["params"]:
                # Saved before it was a parameter: sample as they were sampled then.
                generator.guidance_interval = tuple(
                    config.get("sampler", {}).get("guidance_interval", LEGACY_GUIDANCE_INTERVAL))
            transform = TableTransform.load(path / "transform")
            with torch.random.fork_rng(devices=[]):
                unet = UNet(**config["network"]["unet"])
                cond_config = config["network"]["condition"]
                encoder = None if cond_config is None else ConditionEncoder.from_config(cond_config)
            network = _GeneratorNetwork(unet, encoder, image_column=config["image_column"],
                                        condition_dropout=config["params"]["condition_dropout"])
            network.load_state_dict(load_file(str(path / WEIGHTS_FILE)))
            generator.schema_ = Schema.from_dict(json.loads((path / "schema.json").read_text()))
            generator.image_shape_ = tuple(config["image_shape"])
            generator.conditions_ = config["conditions"]
            generator._grid = config["grid"]
            generator.train_result_ = config["training"]
        except ModelFolderError:
            raise
        except (OSError, ValueError, KeyError, TypeError, RuntimeError, SafetensorError) as exc:
            raise ModelFolderError(f"{path} holds an unreadable or mismatched generator ({exc}); "
                                   "save the generator again") from None
        network.eval()
        generator.transform_ = transform
        generator.network_ = network
        generator.unet_, generator.condition_encoder_ = network.unet, network.condition
        generator.out_dir_ = None
        generator.training_history_ = _read_jsonl(path / "train_log.jsonl")
        generator._warned_null = set()
        return generator

    def __repr__(self) -> str:
        state = "fitted" if hasattr(self, "network_") else "not fitted"
        return (f"Generator(image={self.image!r}, condition={self._condition_columns()}, "
                f"{state})")


# ---------------------------------------------------------------------------- helpers


def _jsonable(value):
    """A table cell as a JSON value (numpy scalars unwrapped, missing as None)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, list | tuple | np.ndarray):
        return [_jsonable(v) for v in value]
    return str(value)


def _sampling_problems(guidance, num_steps, sampler) -> list[str]:
    """Out-of-range sampling settings, each naming the parameter, the value and the range."""
    problems = []
    lo, hi = GUIDANCE_RANGE
    if not (isinstance(guidance, numbers.Real) and not isinstance(guidance, bool)
            and lo <= guidance <= hi):
        problems.append(f"guidance={guidance!r} must be a number in [{lo:g}, {hi:g}] "
                        "(1 = no guidance; 1.5-3 is typical)")
    lo_steps, hi_steps = NUM_STEPS_RANGE
    if not (isinstance(num_steps, numbers.Integral) and not isinstance(num_steps, bool)
            and lo_steps <= num_steps <= hi_steps):
        problems.append(f"num_steps={num_steps!r} must be an integer in [{lo_steps}, "
                        f"{hi_steps}]; 8-32 is typical")
    if sampler not in SAMPLERS:
        problems.append(f"sampler={sampler!r} must be one of {list(SAMPLERS)}")
    return problems


def _check_count(name: str, value) -> None:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"{name}={value!r} must be an integer >= 1")


def _check_seed(seed) -> None:
    if not isinstance(seed, numbers.Integral) or isinstance(seed, bool) or seed < 0:
        raise ConfigError(f"seed={seed!r} must be an integer >= 0")


def _read_jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
