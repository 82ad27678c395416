"""Generative augmentation: add generated images of each class to a scarce training table.

A class-conditional :class:`~polymodal.api.generator.Generator` is trained on the real
training rows (or a fitted one is reused), asked for new images of each class, and those
images join the table as extra rows whose label is the class asked for. Every added row
is marked ``True`` in a boolean column (``is_synthetic`` unless told otherwise) so that
it can be kept out of validation and test sets, and counted.

:func:`augment_table` does, in order:

1. read the table; find the label and image columns; count the real labelled rows per class;
2. decide how many images each class gets (:func:`synthetic_counts`): a budget of
   ``per_class`` x (number of classes) or ``ratio`` x (real rows), given to the rarest
   classes first, so the augmented table is as balanced as the budget allows;
3. train the generator on the real rows (or check the one given knows the label column
   and every class that needs images);
4. sample the images, class by class, deterministically for ``seed``;
5. optionally filter them: a :class:`~polymodal.workflows.judge.Judge` trained on the real
   images drops the samples it does not recognise as their class, and the deficit is
   sampled again (at most ``FILTER_ROUNDS`` rounds); dropped counts are reported per class;
6. append the kept images as rows (the other columns missing) and return the table with
   a summary (counts per class, generator, filter statistics, timings).

:func:`~polymodal.workflows.augment_folder.augment_to_folder` is what ``polymodal augment``
runs: the same, written to a folder as a table that reads back, optionally with a
comparison of a real-only and an augmented predictor on held-out real rows.

``Predictor.fit(train, augment=AugmentConfig(...))`` calls the config (it is the
predictor's synthesizer) after its validation split, so generated rows join the training
rows only, never validation.

Reference: generative data augmentation as in Antoniou et al. 2017 ("Data Augmentation
Generative Adversarial Networks"); the judge filter follows the common practice of
keeping only samples a classifier trained on real data assigns to their class.
"""

from __future__ import annotations

import math
import numbers
import os
import time
from dataclasses import dataclass, fields, replace
from pathlib import Path

import numpy as np
import pandas as pd

from polymodal.data.cells import present_mask
from polymodal.data.readers import read_table
from polymodal.data.schema import infer_schema
from polymodal.data.synthetic import SYNTHETIC_COLUMN, concat_rows, split_marked
from polymodal.errors import ConfigError, DataError, SchemaError
from polymodal.recipes.base import seed_problem
from polymodal.workflows.judge import Judge, sorted_classes

DEFAULT_RATIO = 1.0  # synthetic rows per real labelled row when neither per_class nor ratio is set
SAMPLE_CHUNK = 500  # images per Generator.sample call: bounds memory, not results
TIMING_CHUNK = 16  # under a time limit, the first call's images: it times the pace
DEADLINE_CHUNK = 64  # under a time limit, the later calls' (sampling stops between calls)
FILTER_ROUNDS = 3  # sampling rounds at most when the filter drops images (first + 2 refills)
DEFAULT_JUDGE_TIME_LIMIT_S = 30.0
# Within a predictor's share of its budget (AugmentConfig.__call__): the generator's and
# the filter judge's training; sampling the images takes the rest.
GENERATOR_SHARE, JUDGE_SHARE = 0.75, 0.1


# ------------------------------------------------------------------------------ options


