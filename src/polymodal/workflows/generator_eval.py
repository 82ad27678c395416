"""Evaluate a conditional image generator against real images: metrics and a report.

:func:`evaluate_generator` samples a fitted generator, scores the samples in a judge's
feature space (see :mod:`polymodal.workflows.judge`) and, given ``out_dir``, writes
``report.md`` + ``report.html``. Every distribution figure is printed beside the two
numbers that make it readable: the *floor* (two disjoint sets of real images scored the
same way, at the same sample count) and the *ceiling* (uniform noise images).

Steps of :func:`evaluate_generator`:

1. decode the real table's images at the generator's size, through its own transform;
2. choose the judge: the one given, or one trained on half of the real rows (seeded,
   stratified), the other half held out; "pixels" when there are no labels;
3. sample ``n_samples`` images, spread evenly over the classes the generator saw, the
   other condition columns taken from held-out rows of the same class;
4. FD and KID (judge features) of samples vs held-out reals, with floor and ceiling;
   k-NN precision/recall; each the mean over disjoint draws of as many samples as the
   held-out half has images, with its standard error;
5. conditional accuracy (judge on samples vs the class asked for; ceiling: the judge on
   held-out reals) and CAS (a judge-architecture classifier trained on samples only,
   tested on held-out reals; reference: the same trained on as many real images);
6. memorisation: nearest-training-neighbour distances of samples vs of held-out reals,
   in pixel and judge space, and the near-copy count;
7. the report.

The generator is anything with the :class:`polymodal.api.generator.Generator` surface:
``sample``, ``image``, ``condition``, ``conditions_``, ``transform_`` and optionally
``training_history_`` and ``config_dict()``.

References: Heusel et al. 2017 (FD); Bińkowski et al. 2018 (KID); Kynkäänniemi et al.
2019 (precision/recall); Ravuri & Vinyals 2019, "Classification Accuracy Score for
Conditional Generative Models" (CAS).
"""

from __future__ import annotations

import datetime as dt
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import linalg

from polymodal.data.image_encoding import tensor_to_uint8
from polymodal.data.readers import read_table
from polymodal.data.schema import infer_schema
from polymodal.errors import ConfigError, DataError
from polymodal.evaluate import plots
from polymodal.evaluate.generation import (
    MIN_IMAGES_FOR_DISTRIBUTION_METRICS,
    frechet_distance,
    kernel_inception_distance,
    nearest_neighbour_distances,
    precision_recall,
)
from polymodal.evaluate.images import make_grid, png_bytes
from polymodal.evaluate.report import Document, config_table, small_sample_warning
from polymodal.recipes.generator import AUTO_GUIDANCE
from polymodal.workflows.judge import Judge, PixelJudge

# Images per Generator.sample call: bounds sampling memory, not the results' quality.
SAMPLE_BATCH = 250
# A sample is a near-copy when its nearest training image is closer than this fraction of
# the held-out real images' median nearest-training distance (pixel space).
NEAR_COPY_RATIO = 1 / 3
# Query rows per chunk of nearest-neighbour search: 256 x 60,000 training images x 8 bytes
# is ~120 MB, so memory stays flat for Fashion-MNIST-sized training sets.
NN_CHUNK = 256
GRID_COLUMNS = 10
MEMORISATION_PAIRS = 8
# Grid tiles are enlarged (nearest neighbour) to at least this many pixels a side.
MIN_TILE_PX = 32


@dataclass
class _RealSet:
    """Real images at the generator's size with their rows' label values."""

    images: np.ndarray  # (N, H, W, C) uint8
    rows: pd.DataFrame  # the N table rows whose image decoded
    labels: list | None  # the scoring column's values, or None without one


