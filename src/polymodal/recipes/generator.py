"""The Generator's recipe: the UNet's sizing, the condition, how it trains and samples.

:func:`resolve_generator` is a pure function of the schema, the number of training
images, their shape and the user's choices: the preset's settings, then the Generator's
constructor arguments (``lr``, ``batch_size``, ``guidance``, ...), then what the images
ask for (the UNet's widths and depth by image side, a warm-up by the length of the run),
then the user's overrides (``Generator(recipe={"network.base_channels": 24})``), validated
once. The result is saved in the model's ``config.json`` and loads back equal. Where a
default comes from a measurement, bench/RESULTS.md has it ('generator_fashion',
'generator_sampling_sweep', 'text_to_image_shapes').
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field, fields, replace

from polymodal.data.schema import Schema
from polymodal.data.text import minilm_available
from polymodal.errors import ConfigError
from polymodal.models.samplers import DEFAULT_GUIDANCE_INTERVAL, DEFAULT_SHIFT, SAMPLERS
from polymodal.models.unet import UNet
from polymodal.recipes.base import common_param_problems, dotted_keys, is_int, override

PRESETS = ("fast", "best")
# 8 steps as the sampler sweep chose on the fully trained Fashion-MNIST model; Adams-Bashforth
# rather than Heun there: the same samples' scores at one network pass a step, about twice
# the images per second (bench/RESULTS.md, 'generator_sampling_sweep', 'generator_guidance').
DEFAULT_SAMPLER = "ab2"
DEFAULT_NUM_STEPS = 8
# "auto": after training, the least guidance at which a class-conditional generator's
# samples are as recognisable as real images (polymodal.api.generator_guidance); any
# other generator, and the grids drawn while training, use FALLBACK_GUIDANCE.
AUTO_GUIDANCE = "auto"
DEFAULT_GUIDANCE = AUTO_GUIDANCE
FALLBACK_GUIDANCE = 3.0
# "auto": chosen by the same check, with the guidance (the condition withheld above a
# sampler time where that is recognisable enough); FALLBACK_CONDITION_FROM elsewhere.
AUTO_CONDITION_FROM = "auto"
FALLBACK_CONDITION_FROM = 1.0
# Batch 64 gave more optimiser steps per CPU-minute than 128; the EMA half-life is the
# reference loop's (bench/generator_core_probe.py).
DEFAULT_BATCH_SIZE = 64
DEFAULT_EMA_HALFLIFE_IMAGES = 5_000.0
DEFAULT_CONDITION_DROPOUT = 0.1
# What guidance pushes away from: the null condition (classifier-free guidance) or the
# early snapshot of the same network (autoguidance); see SamplingRecipe.guide. Guidance
# by the null condition stays the default: autoguidance by an early snapshot won neither
# digits nor Fashion-MNIST (bench/RESULTS.md, 'generator_guidance'), so no snapshot is
# kept unless asked for (``training.guide_at``; 0.25 is a good share).
GUIDES = ("unconditional", "early")
DEFAULT_GUIDE = "unconditional"
SUGGESTED_GUIDE_AT = 0.25
GUIDANCE_RANGE = (0.0, 20.0)
NUM_STEPS_RANGE = (1, 1000)
# The Generator's arguments by the recipe field each one sets.
ARGUMENT_FIELDS = {
    "training.batch_size": "batch_size", "training.lr": "lr",
    "training.ema_halflife_images": "ema_halflife_images",
    "condition.dropout": "condition_dropout", "network.coord_channels": "coord_channels",
    "network.spatial_condition": "spatial_condition", "sampling.sampler": "sampler",
    "sampling.num_steps": "num_steps", "sampling.guidance": "guidance",
    "sampling.guidance_interval": "guidance_interval", "sampling.guide": "guide",
}
# The Generator's constructor arguments that feed the recipe (see resolve_generator).
RECIPE_ARGUMENTS = ("preset", "batch_size", "lr", "ema_halflife_images", "condition_dropout",
                    "coord_channels", "spatial_condition", "sampler", "num_steps", "guidance",
                    "guidance_interval", "guide")
# Folders saved before the interval was a parameter were sampled with this one.
LEGACY_GUIDANCE_INTERVAL = (0.3, 1.0)


@dataclass(frozen=True)
class GeneratorNetworkRecipe:
    """The UNet that predicts the velocity, and the width of the condition vector."""

    base_channels: int = 16
    """Channels of the UNet's first level (later levels multiply it)."""

    channel_mults: tuple[int, ...] = (1, 2, 4)
    """Width multiplier of each resolution level; one level per entry."""

    num_res_blocks: int = 1
    """Residual blocks per level."""

    attention_resolutions: tuple[int, ...] = ()
    """Feature-map sides at which self-attention runs (none on small images)."""

    cond_dim: int = 64
    """Width of the condition vector added to the time embedding (unused without
    conditions)."""

    coord_channels: bool = False
    """Two pixel-coordinate input channels (they did not improve position on ``shapes``)."""

    spatial_condition: bool = True
    """A learned coarse map from the condition added at the bottleneck, so the condition
    can say where things go (off without conditions)."""

    patch_size: int = 1
    """1, or 2 / 4: the UNet runs on p x p patches of pixels (a p^2 smaller grid of p*p*C
    channels), the same computation in fewer, wider convolutions."""

    context_dim: int = 0
    """Width of the condition tokens the UNet cross-attends to (one per condition column,
    and one per hashed n-gram of a caption); 0 for no cross-attention."""

    cross_attention_levels: int = 2
    """How many of the UNet's lowest resolutions cross-attend to the tokens (the
    bottleneck first; 2 at 32x32: 8x8 and 16x16)."""