@dataclass
class AugmentConfig:
    """Settings of generative augmentation, and the synthesizer ``Predictor.fit(augment=...)``
    calls (:meth:`__call__`).

    Attributes:
        generator: a fitted ``Generator``, the folder of a saved one, an unfitted
            ``Generator`` (fitted here on the real rows), or ``None`` to train a
            class-conditional one on the real rows.
        image: the image column; ``None`` finds the table's only image column.
        per_class: synthetic images per class on average (budget ``per_class`` x classes);
            ``0`` adds none (only honours rows already marked).
        ratio: synthetic images per real labelled row (budget ``ratio`` x rows).
            Neither given: ``ratio=1.0``.
        time_limit: seconds to train the generator; ``None`` trains its preset's epochs.
        filter: drop samples the real-data judge does not recognise as their class.
        judge: a trained :class:`~polymodal.workflows.judge.Judge` (or its folder) for the
            filter; ``None`` trains one on the real images.
        judge_time_limit: seconds to train that judge.
        marker: the boolean column that marks synthetic rows.
        num_steps, guidance: sampler settings; ``None`` uses the generator's defaults.
        seed: seeds the generator, the sampling noise and the judge.
        verbosity: 0 silent, 1 one line per stage.
        device: where the generator trains and samples (``Generator(device=)``).
    """

    generator: object = None
    image: str | None = None
    per_class: int | None = None
    ratio: float | None = None
    time_limit: float | None = None
    filter: bool = False
    judge: object = None
    judge_time_limit: float = DEFAULT_JUDGE_TIME_LIMIT_S
    marker: str = SYNTHETIC_COLUMN
    num_steps: int | None = None
    guidance: float | None = None
    seed: int = 0
    verbosity: int = 1
    device: str = "auto"

    @classmethod
    def from_option(cls, augment, **defaults) -> AugmentConfig | None:
        """The config for an augmentation option: ``None`` (no augmentation), ``"auto"``, a
        ``Generator``, a saved generator's folder, or a dict of fields.
        ``defaults`` fill fields the option leaves out (the predictor's seed, verbosity)."""
        if augment is None or augment is False:
            return None
        names = {f.name for f in fields(cls)}
        if isinstance(augment, dict):
            unknown = sorted(set(augment) - names)
            if unknown:
                raise ConfigError(f"augment: unknown option(s) {unknown}; the options are "
                                  f"{sorted(names)}")
            options = {**defaults, **augment}
        elif isinstance(augment, str) and augment == "auto":
            options = dict(defaults)
        elif _is_generator(augment) or (isinstance(augment, str | os.PathLike)
                                        and Path(augment).is_dir()):
            options = {**defaults, "generator": augment}
        else:
            raise ConfigError(f"augment={augment!r} is not understood; pass None, 'auto', a "
                              "Generator, the folder of a saved generator, or a dict of options "
                              "such as {'ratio': 1.0, 'filter': True}")
        config = cls(**options)
        config.validate()
        return config

    def validate(self) -> None:
        """Check every field once and report all problems in one ConfigError."""
        problems = []

        def is_int(v) -> bool:
            return isinstance(v, numbers.Integral) and not isinstance(v, bool)

        def is_num(v) -> bool:
            return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)

        if self.per_class is not None and self.ratio is not None:
            problems.append(f"per_class={self.per_class!r} and ratio={self.ratio!r} were both "
                            "given; pass one of them")
        if self.per_class is not None and (not is_int(self.per_class) or self.per_class < 0):
            problems.append(f"per_class={self.per_class!r} must be an integer >= 0")
        if self.ratio is not None and (not is_num(self.ratio) or self.ratio < 0):
            problems.append(f"ratio={self.ratio!r} must be a number >= 0, e.g. 1.0")
        if self.time_limit is not None and not (is_num(self.time_limit) and self.time_limit > 0):
            problems.append(f"time_limit={self.time_limit!r} must be seconds > 0, or None")
        if not isinstance(self.filter, bool):
            problems.append(f"filter={self.filter!r} must be True or False")
        if not (is_num(self.judge_time_limit) and self.judge_time_limit > 0):
            problems.append(f"judge_time_limit={self.judge_time_limit!r} must be seconds > 0")
        if not isinstance(self.marker, str) or not self.marker:
            problems.append(f"marker={self.marker!r} must be a column name")
        if self.image is not None and not isinstance(self.image, str):
            problems.append(f"image={self.image!r} must be a column name or None")
        if self.num_steps is not None and (not is_int(self.num_steps) or self.num_steps < 1):
            problems.append(f"num_steps={self.num_steps!r} must be an integer >= 1 or None")
        if self.guidance is not None and not is_num(self.guidance):
            problems.append(f"guidance={self.guidance!r} must be a number or None")
        if (problem := seed_problem(self.seed)) is not None:
            problems.append(problem)
        if self.generator is not None and not (
                _is_generator(self.generator) or isinstance(self.generator, str | os.PathLike)):
            problems.append(f"generator={self.generator!r} must be a Generator, the folder of "
                            "a saved one, or None")
        if problems:
            raise ConfigError("augment: " + "; ".join(problems))

    def __call__(self, train: pd.DataFrame, label: str, *,
                 time_limit_s: float | None = None) -> tuple[pd.DataFrame, dict]:
        """Synthetic rows for the real labelled training rows ``train`` and their summary:
        what ``Predictor.fit(augment=config)`` calls after its validation split, so the
        generator learns from the training rows alone and nothing synthetic validates.

        ``time_limit_s`` is the predictor's share of its budget for this: the generator
        trains for at most GENERATOR_SHARE of it and the filter's judge for at most
        JUDGE_SHARE (or their own limits, if shorter); sampling takes the rest.
        """
        config = self
        if time_limit_s is not None:
            config = replace(self, time_limit=min(self.time_limit or math.inf,
                                                  max(1.0, GENERATOR_SHARE * time_limit_s)),
                             judge_time_limit=min(self.judge_time_limit,
                                                  max(1.0, JUDGE_SHARE * time_limit_s)))
        deadline = None if time_limit_s is None else time.perf_counter() + time_limit_s
        return generate_rows(train, label, config, deadline=deadline)

    def budget_rule(self) -> dict:
        """The rule that sizes the synthetic set, as it will be reported."""
        if self.per_class is not None:
            return {"per_class": self.per_class}
        return {"ratio": DEFAULT_RATIO if self.ratio is None else float(self.ratio)}


