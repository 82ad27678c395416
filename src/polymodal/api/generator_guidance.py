"""``guidance="auto"``: the guidance a fitted class-conditional generator samples with,
chosen after training as the least scale at which its samples are as recognisable as real
images of their class (:mod:`polymodal.evaluate.guidance_check`).

Why: on data whose condition the network learns well (digits) unguided samples are
already as recognisable as real ones, and guidance only costs recall and FD; on harder
data (Fashion-MNIST after a short run) it is what makes the class show
(bench/RESULTS.md, 'generator_guidance'). The check needs one category condition; any
other generator samples at ``FALLBACK_GUIDANCE``.
"""

from __future__ import annotations

import time

from polymodal.errors import ConfigError
from polymodal.evaluate.guidance_check import (
    CANDIDATES,
    RecognitionCheck,
    choose_guidance,
    reaches,
)
from polymodal.recipes.generator import AUTO_GUIDANCE, FALLBACK_GUIDANCE
from polymodal.train.generator_fit import sampling_seconds

CHECK_IMAGES = 300  # samples per guidance scale (balanced over the classes)
MIN_CHECK_IMAGES = 60  # fewer than this fit in the time left: no check, the fallback
# Of the time left when training starts, this share is kept for the check (with a limit).
CHECK_SHARE = 0.05


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


def seconds_per_image(images_per_s: float, *, num_steps: int, sampler: str) -> float:
    """Estimated seconds to sample one image at every candidate scale."""
    return sum(sampling_seconds(images_per_s, num_steps=num_steps, sampler=sampler, guidance=g)
               for g in CANDIDATES)


def auto_guidance(generator, images, rows, *, seconds: float | None,
                  images_per_s: float) -> tuple[float, dict]:
    """The guidance ``generator`` (fitted, its guidance ``"auto"``) should sample with, and
    the training-log event that says why. ``images``: its (N, C, H, W) uint8 training
    images; ``rows``: their table rows; ``seconds``: the time the check may take (None:
    no limit)."""
    started = time.perf_counter()
    column = check_column(generator.conditions_)
    if column is None:
        return _fallback("the check needs exactly one category condition column")
    settings = generator._sampling()
    n = CHECK_IMAGES
    if seconds is not None:
        per_image = seconds_per_image(images_per_s, num_steps=settings.num_steps,
                                      sampler=settings.sampler)
        n = min(CHECK_IMAGES, int(seconds / per_image))
    if n < MIN_CHECK_IMAGES:
        return _fallback("the time limit left no room for the check")
    values = rows[column].to_numpy(dtype=object)
    try:
        check = RecognitionCheck(images, values, seed=generator.seed)
    except ValueError as exc:
        return _fallback(str(exc))
    # The classes as the generator was given them.
    raw = {str(v): v for v in values[rows[column].notna().to_numpy()]}
    asked = [check.classes[i % len(check.classes)] for i in range(n)]
    accuracy: dict[float, float] = {}
    for guidance in CANDIDATES:  # least first: stop at the first that reaches real images
        try:
            samples = generator.sample(n, conditions={column: [raw[c] for c in asked]},
                                       guidance=guidance, seed=generator.seed)
        except ConfigError as exc:  # e.g. guide="early" without its snapshot: said at sampling
            return _fallback(f"sampling failed: {exc}")
        accuracy[guidance] = round(check.sample_accuracy(samples, asked), 4)
        if reaches(accuracy[guidance], check.real_accuracy):
            break
    chosen = choose_guidance(check.real_accuracy, accuracy)
    return chosen, {
        "event": "guidance", "guidance": chosen, "column": column,
        "real_accuracy": round(check.real_accuracy, 4), "real_images": check.num_real,
        "sample_accuracy": {f"{g:g}": a for g, a in accuracy.items()}, "samples": n,
        "seconds": round(time.perf_counter() - started, 3)}


def describe(event: dict) -> str:
    """One console line for the event of :func:`auto_guidance`."""
    if "reason" in event:
        return f"guidance {event['guidance']:g} (the default; {event['reason']})"
    tried = ", ".join(f"{g}: {a:.3f}" for g, a in event["sample_accuracy"].items())
    return (f"guidance {event['guidance']:g}: the least at which samples of {event['column']!r} "
            f"are as recognisable as real images (a pixel classifier: real "
            f"{event['real_accuracy']:.3f}; samples by guidance {tried})")


def _fallback(reason: str) -> tuple[float, dict]:
    return FALLBACK_GUIDANCE, {"event": "guidance", "guidance": FALLBACK_GUIDANCE,
                               "reason": reason}