@dataclass(frozen=True)
class ConditionRecipe:
    """How the condition is trained for classifier-free guidance."""

    dropout: float = DEFAULT_CONDITION_DROPOUT
    """Share of training rows whose whole condition is replaced by the null condition
    (and, with several columns, of single columns hidden)."""


@dataclass(frozen=True)
class GeneratorTrainingRecipe:
    """How the network trains (the loop's other settings are derived in ``fit``)."""

    batch_size: int = DEFAULT_BATCH_SIZE
    """Images per optimiser step."""

    lr: float = 3e-3
    """Peak AdamW learning rate, after warm-up, decayed by a cosine (a higher rate than
    the reference's 1e-3 learns the condition sooner in a short run)."""

    weight_decay: float = 0.0
    """AdamW decoupled weight decay (none, as in the measured reference)."""

    warmup_steps: int = 50
    """Optimiser steps of linear warm-up: a twentieth of the epoch-bounded run, at most 50."""

    min_lr_ratio: float = 0.1
    """Floor of the cosine decay as a fraction of ``lr``."""

    max_epochs: int = 20
    """Passes over the images when there is no time limit nor ``max_steps`` (either
    replaces it)."""

    max_steps: int | None = None
    """Optimiser steps to train (``generate fit --steps``): the same seed and data then
    give the same weights on CPU, which a wall-clock limit cannot (how many steps fit in
    it depends on the machine's load); a time limit given as well may stop it sooner."""

    ema_halflife_images: float | None = DEFAULT_EMA_HALFLIFE_IMAGES
    """Half-life of the weight EMA in training images; None for no EMA."""

    compile: bool = False
    """``torch.compile`` the network before training (see ``TrainConfig.compile``)."""

    guide_at: float | None = None
    """Share of the run after which the EMA weights are kept, once, as the weaker model
    that autoguidance guides with (``sampling.guide = "early"``; 0.25 is a good share);
    saved beside the weights. None (the default) keeps no snapshot."""


@dataclass(frozen=True)
class SamplingRecipe:
    """How images are sampled by default (each call may override these)."""

    sampler: str = DEFAULT_SAMPLER
    """'heun' (2nd order), 'ab2' (2nd order, one network pass per step) or 'euler'."""

    num_steps: int = DEFAULT_NUM_STEPS
    """Integration steps from noise to image."""

    guidance: float | str = DEFAULT_GUIDANCE
    """Classifier-free guidance scale (1 = none), or "auto" (chosen after training; the
    resolved recipe of a fitted generator holds the number chosen)."""

    guidance_interval: tuple[float, float] = DEFAULT_GUIDANCE_INTERVAL
    """Sampler times t (1 = noise) where guidance applies; elsewhere one conditional
    pass runs."""

    shift: float = DEFAULT_SHIFT
    """Time-grid shift (1 = uniform steps)."""

    condition_from: float | str = AUTO_CONDITION_FROM
    """Sampler time t (1 = noise) above which the condition is withheld: the first steps
    sample unconditionally, the rest follow the condition (condition-annealed sampling:
    more variety within a class); 1 conditions every step. "auto": chosen with guidance
    "auto" (the resolved recipe holds the number), else 1."""

    guide: str = DEFAULT_GUIDE
    """What guidance pushes away from: ``"unconditional"``, the null condition
    (classifier-free guidance), or ``"early"``, the same network's snapshot from early in
    training, conditional too (autoguidance; ``training.guide_at``)."""