def _is_generator(value) -> bool:
    """A Generator (or anything with its sampling surface), without importing the module."""
    return hasattr(value, "sample") and hasattr(value, "get_params") and hasattr(value, "image")


def _say(config: AugmentConfig, message: str) -> None:
    if config.verbosity > 0:
        from rich.console import Console

        Console(stderr=True).print(message, highlight=False, soft_wrap=True)


# ------------------------------------------------------------------------ balancing


def synthetic_counts(real_counts: dict, *, per_class: int | None = None,
                     ratio: float | None = None) -> dict:
    """How many synthetic images each class gets, rarest classes first.

    The budget is ``per_class * len(real_counts)`` or ``round(ratio * sum(real_counts))``
    (``ratio=1.0`` when neither is given). It is poured into the classes like water into
    connected vessels: the class with the fewest rows (real + synthetic so far) gets the
    next image, ties going to the class listed first. So a balanced table gets exactly
    ``per_class`` per class, and a skewed one is levelled before anything else grows.

    >>> synthetic_counts({"a": 10, "b": 2}, per_class=5)
    {'a': 1, 'b': 9}
    """
    if per_class is not None and ratio is not None:
        raise ConfigError("pass per_class or ratio, not both")
    if per_class is not None:
        budget = int(per_class) * len(real_counts)
    else:
        budget = int(round((DEFAULT_RATIO if ratio is None else ratio) * sum(real_counts.values())))
    classes = list(real_counts)
    counts = np.array([int(real_counts[c]) for c in classes], dtype=np.int64)
    extra = np.zeros(len(classes), dtype=np.int64)
    if budget <= 0 or not classes:
        return {c: 0 for c in classes}
    # Sort by count (stable: ties keep the caller's order), then raise the lowest `k`
    # classes together to the next class's count while the budget lasts.
    order = np.argsort(counts, kind="stable")
    level, left, k = counts[order[0]], budget, 1
    while k <= len(classes):
        next_level = counts[order[k]] if k < len(classes) else None
        step_cost = None if next_level is None else k * (next_level - level)
        if step_cost is not None and step_cost <= left:
            left -= step_cost
            level, k = next_level, k + 1
            continue
        rise, remainder = divmod(left, k)  # the last level reached is shared by these k
        level += rise
        extra[order[:k]] = level - counts[order[:k]]
        # The remainder goes one each to the first classes of the k, in the caller's order.
        for i in sorted(order[:k])[:remainder]:
            extra[i] += 1
        break
    return {c: int(e) for c, e in zip(classes, extra, strict=True)}


# ----------------------------------------------------------------------- generation


def find_image_column(table: pd.DataFrame, label: str, image: str | None, seed: int) -> str:
    """The image column to generate: ``image`` if given (checked), else the table's only one."""
    if image is not None:
        if image not in table.columns:
            raise SchemaError(f"image column {image!r} is not in the table; its columns are "
                              f"{list(table.columns)[:30]}")
        return image
    schema = infer_schema(table, label=label, seed=seed)
    images = schema.by_modality("image")
    if len(images) != 1:
        raise SchemaError(f"augmentation needs one image column to generate, and the table has "
                          f"{len(images)} ({images}); name it with image=... (--image COL)")
    return images[0]


