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

import copy
import functools
import os
import warnings
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch

from polymodal.api.export_onnx import check_export_format
from polymodal.api.fit_data import say_notes
from polymodal.api.generator_folder import (
    generator_config,
    read_generator,
    training_folder,
    write_generator,
)
from polymodal.api.generator_guidance import auto_guidance, check_seconds, describe
from polymodal.api.model_folder import is_model_folder
from polymodal.api.ranks import Ranks, rank_group, train_generator_share, transform_text
from polymodal.api.sklearn_compat import Estimator
from polymodal.data.fingerprint import table_fingerprint
from polymodal.data.generator_inputs import condition_batch, condition_frame, edit_images, keep_mask
from polymodal.data.generator_rows import (
    conditions_info,
    grid_conditions,
    read_image_table,
    training_rows,
)
from polymodal.data.image_encoding import tensor_to_uint8
from polymodal.data.readers import table_notes
from polymodal.data.schema import Schema
from polymodal.data.transforms import TableTransform
from polymodal.errors import ConfigError, DataError
from polymodal.evaluate.generator_grids import write_final_grid, write_sample_grid
from polymodal.models import samplers
from polymodal.models.condition import CONDITION_MODALITIES
from polymodal.models.generator_net import (
    SAMPLE_BATCH_SIZE,
    GeneratorNetwork,
    build_network,
    integrate,
    sample_edit,
    sample_variations,
)
from polymodal.recipes import generator as recipes
from polymodal.train.budget import TimeBudget
from polymodal.train.config import bf16_pays_for_images
from polymodal.train.devices import resolve_device
from polymodal.train.generator_fit import (
    EarlySnapshot,
    generator_train_config,
    nan_message,
    run_summary,
    train_generator,
    training_seconds,
)