@dataclass(frozen=True)
class GeneratorRecipe:
    """Everything the Generator trains and samples with, resolved for one image table."""

    network: GeneratorNetworkRecipe = field(default_factory=GeneratorNetworkRecipe)
    """The UNet and the condition vector's width."""

    condition: ConditionRecipe = field(default_factory=ConditionRecipe)
    """Condition dropout for guidance."""

    training: GeneratorTrainingRecipe = field(default_factory=GeneratorTrainingRecipe)
    """How the network trains."""

    sampling: SamplingRecipe = field(default_factory=SamplingRecipe)
    """The sampling defaults."""

    def validate(self) -> None:
        """Raise one :class:`ConfigError` naming every field that is out of range."""
        problems = self.problems()
        if problems:
            raise ConfigError("recipe: " + "; ".join(problems))

    def problems(self) -> list[str]:
        """Every out-of-range field, each named with its value and range."""
        n, t = self.network, self.training
        problems = [f"network.{name}={value!r} must be an integer >= 1"
                    for name, value in (("base_channels", n.base_channels),
                                        ("num_res_blocks", n.num_res_blocks),
                                        ("cond_dim", n.cond_dim),
                                        ("cross_attention_levels", n.cross_attention_levels))
                    if not _int_at_least(value, 1)]
        if not _int_at_least(n.context_dim, 0):
            problems.append(f"network.context_dim={n.context_dim!r} must be an integer >= 0 "
                            "(0: no cross-attention)")
        for name in ("channel_mults", "attention_resolutions"):
            value = getattr(n, name)
            if not isinstance(value, tuple) or not all(_int_at_least(v, 1) for v in value) \
                    or (name == "channel_mults" and not value):
                problems.append(f"network.{name}={value!r} must be a list of integers >= 1")
        if n.patch_size not in (1, 2, 4) or isinstance(n.patch_size, bool):
            problems.append(f"network.patch_size={n.patch_size!r} must be 1, 2 or 4")
        for name in ("coord_channels", "spatial_condition"):
            if not isinstance(getattr(n, name), bool):
                problems.append(f"network.{name}={getattr(n, name)!r} must be true or false")
        if not _number_in(self.condition.dropout, 0.0, 1.0, high_open=True):
            problems.append(f"condition.dropout={self.condition.dropout!r} must be in [0, 1); "
                            "0.1 is typical")
        if not _int_at_least(t.batch_size, 1):
            problems.append(f"training.batch_size={t.batch_size!r} must be an integer >= 1")
        if not (_number_in(t.lr, 0.0, 1.0) and t.lr > 0):
            problems.append(f"training.lr={t.lr!r} must be a learning rate in (0, 1]")
        if not _number_in(t.weight_decay, 0.0, math.inf):
            problems.append(f"training.weight_decay={t.weight_decay!r} must be a number >= 0")
        if not _int_at_least(t.warmup_steps, 0):
            problems.append(f"training.warmup_steps={t.warmup_steps!r} must be an integer >= 0")
        if not _number_in(t.min_lr_ratio, 0.0, 1.0):
            problems.append(f"training.min_lr_ratio={t.min_lr_ratio!r} must be in [0, 1]")
        if not _int_at_least(t.max_epochs, 1):
            problems.append(f"training.max_epochs={t.max_epochs!r} must be an integer >= 1")
        if t.max_steps is not None and not _int_at_least(t.max_steps, 1):
            problems.append(f"training.max_steps={t.max_steps!r} must be an integer >= 1, or "
                            "null for no step bound")
        if t.ema_halflife_images is not None and not (
                _number_in(t.ema_halflife_images, 0.0, math.inf) and t.ema_halflife_images > 0):
            problems.append(f"training.ema_halflife_images={t.ema_halflife_images!r} must be "
                            "a number of images > 0, or null for no EMA")
        if not isinstance(t.compile, bool):
            problems.append(f"training.compile={t.compile!r} must be true or false")
        if t.guide_at is not None and not (_number_in(t.guide_at, 0.0, 1.0) and t.guide_at > 0):
            problems.append(f"training.guide_at={t.guide_at!r} must be in (0, 1], the share "
                            f"of the run, or null for no early snapshot; {SUGGESTED_GUIDE_AT} "
                            "is typical")
        s = self.sampling
        problems += sampling_problems(s.guidance, s.num_steps, s.sampler, s.guidance_interval,
                                      prefix="sampling.", guide=s.guide)
        if not (_number_in(s.shift, 0.0, math.inf) and s.shift > 0):
            problems.append(f"sampling.shift={s.shift!r} must be a number > 0 (1 = uniform)")
        if s.condition_from != AUTO_CONDITION_FROM and not (
                _number_in(s.condition_from, 0.0, 1.0) and s.condition_from > 0):
            problems.append(f"sampling.condition_from={s.condition_from!r} must be a sampler "
                            f"time in (0, 1] (1 = conditioned throughout; 0.8 withholds the "
                            f"condition for the first fifth) or {AUTO_CONDITION_FROM!r}")
        return problems