def _class_counts(labels: pd.Series) -> dict:
    """{class value: real rows}, classes in a stable order (numeric when comparable)."""
    counts = labels.value_counts(sort=False)
    return {c: int(counts[c]) for c in sorted_classes(list(counts.index))}


def _resolve_generator(config: AugmentConfig, real: pd.DataFrame, label: str, image: str):
    """(fitted generator, how it was obtained): trained here, given, or loaded."""
    from polymodal.api.generator import Generator

    given = config.generator
    if given is None:
        generator = Generator(image=image, condition=[label], time_limit=config.time_limit,
                              seed=config.seed, verbosity=config.verbosity,
                              device=config.device)
        source = "trained on the real training rows"
    elif isinstance(given, str | os.PathLike):
        generator, source = (Generator.load(given, device=config.device),
                             f"loaded from {Path(given).absolute()}")
    else:
        generator, source = given, "given"
    if not hasattr(generator, "network_"):
        _say(config, f"augment: training a generator on {len(real):,} real rows")
        limits = [t for t in (generator.time_limit, config.time_limit) if t is not None]
        # The config's limit binds when shorter (a predictor's share, AugmentConfig.__call__).
        generator.set_params(time_limit=min(limits) if limits else None).fit(real)
        source = "trained on the real training rows"
    conditions = getattr(generator, "conditions_", {})
    if conditions.get(label, {}).get("modality") != "categorical":
        raise ConfigError(f"the generator ({source}) is conditioned on {list(conditions)}, not "
                          f"on the label column {label!r} as a category; train one with "
                          f"condition=[{label!r}] (--condition {label}), or leave the generator "
                          "out to train one")
    if generator.image != image:
        raise ConfigError(f"the generator makes column {generator.image!r} but the image column "
                          f"to augment is {image!r}; pass image={generator.image!r} or another "
                          "generator")
    return generator, source


def _sample_classes(generator, wanted: dict, label: str, config: AugmentConfig,
                    seed_offset: int, deadline: float | None = None
                    ) -> tuple[np.ndarray, list]:
    """Images uint8 (N, H, W, C) for ``wanted`` {class: count}, and each one's class.

    With a ``deadline`` (a ``time.perf_counter()`` value) sampling stops at the last
    chunk that fits before it; the classes take turns, so each gets its share of what
    was sampled, and the chunks are small, the first to time the pace.
    """
    asked = [c for c, n in wanted.items() for _ in range(n)]
    if deadline is not None:  # round robin: the k-th image of every class, then the next
        turns = [(k, i) for i, n in enumerate(wanted.values()) for k in range(n)]
        classes = list(wanted)
        asked = [classes[i] for _, i in sorted(turns)]
    begin, k, chunks, per_image_s = 0, 0, [], None
    while begin < len(asked):
        size = SAMPLE_CHUNK
        if deadline is not None:
            # Sizes fixed in advance (not fitted to the time left), so that the same seed
            # gives the same images whenever the deadline does not cut sampling short.
            size = TIMING_CHUNK if k == 0 else DEADLINE_CHUNK
            needed_s = 0.0 if per_image_s is None else per_image_s * min(size, len(asked) - begin)
            if time.perf_counter() + needed_s > deadline:
                break
        part = asked[begin:begin + size]
        start = time.perf_counter()
        # Class values go in as text: the generator's vocabulary holds the label's text form.
        chunks.append(generator.sample(len(part), conditions={label: [str(c) for c in part]},
                                       num_steps=config.num_steps, guidance=config.guidance,
                                       seed=config.seed + seed_offset + k))
        per_image_s = (time.perf_counter() - start) / len(part)
        begin, k = begin + len(part), k + 1
    if not chunks:
        return np.zeros((0, 0, 0, 0), dtype=np.uint8), []
    return np.concatenate(chunks), asked[:begin]


def _real_images(generator, real: pd.DataFrame, label: str) -> tuple[np.ndarray, list]:
    """The real rows' images at the generator's size (uint8 (N, H, W, C)) and labels."""
    from polymodal.workflows.generator_eval import table_images

    images, decoded = table_images(generator, real)
    return images, real[label][decoded].tolist()


