"""``guidance="auto"``: the guidance a fitted class-conditional generator samples with,
chosen after training as the least scale at which its samples are as recognisable as real
images of their class (:mod:`polymodal.evaluate.guidance_check`); at that scale, sampling
without the condition for the first steps (``condition_from`` ``ANNEALED_FROM``: more
variety within a class) is tried too, and kept when it is recognisable enough.

Why: on data whose condition the network learns well (digits) unguided samples are
already as recognisable as real ones, and guidance only costs recall and FD; on harder
data (Fashion-MNIST after a short run) it is what makes the class show
(bench/RESULTS.md, 'generator_guidance'). The check needs one category condition; any
other generator samples at ``FALLBACK_GUIDANCE``, conditioned throughout.
"""

from __future__ import annotations

import time
from dataclasses import replace

from polymodal.errors import ConfigError
from polymodal.evaluate.guidance_check import (
    CANDIDATES,
    RecognitionCheck,
    choose_guidance,
    reaches,
)
from polymodal.recipes.generator import (
    AUTO_CONDITION_FROM,
    AUTO_GUIDANCE,
    FALLBACK_CONDITION_FROM,
    FALLBACK_GUIDANCE,
)
from polymodal.train.generator_fit import sampling_seconds

CHECK_IMAGES = 300  # samples per guidance scale (balanced over the classes)
MIN_CHECK_IMAGES = 60  # fewer than this fit in the time left: no check, the fallback
# Of the time left when training starts, this share is kept for the check (with a limit).
CHECK_SHARE = 0.05
# Sampler time t above which the annealed setting withholds the condition (the upper end
# of the guidance interval): the earliest start that kept digits' class accuracy while
# lifting recall (bench/RESULTS.md, 'generator_guidance').
ANNEALED_FROM = 0.8


def check_column(conditions: dict) -> str | None:
    """The generator's single category condition column, or None when it has another set."""
    if len(conditions) == 1:
        (column, info), = conditions.items()
        if info["modality"] == "categorical":
            return column
    return None


def check_seconds(conditions: dict, guidance, left_s: float | None) -> float:
    """Seconds of ``left_s`` (the limit's time left when training starts) kept for the
    check: none when it will not run."""
    if guidance != AUTO_GUIDANCE or check_column(conditions) is None or left_s is None:
        return 0.0
    return CHECK_SHARE * left_s


def seconds_per_image(images_per_s: float, *, num_steps: int, sampler: str,
                      annealed: bool) -> float:
    """Estimated seconds to sample one image at every setting the check may try: each
    scale, and one annealed setting at the most expensive."""
    costs = [sampling_seconds(images_per_s, num_steps=num_steps, sampler=sampler, guidance=g)
             for g in CANDIDATES]
    return sum(costs) + (max(costs) if annealed else 0.0)


def auto_guidance(generator, images, rows, *, seconds: float | None,
                  images_per_s: float) -> tuple[float, float, dict]:
    """The guidance and ``condition_from`` ``generator`` (fitted, its guidance ``"auto"``)
    should sample with, and the training-log event that says why. ``images``: its
    (N, C, H, W) uint8 training images; ``rows``: their table rows; ``seconds``: the time
    the check may take (None: no limit)."""
    started = time.perf_counter()
    column = check_column(generator.conditions_)
    fixed = generator.recipe_.sampling.condition_from
    if column is None:
        return _fallback("the check needs exactly one category condition column", fixed)
    settings = generator._sampling()
    annealed = fixed == AUTO_CONDITION_FROM  # a condition_from the user set is kept
    conditioned = FALLBACK_CONDITION_FROM if annealed else float(fixed)
    n = CHECK_IMAGES
    if seconds is not None:
        per_image = seconds_per_image(images_per_s, num_steps=settings.num_steps,
                                      sampler=settings.sampler, annealed=annealed)
        n = min(CHECK_IMAGES, int(seconds / per_image))
    if n < MIN_CHECK_IMAGES:
        return _fallback("the time limit left no room for the check", fixed)
    values = rows[column].to_numpy(dtype=object)
    try:
        check = RecognitionCheck(images, values, seed=generator.seed)
    except ValueError as exc:
        return _fallback(str(exc), fixed)
    # The classes as the generator was given them.
    raw = {str(v): v for v in values[rows[column].notna().to_numpy()]}
    asked = [check.classes[i % len(check.classes)] for i in range(n)]
    accuracy: dict[tuple[float, float], float] = {}
    recipe = generator.recipe_

    def score(guidance: float, start: float) -> bool:
        """Sample at this setting (sample() reads condition_from from the resolved recipe);
        whether it reaches real images."""
        generator.recipe_ = replace(recipe, sampling=replace(recipe.sampling,
                                                             condition_from=start))
        samples = generator.sample(n, conditions={column: [raw[c] for c in asked]},
                                   guidance=guidance, seed=generator.seed)
        accuracy[guidance, start] = round(check.sample_accuracy(samples, asked), 4)
        return reaches(accuracy[guidance, start], check.real_accuracy)

    try:
        # The least scale first, conditioned throughout; at the first that reaches real
        # images, annealed too (withholding the condition only makes samples less
        # recognisable, so an annealed setting is worth trying only where this one passes).
        for guidance in CANDIDATES:
            if score(guidance, conditioned):
                if annealed:
                    score(guidance, ANNEALED_FROM)
                break
    except ConfigError as exc:  # e.g. guide="early" without its snapshot: said at sampling
        return _fallback(f"sampling failed: {exc}", fixed)
    finally:
        generator.recipe_ = recipe
    guidance, start = choose_guidance(check.real_accuracy, accuracy)
    return guidance, start, {
        "event": "guidance", "guidance": guidance, "condition_from": start, "column": column,
        "real_accuracy": round(check.real_accuracy, 4), "real_images": check.num_real,
        "sample_accuracy": [{"guidance": g, "condition_from": c, "accuracy": a}
                            for (g, c), a in accuracy.items()],
        "samples": n, "seconds": round(time.perf_counter() - started, 3)}


def describe(event: dict) -> str:
    """One console line for the event of :func:`auto_guidance`."""
    if "reason" in event:
        return f"guidance {event['guidance']:g} (the default; {event['reason']})"
    tried = ", ".join(f"{_setting(s['guidance'], s['condition_from'])}: {s['accuracy']:.3f}"
                      for s in event["sample_accuracy"])
    return (f"guidance {_setting(event['guidance'], event['condition_from'])}: the least at "
            f"which samples of {event['column']!r} are as recognisable as real images (a "
            f"pixel classifier: real {event['real_accuracy']:.3f}; samples by guidance {tried})")


def _setting(guidance: float, condition_from: float) -> str:
    annealed = f" (unconditional above t={condition_from:g})" if condition_from < 1 else ""
    return f"{guidance:g}{annealed}"


def _fallback(reason: str, condition_from) -> tuple[float, float, dict]:
    start = (FALLBACK_CONDITION_FROM if condition_from == AUTO_CONDITION_FROM
             else float(condition_from))
    return FALLBACK_GUIDANCE, start, {"event": "guidance", "guidance": FALLBACK_GUIDANCE,
                                      "condition_from": start, "reason": reason}