def preset_recipe(preset: str) -> GeneratorRecipe:
    """The settings a preset starts from: "fast" fits a 2-core CPU in a minute or two
    without a time limit; "best" trains longer with two residual blocks per level, a
    wider condition and a lower rate (not re-measured when "fast" moved to 3e-3)."""
    if preset == "best":
        return GeneratorRecipe(
            network=GeneratorNetworkRecipe(num_res_blocks=2, cond_dim=128),
            training=GeneratorTrainingRecipe(lr=1e-3, max_epochs=100))
    if preset != "fast":
        raise ConfigError(f"preset={preset!r} must be one of {list(PRESETS)}")
    return GeneratorRecipe()


def sampling_recipe(*, sampler: str = DEFAULT_SAMPLER, num_steps: int = DEFAULT_NUM_STEPS,
                    guidance: float = DEFAULT_GUIDANCE,
                    guidance_interval=DEFAULT_GUIDANCE_INTERVAL, guide: str = DEFAULT_GUIDE,
                    overrides: dict | None = None) -> SamplingRecipe:
    """The sampling defaults from the Generator's arguments and the ``sampling.*``
    overrides (sampling is not trained, so these are read again at every call)."""
    sampling = SamplingRecipe(sampler=sampler, num_steps=num_steps, guidance=guidance,
                              guidance_interval=_tuple(guidance_interval), guide=guide)
    changes = {k: v for k, v in dotted_keys(overrides).items() if k.startswith("sampling.")}
    return override(GeneratorRecipe(sampling=sampling), changes).sampling


def argument_problems(*, overrides: dict | None = None, **arguments) -> list[str]:
    """What is wrong with the Generator's recipe arguments and ``overrides`` (the keyword
    arguments of :func:`resolve_generator` but the table), before any data is read."""
    base, overridden, named = _from_arguments(**arguments), dotted_keys(overrides), []
    try:
        recipe = override(base, overrides)
    except ConfigError as exc:  # unknown keys: name them, and check the known ones too
        named.append(str(exc))
        known = {k: v for k, v in overridden.items() if _is_field(k)}
        try:
            recipe = override(base, known)
        except ConfigError:
            return named
    for problem in recipe.problems():
        field_name = problem.split("=", 1)[0]
        argument = ARGUMENT_FIELDS.get(field_name)
        # A field set by an argument is reported by the argument's name, as the user wrote it.
        if argument is not None and field_name not in overridden:
            problem = argument + problem[len(field_name):]
        named.append(problem)
    return named


def condition_columns(condition) -> list[str]:
    """The Generator's ``condition`` argument as a list of column names."""
    if condition is None:
        return []
    return [condition] if isinstance(condition, str) else list(condition)