def _resolve_judge(config: AugmentConfig, images: np.ndarray, labels: list) -> tuple[Judge, str]:
    """The filter's judge: given, loaded, or trained on the real images and labels."""
    if isinstance(config.judge, Judge):
        return config.judge, "given"
    if isinstance(config.judge, str | os.PathLike):
        return Judge.load(config.judge), f"loaded from {Path(config.judge).absolute()}"
    judge = Judge.train(images, labels, time_limit_s=config.judge_time_limit, seed=config.seed)
    return judge, "trained on the real training rows"


def generate_rows(real: pd.DataFrame, label: str, config: AugmentConfig, *,
                  deadline: float | None = None) -> tuple[pd.DataFrame, dict]:
    """Synthetic rows for the labelled real rows ``real`` (steps 2-6 of the module docstring);
    with a ``deadline`` (a ``time.perf_counter()`` value) sampling stops before it, and
    the summary's ``sampling.stopped_by_time_limit`` says whether it had to.

    Returns the new rows (label, image as uint8 arrays, marker ``True``; every other
    column missing) and the summary. ``real`` must hold labelled real rows only.
    """
    start = time.perf_counter()
    real_counts = _class_counts(real[label])
    rule = config.budget_rule()
    wanted = synthetic_counts(real_counts, **rule)
    # Nothing to generate (per_class=0): no image column or generator is needed.
    image = (config.image if sum(wanted.values()) == 0
             else find_image_column(real, label, config.image, config.seed))
    summary: dict = {
        "marker": config.marker, "label": label, "image": image, "rule": rule,
        "num_real": int(sum(real_counts.values())), "num_synthetic": 0,
        "per_class": {str(c): {"real": n, "requested": wanted[c], "generated": 0, "dropped": 0,
                               "synthetic": 0} for c, n in real_counts.items()},
        "generator": None, "filter": None,
        "sampling": {"num_steps": config.num_steps, "guidance": config.guidance,
                     "seed": config.seed, "stopped_by_time_limit": False},
        "time_s": {},
    }
    columns = [*real.columns.drop(config.marker, errors="ignore"), config.marker]
    if sum(wanted.values()) == 0:
        summary["time_s"]["total"] = round(time.perf_counter() - start, 2)
        return pd.DataFrame(columns=columns), summary

    # 3. The generator: trained here on the real rows, or checked.
    fit_start = time.perf_counter()
    generator, source = _resolve_generator(config, real, label, image)
    known = {str(c) for c in generator.conditions_[label]["classes"]}
    unknown = [c for c, n in wanted.items() if n and str(c) not in known]
    if unknown:
        raise ConfigError(f"the generator ({source}) never saw class(es) {unknown[:10]} of "
                          f"{label!r}, which need synthetic images; train a generator on this "
                          "table (leave the generator out)")
    summary["generator"] = {"source": source, "params": generator.get_params(),
                            "image_shape": list(generator.image_shape_),
                            "training": dict(getattr(generator, "train_result_", {}) or {})}
    summary["time_s"]["generator"] = round(time.perf_counter() - fit_start, 2)

    # 4-5. Sample; with the filter, drop what the judge rejects and sample the deficit again.
    judge = None
    if config.filter:
        filter_start = time.perf_counter()
        images, labels = _real_images(generator, real, label)
        judge, judge_source = _resolve_judge(config, images, labels)
        # On the judge's own training images when it was trained here: an upper bound.
        summary["filter"] = {"judge": judge_source,
                             "judge_accuracy_real_train": judge.accuracy(images, labels),
                             "judge_training": dict(judge.training_info), "rounds": 0,
                             "dropped": 0, "unjudged": 0}
        summary["time_s"]["judge"] = round(time.perf_counter() - filter_start, 2)
    sample_start = time.perf_counter()
    kept_images, kept_classes = [], []
    deficit = dict(wanted)
    for round_index in range(FILTER_ROUNDS if judge is not None else 1):
        if not any(deficit.values()):
            break
        _say(config, f"augment: sampling {sum(deficit.values()):,} images"
             + (f" (round {round_index + 1})" if round_index else ""))
        images, asked = _sample_classes(generator, deficit, label, config,
                                        seed_offset=1_000_003 * round_index, deadline=deadline)
        if len(asked) < sum(deficit.values()):
            summary["sampling"]["stopped_by_time_limit"] = True
            _say(config, f"augment: the time limit stopped sampling after {len(asked):,} of "
                 f"{sum(deficit.values()):,} images")
        keep = np.ones(len(asked), dtype=bool)
        if judge is not None:
            keep = _judged(judge, images, asked, summary["filter"])
            summary["filter"]["rounds"] = round_index + 1
        for value, ok in zip(asked, keep, strict=True):
            entry = summary["per_class"][str(value)]
            entry["generated"] += 1
            entry["dropped"] += int(not ok)
            if ok:
                deficit[value] -= 1
        kept_images.append(images[keep])
        kept_classes += [v for v, ok in zip(asked, keep, strict=True) if ok]
    summary["time_s"]["sampling"] = round(time.perf_counter() - sample_start, 2)

    # 6. The kept images as rows.
    images = np.concatenate([x for x in kept_images if len(x)]) if kept_classes else None
    cells = [] if images is None else [_image_cell(x) for x in images]
    for value in kept_classes:
        summary["per_class"][str(value)]["synthetic"] += 1
    rows = pd.DataFrame({c: pd.Series([None] * len(cells), dtype=object) for c in columns})
    rows[label] = pd.Series(kept_classes, dtype=real[label].dtype) if len(cells) else rows[label]
    rows[image] = pd.Series(cells, dtype=object)
    rows[config.marker] = True
    summary["num_synthetic"] = len(cells)
    if judge is not None:
        summary["filter"]["dropped"] = int(sum(e["dropped"] for e in summary["per_class"].values()))
    summary["time_s"]["total"] = round(time.perf_counter() - start, 2)
    _say(config, f"augment: {len(cells):,} synthetic rows added to {summary['num_real']:,} real "
         "rows" + (f"; the judge dropped {summary['filter']['dropped']:,}" if judge else ""))
    return rows, summary