def table_images(generator, table: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Decode a table's image column exactly as the generator's transform does.

    Returns uint8 images ``(N_present, H, W, C)`` and the ``(N,)`` bool mask of rows whose
    image decoded (absent or unreadable cells are left out).
    """
    column = generator.image
    if column not in table.columns:
        raise DataError(f"the table has no image column {column!r} (the generator was trained "
                        f"on it); its columns are {list(table.columns)}.")
    base_dir = table.attrs.get("base_dir")
    images, present = [], []
    for cell in table[column]:
        x, ok = generator.transform_.image_tensor(cell, base_dir, column=column)  # (C, H, W)
        present.append(ok)
        if ok:
            # uint8 one by one: a float stack of 60,000 images would be 4x the memory.
            images.append(tensor_to_uint8(x[None])[0])  # (H, W, C)
    if not images:
        raise DataError(f"none of the {len(table)} cells of image column {column!r} could be "
                        "decoded; check the paths relative to the table's folder.")
    return np.stack(images), np.asarray(present)


def _real_set(generator, table: pd.DataFrame, label: str | None) -> _RealSet:
    """The rows whose image decodes (and, with ``label``, whose label is present)."""
    images, present = table_images(generator, table)
    rows = table.loc[present].reset_index(drop=True)
    rows.attrs = dict(table.attrs)
    return _with_labels(_RealSet(images, rows, None), label)


def _with_labels(real: _RealSet, label: str | None) -> _RealSet:
    """``real`` labelled by column ``label``, without the rows whose label is missing."""
    if label is None:
        return real
    known = real.rows[label].notna().to_numpy()
    rows = real.rows.loc[known].reset_index(drop=True)
    return _RealSet(real.images[known], rows, rows[label].tolist())


def _subset(real: _RealSet, index: np.ndarray) -> _RealSet:
    rows = real.rows.iloc[index].reset_index(drop=True)
    labels = None if real.labels is None else [real.labels[i] for i in index]
    return _RealSet(real.images[index], rows, labels)


def stratified_halves(labels: list | None, num_rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two disjoint index sets, each holding about half of every class (seeded)."""
    rng = np.random.default_rng(seed)
    keys = np.zeros(num_rows, dtype=np.int64) if labels is None else pd.factorize(
        pd.Series([str(v) for v in labels]))[0]
    first, second = [], []
    size_first = size_second = 0
    for key in np.unique(keys):
        members = rng.permutation(np.flatnonzero(keys == key))
        cut = len(members) // 2
        if len(members) % 2 and size_first <= size_second:
            cut += 1  # the odd member goes to the smaller half, so the halves stay level
        first.append(members[:cut])
        second.append(members[cut:])
        size_first, size_second = size_first + cut, size_second + len(members) - cut
    return (rng.permutation(np.concatenate(first)), rng.permutation(np.concatenate(second)))


def _scoring_label(generator, label: str | None) -> str | None:
    """The categorical condition column conditional accuracy and CAS are scored on."""
    conditions = dict(getattr(generator, "conditions_", None) or {})
    categorical = [c for c, spec in conditions.items() if spec.get("modality") == "categorical"]
    if label is None:
        return categorical[0] if categorical else None
    if label not in categorical:
        raise ConfigError(
            f"label={label!r} is not a categorical condition of this generator; its categorical "
            f"conditions are {categorical or 'none'}. Pass one of them, or label=None."
        )
    return label


def _fallback_label(table: pd.DataFrame, generator, seed: int) -> str | None:
    """A categorical column of the table to train a judge on, for generators without one."""
    schema = infer_schema(table, seed=seed)
    candidates = [c for c in schema.by_modality("categorical") if c != generator.image]
    return candidates[0] if candidates else None


def _resolve_judge(judge) -> Judge | PixelJudge | None:
    if judge is None or isinstance(judge, Judge | PixelJudge):
        return judge
    if isinstance(judge, str) and judge == "pixels":
        return PixelJudge()
    if isinstance(judge, str | os.PathLike) and Path(judge).is_dir():
        return Judge.load(judge)
    raise ConfigError(
        f"judge={judge!r} is not usable: pass None (train one on the real table), a Judge, "
        "the folder of a saved Judge (Judge.save), or 'pixels' for raw-pixel features."
    )


def _sample_plan(generator, label: str | None, held: _RealSet, n: int,
                 seed: int) -> tuple[dict | None, list | None]:
    """What to ask for: conditions (column -> list of n) and the asked label values.

    Sample ``i`` asks for class ``i mod K``, so classes are even and any prefix balanced.
    The other condition columns copy a held-out row of the same class (any row when the
    class has none there), so their values are realistic combinations.
    """
    # ``conditions_`` (fitted) rather than ``condition`` (the argument, maybe a string).
    columns = list(getattr(generator, "conditions_", None) or {})
    if not columns:
        return None, None
    rng = np.random.default_rng(seed)
    rows = held.rows
    if label is not None:
        classes = list(generator.conditions_[label]["classes"])
        asked = [classes[i % len(classes)] for i in range(n)]
        held_keys = rows[label].astype(str).to_numpy() if label in rows.columns else None
        picks = []
        for value in asked:
            pool = np.flatnonzero(held_keys == str(value)) if held_keys is not None else []
            picks.append(rng.choice(pool) if len(pool) else rng.integers(len(rows)))
    else:
        asked, picks = None, rng.integers(len(rows), size=n)
    conditions = {}
    for column in columns:
        if column == label:
            conditions[column] = asked
        elif column in rows.columns:
            conditions[column] = rows[column].iloc[np.asarray(picks)].tolist()
        else:
            raise DataError(f"the real table has no column {column!r}, a condition of the "
                            "generator; evaluate on a table with the same columns it was fit on.")
    return conditions, asked


def _sample(generator, n: int, conditions: dict | None, *, num_steps, guidance,
            seed: int) -> tuple[np.ndarray, float]:
    """``n`` samples in chunks (each chunk its own seed) and the wall seconds taken."""
    chunks = []
    start = time.perf_counter()
    for k, begin in enumerate(range(0, n, SAMPLE_BATCH)):
        end = min(n, begin + SAMPLE_BATCH)
        part = None if conditions is None else {c: v[begin:end] for c, v in conditions.items()}
        chunks.append(generator.sample(end - begin, conditions=part, num_steps=num_steps,
                                       guidance=guidance, seed=seed + k))
    return np.concatenate(chunks), time.perf_counter() - start


def _distribution_metrics(judge, draws: np.ndarray, reference: np.ndarray,
                          second_real: np.ndarray, noise: np.ndarray, seed: int) -> dict:
    """FD/KID/precision/recall of generated, real and noise sets against ``reference``.

    All sets have the same count, so the floor and ceiling read directly. ``draws``
    (D, m, ...) are disjoint sets of samples: each is scored against the same reference
    and the figures averaged, with their standard error over the draws (one set of m
    images moves recall by a few hundredths from draw to draw).
    """
    ref = judge.features(reference)
    kid_subset = min(1000, draws.shape[1], len(reference))

    def scores(feats: np.ndarray) -> dict:
        with warnings.catch_warnings():
            # Constant features (the always-black border of digits in pixel space) make the
            # covariance singular; scipy warns, the distance stays finite and comparable.
            warnings.simplefilter("ignore", linalg.LinAlgWarning)
            fd = frechet_distance(feats, ref)
        kid, kid_std = kernel_inception_distance(feats, ref, subset_size=kid_subset,
                                                 num_subsets=20, seed=seed)
        # Precision/recall compare equal-sized sets (k-NN radii depend on the count).
        pr = precision_recall(ref[: len(feats)], feats, k=3)
        return {"fd": fd, "kid": kid, "kid_std": kid_std, **pr}

    out: dict = {}
    for suffix, images in (("_floor", second_real), ("_ceiling", noise)):
        out.update({f"{key}{suffix}": value for key, value in scores(judge.features(images)).items()
                    if key != "kid_std"})
    per_draw = [scores(judge.features(images)) for images in draws]
    for key in per_draw[0]:
        values = np.array([d[key] for d in per_draw])
        out[key] = float(values.mean())
        if key != "kid_std":
            out[f"{key}_se"] = (float(values.std(ddof=1) / np.sqrt(len(values)))
                                if len(values) > 1 else 0.0)
    out["n_draws"] = len(per_draw)
    out["fd_ratio_to_floor"] = out["fd"] / max(out["fd_floor"], 1e-12)
    return out


def _memorisation(samples: np.ndarray, held: np.ndarray, train: np.ndarray, judge) -> dict:
    """Nearest-training-neighbour distances of samples vs held-out reals (pixel + judge)."""
    out = {}
    spaces = {"pixels": lambda x: x.reshape(len(x), -1).astype(np.float32) / 255.0}
    if judge is not None:
        spaces["judge"] = judge.features
    for space, embed in spaces.items():
        train_feats = embed(train)
        d_samples = nearest_neighbour_distances(embed(samples), train_feats, chunk=NN_CHUNK)
        d_held = nearest_neighbour_distances(embed(held), train_feats, chunk=NN_CHUNK)
        median_held = float(np.median(d_held))
        out[f"nn_dist_samples_median_{space}"] = float(np.median(d_samples))
        out[f"nn_dist_heldout_median_{space}"] = median_held
        out[f"nn_ratio_{space}"] = float(np.median(d_samples)) / max(median_held, 1e-12)
        if space == "pixels":
            copies = d_samples < NEAR_COPY_RATIO * median_held
            out["near_copies"] = int(copies.sum())
            out["near_copy_fraction"] = float(copies.mean())
            out["_pixel_distances"] = d_samples
    return out


def _cas(generated: np.ndarray, asked: list, real_pool: _RealSet | None, test: _RealSet,
         classes: list, **judge_kwargs) -> dict:
    """Classification accuracy score: train on samples only, test on held-out reals."""
    known = set(map(str, classes))
    keep = np.array([str(v) in known for v in test.labels])
    out = {"cas": Judge.train(generated, asked, classes=classes, **judge_kwargs)
           .accuracy(test.images[keep], [v for v, k in zip(test.labels, keep, strict=True) if k])}
    if real_pool is not None:
        pool_keep = np.flatnonzero([str(v) in known for v in real_pool.labels])[: len(generated)]
        reference = Judge.train(real_pool.images[pool_keep],
                                [real_pool.labels[i] for i in pool_keep], classes=classes,
                                **judge_kwargs)
        out["cas_real"] = reference.accuracy(
            test.images[keep], [v for v, k in zip(test.labels, keep, strict=True) if k])
        out["cas_real_num_images"] = len(pool_keep)
    return out


def _class_grid(samples: np.ndarray, asked: list | None, classes: list | None) -> bytes:
    """One row per class (labelled), ``GRID_COLUMNS`` samples each; or a plain grid."""
    scale = max(1, MIN_TILE_PX // samples.shape[1])
    if asked is None or classes is None:
        return png_bytes(make_grid(samples[: GRID_COLUMNS * 8], ncols=GRID_COLUMNS, scale=scale))
    tiles, labels = [], []
    blank = np.full(samples.shape[1:], 255, dtype=np.uint8)
    keys = np.array([str(v) for v in asked])
    for value in classes:
        members = np.flatnonzero(keys == str(value))[:GRID_COLUMNS]
        if not len(members):
            continue
        tiles += [samples[i] for i in members] + [blank] * (GRID_COLUMNS - len(members))
        labels.append(str(value))
    return png_bytes(make_grid(tiles, ncols=GRID_COLUMNS, scale=scale, row_labels=labels))


def _pairs_grid(samples: np.ndarray, train: np.ndarray, distances: np.ndarray) -> bytes:
    """The closest samples beside their nearest training image: rows of (sample, train)."""
    order = np.argsort(distances)[:MEMORISATION_PAIRS]
    flat_train = train.reshape(len(train), -1).astype(np.float32) / 255.0  # (N_train, D)
    train_sq = (flat_train**2).sum(axis=1)
    tiles, labels = [], []
    for i in order:
        query = samples[i].reshape(-1).astype(np.float32) / 255.0  # (D,)
        # ‖t − q‖² up to the constant ‖q‖², without an (N_train, D) temporary.
        nearest = int((train_sq - 2.0 * (flat_train @ query)).argmin())
        tiles += [samples[i], train[nearest]]
        labels.append(f"d={distances[i]:.2f}")
    scale = max(1, MIN_TILE_PX // samples.shape[1])
    return png_bytes(make_grid(tiles, ncols=2, scale=scale, row_labels=labels))


def _metrics_frame(m: dict) -> pd.DataFrame:
    """The headline table: each metric with its floor (real vs real) and ceiling."""
    nan = float("nan")
    few = (f"UNRELIABLE at {m['n_compared']} images per set; "
           if m["n_compared"] < MIN_IMAGES_FOR_DISTRIBUTION_METRICS else "")

    def se(key: str) -> str:  # the standard error over the sample draws, where several
        return f"; ± {m[key + '_se']:.3g} over {m['n_draws']} draws" if m["n_draws"] > 1 else ""

    rows = [
        ("Fréchet distance (judge features)", m["fd"], m["fd_floor"], m["fd_ceiling"],
         f"{few}lower is better; floor = two real sets{se('fd')}"),
        ("KID (judge features)", m["kid"], m["kid_floor"], m["kid_ceiling"],
         f"{few}lower is better"),
        ("precision (k=3)", m["precision"], m["precision_floor"], m["precision_ceiling"],
         f"{few}samples inside the real manifold{se('precision')}"),
        ("recall (k=3)", m["recall"], m["recall_floor"], m["recall_ceiling"],
         f"{few}reals covered by the samples{se('recall')}"),
        ("conditional accuracy", m.get("conditional_accuracy", nan),
         m.get("judge_accuracy_real", nan), nan,
         "judge on samples vs the class asked; floor column = judge on real held-out"),
        ("CAS", m.get("cas", nan), m.get("cas_real", nan), nan,
         "trained on samples, tested on reals; floor column = trained on reals"),
        ("nearest-train distance ratio (pixels)", m.get("nn_ratio_pixels", nan), 1.0, nan,
         "samples / held-out reals; well below 1 = copying"),
        ("near copies", m.get("near_copies", nan), nan, nan,
         f"samples closer than {NEAR_COPY_RATIO:.2g} x the held-out median"),
        ("sampling images/s", m["sampling_images_per_s"], nan, nan,
         f"{m['n_samples']} samples"),
    ]
    return pd.DataFrame(rows, columns=["metric", "generated", "real (floor / reference)",
                                       "noise (ceiling)", "note"])


def evaluate_generator(
    generator,
    real_table,
    *,
    judge=None,
    label: str | None = None,
    n_samples: int = 1000,
    num_steps: int | None = None,
    guidance: float | None = None,
    seed: int = 0,
    train_table=None,
    out_dir: str | os.PathLike | None = None,
    judge_time_limit_s: float | None = 60.0,
    judge_max_epochs: int = 30,
    cas: bool = True,
    sampling_images_per_s: float | None = None,
) -> dict:
    """Sample a fitted generator and score it against real images; see the module docstring.

    Args:
        generator: a fitted ``Generator`` (or anything with its surface).
        real_table: a DataFrame or table path with the image column (and the conditions),
            rows the generator was not trained on.
        judge: ``None`` (train one on half of ``real_table``), a :class:`Judge`, the folder
            of a saved one, or ``"pixels"``.
        label: the categorical condition scored by conditional accuracy and CAS; default
            the generator's first categorical condition.
        n_samples: images to generate, spread evenly over the classes.
        num_steps, guidance: passed to ``generator.sample`` (``None``: its defaults).
        seed: seeds the splits, the sampling and every classifier trained here.
        train_table: the generator's training rows, for the memorisation check (skipped
            without it).
        out_dir: where to write ``report.md``/``report.html`` (+ PNGs and the trained
            judge under ``judge/``); ``None`` writes nothing.
        judge_time_limit_s, judge_max_epochs: budget of each classifier trained here
            (the judge and the two CAS classifiers); a time limit of ``None`` makes the
            epochs the only bound, so results do not depend on the machine's speed.
        cas: compute the classification accuracy score (two more classifiers to train).
        sampling_images_per_s: the sampling speed to report when the samples were made
            elsewhere (a benchmark replaying another process's samples); ``None`` reports
            the speed measured here.

    Returns:
        A flat dict: every metric (``fd``, ``fd_floor``, ``fd_ceiling``, ``kid*``,
        ``precision*``, ``recall*``, ``conditional_accuracy``, ``judge_accuracy_real``,
        ``cas``, ``cas_real``, ``nn_ratio_pixels``, ``near_copies``,
        ``sampling_images_per_s``, ...), counts, ``skipped`` (why parts were left out),
        and the written paths (``report_md``, ``report_html``, ``judge_dir``) as strings.
    """
    if not isinstance(n_samples, int) or isinstance(n_samples, bool) or n_samples < 2:
        raise ConfigError(f"n_samples={n_samples!r} must be an integer >= 2, e.g. 1000.")
    table = read_table(real_table)
    label = _scoring_label(generator, label)
    skipped: list[str] = []
    judge = _resolve_judge(judge)

    # 1-2. Real images and the judge. Without a judge, half the rows train one.
    judge_label = label
    if judge_label is None and judge is None:
        judge_label = _fallback_label(table, generator, seed)
    if judge_label is not None and judge_label not in table.columns:
        raise DataError(f"the real table has no column {judge_label!r} to score classes on; "
                        f"its columns are {list(table.columns)}.")
    real = _real_set(generator, table, judge_label)
    real_pool = None  # real images not held out, for the CAS reference
    if judge is None and judge_label is not None:
        train_idx, held_idx = stratified_halves(real.labels, len(real.images), seed)
        real_pool, held = _subset(real, train_idx), _subset(real, held_idx)
        judge = Judge.train(real_pool.images, real_pool.labels, time_limit_s=judge_time_limit_s,
                            max_epochs=judge_max_epochs, seed=seed)
        trained_judge = True
    else:
        judge = judge if judge is not None else PixelJudge()
        held, trained_judge = real, False
    train = None if train_table is None else _real_set(generator, read_table(train_table), None)
    if train is not None and real_pool is None and judge_label in train.rows.columns:
        real_pool = _with_labels(train, judge_label)
    if len(held.images) < 4:
        raise DataError(f"only {len(held.images)} held-out real images; evaluation needs at "
                        "least 4 (pass a larger real table).")

    # 3. Samples, evenly over the classes.
    conditions, asked = _sample_plan(generator, label, held, n_samples, seed)
    samples, sampling_s = _sample(generator, n_samples, conditions, num_steps=num_steps,
                                  guidance=guidance, seed=seed)
    if samples.shape[1:] != held.images.shape[1:]:
        raise DataError(f"the generator's samples are shaped {samples.shape[1:]} but its "
                        f"transform decodes real images to {held.images.shape[1:]}.")

    # 4. Distribution metrics, all at one count m: samples, a second real set, noise vs A.
    half_a, half_b = stratified_halves(held.labels, len(held.images), seed + 1)
    rng = np.random.default_rng(seed)
    m = min(n_samples, len(half_b))
    num_draws = n_samples // m  # disjoint sets of m samples, averaged
    draws = samples[rng.permutation(n_samples)[: num_draws * m]].reshape(
        num_draws, m, *samples.shape[1:])
    noise = rng.integers(0, 256, size=(m, *samples.shape[1:]), dtype=np.uint8)
    metrics: dict = {
        "n_samples": n_samples, "n_compared": m, "n_heldout": len(held.images),
        "label": label, "judge": judge.kind,
        # The settings used: the generator's own defaults where none were given.
        "num_steps": num_steps if num_steps is not None else getattr(generator, "num_steps", None),
        "guidance": guidance if guidance is not None else _default_guidance(generator),
        "seed": seed, "sampling_s": sampling_s,
        "sampling_images_per_s": (n_samples / sampling_s if sampling_images_per_s is None
                                  else float(sampling_images_per_s)),
    }
    metrics.update(_distribution_metrics(judge, draws, held.images[half_a],
                                         held.images[half_b[:m]], noise, seed))

    # 5. Conditional accuracy and CAS.
    judge_kwargs = {"time_limit_s": judge_time_limit_s, "max_epochs": judge_max_epochs,
                    "seed": seed}
    if label is None:
        skipped.append("conditional accuracy and CAS: the generator has no categorical "
                       "condition")
    elif judge.classes is None:
        skipped.append("conditional accuracy and CAS: the judge has no classes (pixels)")
    else:
        metrics["judge_accuracy_real"] = judge.accuracy(held.images, held.labels)
        known = {str(c) for c in judge.classes}
        scored = np.array([str(v) in known for v in asked])
        if not scored.any():
            skipped.append(f"conditional accuracy: none of the generator's classes of {label!r} "
                           f"is among the judge's classes {judge.classes}")
        else:
            asked_known = [v for v, k in zip(asked, scored, strict=True) if k]
            metrics["conditional_accuracy"] = judge.accuracy(samples[scored], asked_known)
            metrics["conditional_accuracy_num_scored"] = int(scored.sum())
            if cas:
                metrics.update(_cas(samples[scored], asked_known, real_pool, held,
                                    judge.classes, **judge_kwargs))
            else:
                skipped.append("CAS: cas=False")

    # 6. Memorisation against the generator's training images.
    pixel_distances, train_images = None, None
    if train is None:
        skipped.append("memorisation: no train_table given")
    else:
        train_images = train.images
        memo = _memorisation(samples, held.images, train_images, judge)
        pixel_distances = memo.pop("_pixel_distances")
        metrics.update(memo)
    metrics["skipped"] = "; ".join(skipped)

    # 7. Report.
    if out_dir is not None:
        out_dir = Path(out_dir)
        if trained_judge:
            metrics["judge_dir"] = str(judge.save(out_dir / "judge"))
        classes = None if label is None else list(generator.conditions_[label]["classes"])
        doc = _report(generator, metrics, samples, asked, classes, train_images,
                      pixel_distances, judge, skipped)
        md_path, html_path = doc.write(out_dir)
        metrics["report_md"], metrics["report_html"] = str(md_path), str(html_path)
    return metrics


def _report(generator, metrics: dict, samples, asked, classes, train_images, pixel_distances,
            judge, skipped: list[str]) -> Document:
    conditions = list(getattr(generator, "conditions_", None) or {})
    doc = Document(f"Generator evaluation: {generator.image!r}"
                   + (f" given {', '.join(conditions)}" if conditions else " (unconditional)"))
    steps = "default" if metrics["num_steps"] is None else metrics["num_steps"]
    guidance = "default" if metrics["guidance"] is None else metrics["guidance"]
    doc.add_text(
        f"{metrics['n_samples']:,} samples (steps {steps}, guidance {guidance}, seed "
        f"{metrics['seed']}) against {metrics['n_heldout']:,} held-out real images, scored "
        f"in the features of {judge!r}. Distribution metrics compare {metrics['n_compared']:,} "
        "images of each set with one half of the held-out reals; the floor is the other half "
        "(real vs real), the ceiling uniform noise. The samples' figures are the mean over "
        f"{metrics['n_draws']} disjoint draw(s) of {metrics['n_compared']:,} samples. "
        f"Written {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC."
    )
    doc.add_heading("Metrics")
    warning = small_sample_warning(metrics["n_compared"], MIN_IMAGES_FOR_DISTRIBUTION_METRICS,
                                   unit="images per set",
                                   what="Fréchet distance, KID, precision and recall")
    if warning:
        doc.add_warning(warning)
    doc.add_table(_metrics_frame(metrics))
    if skipped:
        doc.add_text("Left out:")
        doc.add_list(skipped)
    doc.add_heading("Samples")
    doc.add_image(_class_grid(samples, asked, classes),
                  "Samples, one row per class asked for" if asked is not None else "Samples",
                  filename="samples.png")
    if pixel_distances is not None:
        doc.add_heading("Memorisation")
        doc.add_text(
            f"Median Euclidean distance to the nearest training image (pixels scaled to "
            f"[0, 1]): samples "
            f"{metrics['nn_dist_samples_median_pixels']:.3f}, held-out reals "
            f"{metrics['nn_dist_heldout_median_pixels']:.3f}; {metrics['near_copies']} near "
            "copies. The closest samples (left) beside their nearest training image (right):"
        )
        doc.add_image(_pairs_grid(samples, train_images, pixel_distances),
                      "Closest samples and their nearest training images",
                      filename="nearest_training.png")
    curve = plots.training_curve_png(list(getattr(generator, "training_history_", None) or []))
    if curve is not None:
        doc.add_heading("Training")
        doc.add_image(curve, "Training loss vs step", filename="training_curve.png")
    if callable(getattr(generator, "config_dict", None)):
        doc.add_heading("Config")
        doc.add_table(config_table(generator.config_dict()), max_rows=500)
    return doc


def _default_guidance(generator):
    """The guidance ``generator`` samples with by default: for "auto", the number its fit
    chose (kept in the resolved recipe)."""
    guidance = getattr(generator, "guidance", None)
    recipe = getattr(generator, "recipe_", None)
    if guidance == AUTO_GUIDANCE and recipe is not None:
        return recipe.sampling.guidance
    return guidance