def generator_param_problems(params: dict) -> list[str]:
    """Everything wrong with the Generator's constructor arguments (``get_params()``),
    each problem naming its argument, before any data is read."""
    problems = common_param_problems(params, columns_example="{'photo': 'image'}")
    image, cond = params["image"], params["condition"]
    if not isinstance(image, str) or not image:
        problems.append(f"image={image!r} must be a column name (a non-empty string)")
    if cond is not None and not isinstance(cond, str) and not (
            isinstance(cond, list | tuple) and all(isinstance(c, str) for c in cond)):
        problems.append(f"condition={cond!r} must be None, a column name or a list of them")
    elif len(set(condition_columns(cond))) != len(condition_columns(cond)):
        problems.append(f"condition={cond!r} names a column twice")
    elif image in condition_columns(cond):
        problems.append(f"condition={cond!r} includes the image column {image!r} "
                        "itself; condition on other columns")
    if params["image_channels"] not in (None, 1, 3):
        problems.append(f"image_channels={params['image_channels']!r} must be 1, 3 or None")
    if params["preset"] not in PRESETS:
        problems.append(f"preset={params['preset']!r} must be one of {list(PRESETS)}")
    recipe = params["recipe"]
    if recipe is not None and not isinstance(recipe, dict):
        problems.append(f"recipe={recipe!r} must be a dict of recipe fields, e.g. "
                        "{'network.base_channels': 24}")
    else:  # the arguments the recipe is made of, and its overrides
        problems += argument_problems(overrides=recipe,
                                      **{name: params[name] for name in RECIPE_ARGUMENTS})
    return problems


def call_sampling(params: dict, *, num_steps=None, guidance=None, sampler=None,
                  auto_guidance: float = FALLBACK_GUIDANCE,
                  auto_condition_from: float = FALLBACK_CONDITION_FROM) -> SamplingRecipe:
    """The sampling settings of one sampling call: its arguments where given, else the
    Generator's (``params``: its ``get_params()``; ``auto_guidance`` and
    ``auto_condition_from``: the numbers its ``"auto"`` settings stand for); every problem
    in one error."""
    settings = sampling_recipe(sampler=params["sampler"], num_steps=params["num_steps"],
                               guidance=params["guidance"],
                               guidance_interval=params["guidance_interval"],
                               guide=params.get("guide", DEFAULT_GUIDE),
                               overrides=params["recipe"])
    given = {"num_steps": num_steps, "guidance": guidance, "sampler": sampler}
    settings = replace(settings, **{k: v for k, v in given.items() if v is not None})
    if settings.guidance == AUTO_GUIDANCE:
        settings = replace(settings, guidance=auto_guidance)
    if settings.condition_from == AUTO_CONDITION_FROM:
        settings = replace(settings, condition_from=auto_condition_from)
    problems = sampling_problems(settings.guidance, settings.num_steps, settings.sampler,
                                 settings.guidance_interval, guide=settings.guide)
    if problems:
        raise ConfigError("; ".join(problems))
    return replace(settings, num_steps=int(settings.num_steps), guidance=float(settings.guidance))


def generation_text_kind(text_encoder: str) -> str:
    """``"auto"`` resolved for generation: hashed n-grams beside MiniLM's sentence vector,
    since a prompt names what to draw in literal words (bench/RESULTS.md,
    'text_to_image_shapes'); the predictor's ``"auto"`` stays MiniLM alone."""
    if text_encoder != "auto":
        return text_encoder
    return "minilm+hashed" if minilm_available() else "hashed"


def check_count(name: str, value) -> None:
    """A sampling call's count (``n``, ``batch_size``): an integer >= 1."""
    if not is_int(value) or value < 1:
        raise ConfigError(f"{name}={value!r} must be an integer >= 1")


# Bytes per pixel value a sampling call holds at once: its float32 noise, the float32
# images it integrates to and their uint8 copy.
SAMPLE_BYTES_PER_VALUE = 9
SAMPLE_MEMORY_SHARE = 0.5  # of the memory available, what one sampling call may take