def _judged(judge: Judge, images: np.ndarray, asked: list, stats: dict) -> np.ndarray:
    """(N,) bool: keep the samples the judge assigns to the class asked for.

    Samples of a class the judge does not know cannot be judged and are kept (counted).
    """
    index = {str(c): i for i, c in enumerate(judge.classes)}
    targets = np.array([index.get(str(v), -1) for v in asked])
    keep = np.ones(len(asked), dtype=bool)
    judged = targets >= 0
    stats["unjudged"] += int((~judged).sum())
    if judged.any():
        keep[judged] = judge.predict(images[judged]) == targets[judged]
    return keep


def _image_cell(image: np.ndarray) -> np.ndarray:
    """A uint8 (H, W, C) sample as a table cell: (H, W) for grey, as built-in datasets hold."""
    return np.ascontiguousarray(image[..., 0] if image.shape[-1] == 1 else image)


# --------------------------------------------------------------------------- tables


def augment_table(table, *, label: str, deadline: float | None = None,
                  **options) -> tuple[pd.DataFrame, dict]:
    """The table with synthetic rows appended, and the summary of what was added.

    Args:
        table: a DataFrame or a path :func:`~polymodal.data.readers.read_table` reads.
        label: the class column; the generator is conditioned on it.
        deadline: a ``time.perf_counter()`` value sampling stops before (see
            :func:`generate_rows`); ``None``: none.
        **options: the fields of :class:`AugmentConfig` (``per_class``, ``ratio``,
            ``generator``, ``time_limit``, ``filter``, ``marker``, ``seed``, ...).

    Returns:
        ``(augmented, summary)``: every row of ``table`` (marker ``False``) followed by the
        synthetic rows (marker ``True``, image cells uint8 arrays, other columns missing);
        the summary holds the counts per class (``real``, ``requested``, ``generated``,
        ``dropped``, ``synthetic``), the generator used, filter statistics and timings.
        Rows already marked in ``table`` are kept as they are and counted.
    """
    config = AugmentConfig(**options) if options else AugmentConfig()
    config.validate()
    df = read_table(table)
    if label not in df.columns:
        raise SchemaError(f"label column {label!r} is not in the table; its columns are "
                          f"{list(df.columns)[:30]}")
    real, marked, _ = split_marked(df, config.marker)
    labelled = real.iloc[np.flatnonzero(present_mask(real[label]))].reset_index(drop=True)
    labelled.attrs = dict(df.attrs)
    if labelled.empty:
        raise DataError(f"no real row has a value in label column {label!r}; augmentation "
                        "needs labelled rows to learn each class from")
    rows, summary = generate_rows(labelled, label, config, deadline=deadline)
    summary["num_marked_before"] = len(marked)
    return concat_rows([real, marked, rows], df.attrs), summary