class Generator(Estimator):
    """Generate images like those of one column of a table, conditioned on other columns.

    Args:
        image: the image column to learn to generate.
        condition: columns to condition on (categorical, numeric, datetime, multilabel,
            text or image); ``None`` or ``[]`` for an unconditional generator.
        image_size: side of the square images generated; ``None`` infers it from the data.
        image_channels: 1 or 3; ``None`` infers it (1 when most images are grey).
        seed: seeds the weights, the training order and the noise; the same seed and
            data give identical weights on CPU with no time limit, or with a step budget
            (``recipe={"training.max_steps": N}``, ``generate fit --steps N``); a
            wall-clock limit is not reproducible (the steps that fit depend on the load).
        time_limit: seconds for the whole ``fit``; ``None`` trains the preset's epochs.
        preset: ``"fast"`` or ``"best"`` (see :func:`~polymodal.recipes.generator.preset_recipe`).
        text_encoder: for text conditions and prompts: ``"auto"`` (MiniLM's sentence
            vector beside hashed n-grams when MiniLM is installed, else the n-grams),
            ``"minilm"``, ``"hashed"`` or ``"minilm+hashed"``.
        guidance: default classifier-free guidance scale for sampling (1 = none), or
            ``"auto"``: after training, the least of 1, 1.5, 2 and 3 at which samples of
            the (single) category condition are as recognisable as real images of their
            class, by a pixel classifier fit on the training images, and at that scale
            the condition withheld for the first steps when that is recognisable too
            (``recipe={"sampling.condition_from": ...}``; see
            :mod:`polymodal.api.generator_guidance`); 3 for other generators.
        num_steps: default number of sampler steps.
        sampler: default sampler, ``"ab2"`` (2nd order with one network pass per step:
            Adams-Bashforth; the default), ``"heun"`` (2nd order, two passes) or
            ``"euler"``.
        guidance_interval: ``(lo, hi)``: guidance applies at sampler times t in this range
            only (t = 1 is pure noise); elsewhere one conditional pass runs.
        guide: what guidance pushes away from: ``"unconditional"`` (classifier-free
            guidance by the null condition) or ``"early"`` (autoguidance by the network's
            own snapshot from early in training, ``recipe={"training.guide_at": ...}``).
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
        device: where it trains and samples: ``"auto"`` (a CUDA GPU when there is one,
            else the CPU), ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``; not saved.
    """

    _fitted_attribute = "network_"
    _not_fitted = "this Generator is not fitted; call .fit(table) or Generator.load(folder) first"
    _param_problems = staticmethod(recipes.generator_param_problems)

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
        guidance: float | str = recipes.DEFAULT_GUIDANCE,
        num_steps: int = recipes.DEFAULT_NUM_STEPS,
        sampler: str = recipes.DEFAULT_SAMPLER,
        guidance_interval: tuple[float, float] = samplers.DEFAULT_GUIDANCE_INTERVAL,
        guide: str = recipes.DEFAULT_GUIDE,
        condition_dropout: float = recipes.DEFAULT_CONDITION_DROPOUT,
        batch_size: int = recipes.DEFAULT_BATCH_SIZE,
        lr: float | None = None,
        ema_halflife_images: float | None = recipes.DEFAULT_EMA_HALFLIFE_IMAGES,
        columns: dict[str, str] | None = None,
        coord_channels: bool = False,
        spatial_condition: bool = True,
        recipe: dict | None = None,
        verbosity: int = 1,
        device: str = "auto",
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
        self.guide = guide
        self.condition_dropout = condition_dropout
        self.batch_size = batch_size
        self.lr = lr
        self.ema_halflife_images = ema_halflife_images
        self.columns = columns
        self.coord_channels = coord_channels
        self.spatial_condition = spatial_condition
        self.recipe = recipe
        self.verbosity = verbosity
        self.device = device

    # ------------------------------------------------------------------ configuration

    def _condition_columns(self) -> list[str]:
        return recipes.condition_columns(self.condition)

    def _recipe_arguments(self) -> dict:
        return {name: getattr(self, name) for name in recipes.RECIPE_ARGUMENTS}

    # ------------------------------------------------------------------ fit

    def fit(self, table, *, out_dir: str | os.PathLike | None = None,
            resume: bool = False, budget: TimeBudget | None = None) -> Generator:
        """Train on the images of ``table`` (a DataFrame or a path ``read_table`` reads).

        ``out_dir`` receives the training log, resumable checkpoints and sample grids
        (``samples/step_XXXXXX.png``, ``samples/latest.png``); ``resume=True`` continues
        an interrupted fit from its checkpoint there (same data and settings).
        ``budget``: the caller's clock for ``time_limit``, when the command started it
        before this fit (the CLI does, so that reading the table counts); by default the
        fit starts its own. Under ``torchrun`` rank 0 does this; the other ranks train the
        network with it and stay unfitted (:mod:`polymodal.api.ranks`).
        """
        # 1. Check every argument at once, before any work (a nan time_limit named as
        # such, not as a budget mismatch); forget an earlier fit.
        self._validate_params()
        budget = budget or TimeBudget(self.time_limit)
        if budget.time_limit_s != self.time_limit:
            raise ConfigError(f"budget= counts to {budget.time_limit_s} s but time_limit="
                              f"{self.time_limit}; give the Generator the budget's limit")
        if resume and out_dir is None:
            raise ConfigError("resume=True needs out_dir=, the folder of the interrupted fit")
        for name in [k for k in vars(self) if k.endswith("_") and not k.startswith("_")]:
            delattr(self, name)  # a fit that fails leaves the generator unfitted, not half-old
        with rank_group(self.device) as ranks:  # under torchrun (polymodal.api.ranks)
            if ranks.follower:  # trains the network with rank 0; stays unfitted
                ranks.follow(functools.partial(train_generator_share, generator=self))
                return self
            return self._fit(table, out_dir, resume, budget, ranks)

    def _fit(self, table, out_dir, resume: bool, budget: TimeBudget, ranks: Ranks) -> Generator:
        """``fit``'s steps 2-7, in this process alone or on rank 0 of a ``torchrun`` group."""
        if out_dir is not None and not resume and is_model_folder(Path(out_dir)):
            out_dir = training_folder(out_dir)  # the saved model stays whole until save()
        self._warned_null = set()
        # 2. Read the table; infer the modalities of the image and condition columns.
        df, schema = read_image_table(table, self.image, self._condition_columns(),
                                      columns=self.columns, seed=self.seed,
                                      condition_modalities=CONDITION_MODALITIES)
        self.data_fingerprint_ = table_fingerprint(df)  # for the model card
        say_notes(table_notes(df), self._say)  # rows the reader skipped, on the console
        # 3. Fit the transforms; decode every target image once, skipping unreadable ones.
        text_kind = recipes.generation_text_kind(self.text_encoder)
        transform = TableTransform(schema, image_size=self.image_size, text_encoder=text_kind,
                                   image_channels=self.image_channels).fit(df)
        dataset, rows = training_rows(df, transform, self.image)
        self._describe(schema, transform, rows, num_rows=len(df))
        # 4. Resolve the recipe for these images (saved with the model).
        self.recipe_ = recipes.resolve_generator(schema, len(dataset), self.image_shape_,
                                                 image_column=self.image, overrides=self.recipe,
                                                 **self._recipe_arguments())
        # 5. Build the network: a UNet sized by the recipe and the condition encoder.
        network = self._build_network()
        # 6. Train it with the shared loop, writing sample grids into out_dir as it goes,
        #    keeping an early snapshot of the weights for autoguidance.
        left = None if budget.time_limit_s is None else budget.left_s()
        check_s = check_seconds(self.conditions_, self.recipe_.sampling.guidance, left)
        time_left = training_seconds(None if left is None else left - check_s)
        training = asdict(self.recipe_.training)
        guide_at = training.pop("guide_at")
        config = generator_train_config(
            len(dataset), **training, time_left_s=time_left,
            seed=self.seed, progress=self.verbosity > 0, precision=self._training_precision(),
            checkpoints=out_dir is not None, device=self.device)
        ranks.training_rows(rows, dataset.positions, table_rows=len(df), seed=self.seed)
        events: list[dict] = []
        train_ds = ranks.lead("generator", dataset, lambda: {  # under torchrun: all ranks train
            "transform": transform_text(transform), "image": self.image,
            "conditions": self.conditions_, "image_shape": self.image_shape_,
            "recipe": self.recipe_, "config": config, "resume": resume,
            "out_dir": None if out_dir is None else str(out_dir)}, say=self._say, log=events)
        snapshot = None if guide_at is None else EarlySnapshot(guide_at)
        result = train_generator(network, train_ds, config, out_dir=out_dir, resume=resume,
                                 write_grid=self._write_grid,
                                 callbacks=[] if snapshot is None else [snapshot])
        ranks.phase = "after"
        # 7. Keep the trained network and what the run did.
        self._keep_guide(network, snapshot)
        self._keep(network, result, out_dir, num_rows=len(df), num_images=len(dataset))
        # 8. Resolve guidance "auto" by sampling the trained network; write the final grid.
        self._resolve_guidance(dataset.images, rows, result,
                               seconds=None if left is None else min(check_s, budget.left_s()))
        self._write_final_grid(result, out_dir, budget)
        self.training_history_[:0] = events
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

    def _keep_guide(self, network: GeneratorNetwork, snapshot: EarlySnapshot | None) -> None:
        """The early snapshot as a network of its own (``guide_network_``), or None."""
        self.guide_network_ = None
        if snapshot is not None and snapshot.weights is not None:
            guide = copy.deepcopy(network)
            guide.load_state_dict(snapshot.weights)
            self.guide_network_ = guide.eval().requires_grad_(False)

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
            warnings.warn(nan_message(result), UserWarning, stacklevel=3)
            self._say(f"[yellow]warning:[/] {nan_message(result)}")
        self._say(f"trained {result.steps:,} steps ({result.epochs:g} epochs, "
                  f"{result.images_per_s:.0f} images/s), stopped by {result.stop_reason}")

    def _resolve_guidance(self, images, rows, result, *, seconds: float | None) -> None:
        """Put the guidance (and condition_from) to sample with in the resolved recipe: the
        arguments' numbers, or for "auto" the ones the check chooses (its event goes to the
        training log)."""
        sampling = self.recipe_.sampling
        if sampling.guidance != recipes.AUTO_GUIDANCE:
            if sampling.condition_from == recipes.AUTO_CONDITION_FROM:
                self.recipe_ = replace(self.recipe_, sampling=replace(
                    sampling, condition_from=recipes.FALLBACK_CONDITION_FROM))
            return
        guidance, start, event = auto_guidance(self, images, rows, seconds=seconds,
                                               images_per_s=result.images_per_s)
        self.recipe_ = replace(self.recipe_, sampling=replace(
            sampling, guidance=guidance, condition_from=start))
        self.training_history_.append(event)
        self._say(describe(event))

    def _write_final_grid(self, result, out_dir, budget: TimeBudget) -> None:
        if out_dir is not None:
            event = write_final_grid(self.network_, Path(out_dir), result, budget=budget,
                                     sampling=self._sampling(), say=self._say,
                                     **self._grid_arguments())
            self.training_history_.append(event)

    def _write_grid(self, network: GeneratorNetwork, folder: Path, step: int, *,
                    num_steps: int | None = None) -> None:
        write_sample_grid(network, folder, step, **self._grid_arguments(),
                          sampling=asdict(self._sampling(num_steps=num_steps)))

    def _grid_arguments(self) -> dict:
        return {"transform": self.transform_, "info": self.conditions_, "grid": self._grid,
                "image_shape": self.image_shape_}

    # ------------------------------------------------------------------ sample / edit

    def _sampling(self, num_steps=None, guidance=None, sampler=None) -> recipes.SamplingRecipe:
        """The sampling settings of a call: its arguments, else the generator's; guidance
        and condition_from "auto" are the numbers the fit chose (``FALLBACK_GUIDANCE`` and
        ``FALLBACK_CONDITION_FROM`` before any is chosen)."""
        chosen = getattr(getattr(self, "recipe_", None), "sampling", None)
        auto = (recipes.FALLBACK_GUIDANCE if chosen is None
                or chosen.guidance == recipes.AUTO_GUIDANCE else chosen.guidance)
        start = (recipes.FALLBACK_CONDITION_FROM if chosen is None
                 or chosen.condition_from == recipes.AUTO_CONDITION_FROM
                 else chosen.condition_from)
        return recipes.call_sampling(self.get_params(), num_steps=num_steps,
                                     guidance=guidance, sampler=sampler, auto_guidance=auto,
                                     auto_condition_from=start)

    def _condition_vectors(self, n: int, conditions, prompts) -> torch.Tensor | None:
        """(n, D) condition vectors, or None for an unconditional generator. Moves the
        network to ``device`` first: every sampling call starts here and runs there."""
        return self._encode(self.network_, self._condition_rows(n, conditions, prompts))

    def _condition_rows(self, n: int, conditions, prompts):
        """The conditions asked for as a model batch (None for an unconditional generator)."""
        frame, null = condition_frame(self.conditions_, n, conditions, prompts)
        if null and null not in self._warned_null:
            self._warned_null.add(null)
            warnings.warn(f"no value given for condition column(s) {list(null)}: sampling them "
                          "unconditionally (the null condition)", UserWarning, stacklevel=4)
        if self.condition_encoder_ is None:
            return None
        return condition_batch(frame, self.transform_, self.conditions_)

    def _encode(self, network: GeneratorNetwork, batch) -> torch.Tensor | None:
        """``network`` moved to ``device``, and its (n, D) condition vectors of ``batch``."""
        device = resolve_device(self.device)
        network.to(device)
        if batch is None or network.condition is None:
            return None
        with torch.no_grad():
            return network.condition(batch.to(device)).cpu()  # (n, D)

    def _guided(self, n: int, conditions, prompts, guide: str):
        """The condition vectors and, for ``guide="early"``, the guiding ``(unet, its
        condition vectors)`` (else None)."""
        batch = self._condition_rows(n, conditions, prompts)
        cond = self._encode(self.network_, batch)
        weak = self._guide_network(guide)
        return cond, None if weak is None else (weak.unet, self._encode(weak, batch))

    def _guide_network(self, guide: str) -> GeneratorNetwork | None:
        """The early snapshot for ``guide="early"``; an error naming the fix without one."""
        if guide != "early":
            return None
        if getattr(self, "guide_network_", None) is None:
            raise ConfigError("guide='early' needs the early snapshot of the weights, which "
                              "this generator does not have (trained with training.guide_at="
                              "null, or saved before autoguidance existed); use "
                              "guide='unconditional' or fit it again")
        return self.guide_network_

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
        recipes.check_count("n", n)
        recipes.check_count("batch_size", batch_size)
        recipes.check_sample_memory(n, self.image_shape_, available_memory())
        recipes.check_seed(seed)
        settings = self._sampling(num_steps, guidance, sampler)
        cond, weak = self._guided(n, conditions, prompts, settings.guide)
        noise = torch.randn(n, *self.image_shape_, generator=torch.Generator().manual_seed(seed))
        x = integrate(self.unet_, cond, noise, batch_size=batch_size, weak=weak,
                      **asdict(settings))
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
        recipes.check_seed(seed)
        recipes.check_strength(strength, " (0 returns the input, 1 redraws it completely)")
        s = self._sampling(num_steps, guidance)
        x = edit_images(images, self.transform_, self.image, self.image_shape_)  # (N, C, H, W)
        keep = None if mask is None else keep_mask(mask, x.shape[0], self.image_shape_)
        if strength == 0:
            return tensor_to_uint8(x)
        cond, weak = self._guided(x.shape[0], conditions, prompts, s.guide)
        return tensor_to_uint8(sample_edit(self.unet_, cond, x, keep=keep, strength=strength,
                                           seed=seed, weak=weak, **asdict(s)))

    def variations(self, image, n: int = 8, strength: float = 0.6, seed: int = 0, *,
                   conditions: dict | None = None, prompts: list[str] | str | None = None,
                   num_steps: int | None = None, guidance: float | None = None) -> np.ndarray:
        """``n`` variations of one image (SDEdit with independent noise) -> uint8 (n, H, W, C)."""
        self._check_fitted()
        recipes.check_count("n", n)
        recipes.check_sample_memory(n, self.image_shape_, available_memory())
        recipes.check_seed(seed)
        recipes.check_strength(strength, "; 0.6 is typical")
        s = self._sampling(num_steps, guidance)
        x = edit_images(image, self.transform_, self.image, self.image_shape_)
        if x.shape[0] != 1:
            raise DataError(f"variations takes one image, got {x.shape[0]}; call it per image")
        cond, weak = self._guided(n, conditions, prompts, s.guide)
        return tensor_to_uint8(sample_variations(self.unet_, cond, x, n=n, strength=strength,
                                                 seed=seed, weak=weak, **asdict(s)))

    # ------------------------------------------------------------------ save / load

    def config_dict(self) -> dict:
        """The resolved configuration saved as ``config.json`` (JSON-able)."""
        self._check_fitted()
        return generator_config(self)

    def save(self, directory: str | os.PathLike) -> Path:
        """Write the generator to ``directory`` atomically; ``Generator.load`` reads it back.

        An existing folder is replaced only if it is a polymodal model folder or the
        generator's own ``fit(out_dir=...)`` folder, whose log, grids and checkpoint move in.
        """
        self._check_fitted()
        return write_generator(self, directory)

    def export(self, directory: str | os.PathLike, *, format: str = "onnx",
               force: bool = False) -> Path:
        """Write the UNet and condition encoder as ONNX with a numpy sampler in
        ``runtime.py`` that needs no torch (:mod:`polymodal.api.export_generator`)."""
        from polymodal.api.export_generator import export_generator

        self._check_fitted()
        check_export_format(format)
        if self._sampling().guide != "unconditional":
            raise ConfigError(f"guide={self._sampling().guide!r}: the export samples with "
                              "classifier-free guidance only; set guide='unconditional' "
                              "before exporting")
        return export_generator(self, directory, force=force)

    @classmethod
    def load(cls, directory: str | os.PathLike, *, device: str = "auto") -> Generator:
        """Rebuild a generator saved by :meth:`save`, sampling on ``device``; it samples
        exactly the same images."""
        return read_generator(cls, directory, device)

    def __repr__(self) -> str:
        state = "fitted" if hasattr(self, "network_") else "not fitted"
        return (f"Generator(image={self.image!r}, condition={self._condition_columns()}, "
                f"{state})")


def available_memory() -> int:
    """Bytes of memory available to a sampling call now."""
    import psutil

    return int(psutil.virtual_memory().available)