def check_sample_memory(n: int, image_shape, available_bytes: int) -> None:
    """``n`` images of ``image_shape`` (C, H, W) fit in a share of ``available_bytes``; else
    one error naming ``n``, the memory it needs and the most that fit."""
    per_image = SAMPLE_BYTES_PER_VALUE * math.prod(image_shape)
    most = int(SAMPLE_MEMORY_SHARE * available_bytes // per_image)
    if n > most:
        c, h, w = image_shape
        raise ConfigError(
            f"n={n:,} images of {w}x{h}x{c} need about {n * per_image / 2**30:,.1f} GiB, more "
            f"than half of the {available_bytes / 2**30:.1f} GiB available; ask for at most "
            f"{most:,} per call (and call again with another seed for more)")


def check_seed(seed) -> None:
    """A sampling call's seed: an integer >= 0."""
    if not is_int(seed) or seed < 0:
        raise ConfigError(f"seed={seed!r} must be an integer >= 0")


def check_strength(strength, hint: str) -> None:
    """An edit's strength, in [0, 1]; ``hint`` says what it means for this call."""
    if not (isinstance(strength, numbers.Real) and not isinstance(strength, bool)
            and 0.0 <= strength <= 1.0):
        raise ConfigError(f"strength={strength!r} must be in [0, 1]{hint}")


def resolve_generator(schema: Schema, num_train_rows: int, image_shape: tuple[int, int, int],
                      *, image_column: str = "image", overrides: dict | None = None,
                      **arguments) -> GeneratorRecipe:
    """The recipe for ``num_train_rows`` images of ``image_shape`` (C, H, W).

    ``arguments`` are the Generator's: ``preset``, ``batch_size``, ``lr`` (None keeps the
    preset's), ``ema_halflife_images``, ``condition_dropout``, ``coord_channels``,
    ``spatial_condition``, ``sampler``, ``num_steps``, ``guidance``, ``guidance_interval``.
    In order: the preset; the arguments; the UNet's widths and depth for the image side
    (:meth:`UNet.sizing_for`); the spatial condition map only when some column of
    ``schema`` conditions the image; then ``overrides``; a warm-up of a twentieth of the
    epoch- (or ``max_steps``-) bounded run, at most 50 steps (unless ``training.warmup_steps`` is overridden);
    validated once.
    """
    recipe = _from_arguments(**arguments)
    conditional = any(name != image_column for name in schema.columns)
    network = replace(recipe.network, **UNet.sizing_for(image_shape[1]),
                      spatial_condition=recipe.network.spatial_condition and conditional)
    recipe = override(replace(recipe, network=network), overrides)
    t = recipe.training
    if "training.warmup_steps" not in dotted_keys(overrides) and _int_at_least(
            t.batch_size, 1) and _int_at_least(t.max_epochs, 1):
        steps_per_epoch = math.ceil(num_train_rows / t.batch_size)
        planned = (t.max_steps if _int_at_least(t.max_steps, 1)
                   else steps_per_epoch * t.max_epochs)
        warmup = min(50, max(1, planned // 20))
        recipe = replace(recipe, training=replace(t, warmup_steps=warmup))
    recipe.validate()
    return recipe


def _from_arguments(*, preset: str = "fast", batch_size: int = DEFAULT_BATCH_SIZE,
                    lr: float | None = None,
                    ema_halflife_images: float | None = DEFAULT_EMA_HALFLIFE_IMAGES,
                    condition_dropout: float = DEFAULT_CONDITION_DROPOUT,
                    coord_channels: bool = False, spatial_condition: bool = True,
                    sampler: str = DEFAULT_SAMPLER, num_steps: int = DEFAULT_NUM_STEPS,
                    guidance: float = DEFAULT_GUIDANCE,
                    guidance_interval=DEFAULT_GUIDANCE_INTERVAL,
                    guide: str = DEFAULT_GUIDE) -> GeneratorRecipe:
    """The preset with the constructor's arguments in place (an unknown preset: "fast",
    the Generator reports it)."""
    recipe = preset_recipe(preset if preset in PRESETS else "fast")
    return GeneratorRecipe(
        network=replace(recipe.network, coord_channels=coord_channels,
                        spatial_condition=spatial_condition),
        condition=ConditionRecipe(condition_dropout),
        training=replace(recipe.training, batch_size=batch_size,
                         lr=recipe.training.lr if lr is None else lr,
                         ema_halflife_images=ema_halflife_images),
        sampling=SamplingRecipe(sampler=sampler, num_steps=num_steps, guidance=guidance,
                                guidance_interval=_tuple(guidance_interval), guide=guide))


def legacy_recipe(config: dict) -> GeneratorRecipe:
    """The recipe of a folder saved before recipes existed, from its ``config.json``
    (the preset's settings, the optimiser, objective and sampler sections it held)."""
    unet, preset = config["network"]["unet"], config["preset"]
    optimizer, objective, sampler = config["optimizer"], config["objective"], config["sampler"]
    training = GeneratorTrainingRecipe(
        batch_size=optimizer["batch_size"], lr=optimizer["lr"],
        weight_decay=optimizer["weight_decay"], max_epochs=preset["max_epochs"],
        ema_halflife_images=objective["ema_halflife_images"])
    steps_per_epoch = math.ceil(config["training"]["num_images"] / training.batch_size)
    training = replace(training, warmup_steps=min(50, max(1, steps_per_epoch
                                                          * training.max_epochs // 20)))
    network = GeneratorNetworkRecipe(
        base_channels=unet["base_channels"], channel_mults=tuple(unet["channel_mults"]),
        num_res_blocks=unet["num_res_blocks"],
        attention_resolutions=tuple(unet["attention_resolutions"]), cond_dim=preset["cond_dim"],
        coord_channels=unet.get("coord_channels", False),
        spatial_condition=unet.get("spatial_condition", False))
    interval = config["params"].get("guidance_interval",
                                    sampler.get("guidance_interval", LEGACY_GUIDANCE_INTERVAL))
    sampling = SamplingRecipe(sampler=sampler["method"], num_steps=sampler["num_steps"],
                              guidance=sampler["guidance"], guidance_interval=_tuple(interval),
                              shift=sampler.get("shift", DEFAULT_SHIFT))
    return GeneratorRecipe(network, ConditionRecipe(objective["condition_dropout"]), training,
                           sampling)


def sampling_problems(guidance, num_steps, sampler, guidance_interval=DEFAULT_GUIDANCE_INTERVAL,
                      *, prefix: str = "", guide: str = DEFAULT_GUIDE) -> list[str]:
    """Out-of-range sampling settings, each naming the setting, the value and the range."""
    problems = []
    lo, hi = GUIDANCE_RANGE
    if guidance != AUTO_GUIDANCE and not (_number_in(guidance, lo, hi)):
        problems.append(f"{prefix}guidance={guidance!r} must be a number in [{lo:g}, {hi:g}] "
                        f"(1 = no guidance; 1.5-3 is typical) or {AUTO_GUIDANCE!r}")
    lo_steps, hi_steps = NUM_STEPS_RANGE
    if not (isinstance(num_steps, numbers.Integral) and not isinstance(num_steps, bool)
            and lo_steps <= num_steps <= hi_steps):
        problems.append(f"{prefix}num_steps={num_steps!r} must be an integer in [{lo_steps}, "
                        f"{hi_steps}]; 8-32 is typical")
    if sampler not in SAMPLERS:
        problems.append(f"{prefix}sampler={sampler!r} must be one of {list(SAMPLERS)}")
    interval = guidance_interval
    if not (isinstance(interval, list | tuple) and len(interval) == 2
            and all(_number_in(v, 0.0, 1.0) for v in interval) and interval[0] < interval[1]):
        problems.append(f"{prefix}guidance_interval={interval!r} must be (lo, hi) with "
                        f"0 <= lo < hi <= 1, the times t where guidance applies; default "
                        f"{DEFAULT_GUIDANCE_INTERVAL}")
    if guide not in GUIDES:
        problems.append(f"{prefix}guide={guide!r} must be one of {list(GUIDES)}")
    return problems


def _is_field(key: str) -> bool:
    section, _, name = key.partition(".")
    kind = {f.name: f.type for f in fields(GeneratorRecipe)}.get(section)
    return kind is not None and name in {f.name for f in fields(globals()[kind])}


def _tuple(value):
    return tuple(value) if isinstance(value, list | tuple) else value


def _int_at_least(value, low: int) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= low


def _number_in(value, low: float, high: float, *, high_open: bool = False) -> bool:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) \
            or not math.isfinite(value):
        return False
    return low <= value < high if high_open else low <= value <= high
