"""``polymodal augment``: an augmented table written to a folder, and the comparison that
says whether the synthetic rows helped.

:func:`augment_to_folder` runs :func:`~polymodal.workflows.augment.augment_table` and
writes the result as a table that reads back with
:func:`~polymodal.data.readers.read_table` (``augmented.csv``, ``images/synthetic/*.png``,
``augment_summary.json``); the user's own files are never modified. With ``compare=True``
it first holds out real labelled rows and scores a real-only and an augmented predictor
on them (:func:`compare_augmentation`).

Generating the rows lives in :mod:`polymodal.workflows.augment`; this module only adds
what a folder on disk needs (portable media paths, the saved generator, the summary file).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import fields, replace
from pathlib import Path

import numpy as np
import pandas as pd

from polymodal.data.cells import cell_missing, present_mask
from polymodal.data.readers import read_table
from polymodal.data.schema import infer_schema
from polymodal.data.synthetic import SYNTHETIC_COLUMN, marker_mask, split_marked
from polymodal.errors import ConfigError, DataError, SchemaError
from polymodal.files import json_safe, write_folder, write_json, write_text
from polymodal.workflows.augment import (
    GENERATOR_SHARE,
    AugmentConfig,
    augment_table,
    find_image_column,
)

AUGMENTED_CSV = "augmented.csv"
HOLDOUT_CSV = "holdout.csv"
SUMMARY_JSON = "augment_summary.json"
SYNTHETIC_IMAGE_DIR = "images/synthetic"
GENERATOR_DIR = "generator"
# Under a time limit, sampling ends by this share of the time left once the table is
# read (the generator trains in GENERATOR_SHARE of it); the rest writes the folder.
SAMPLING_END_SHARE = 0.9


# ----------------------------------------------------------------------- comparison


def compare_augmentation(real_train: pd.DataFrame, augmented_train: pd.DataFrame,
                         test: pd.DataFrame, *, label: str, time_limit: float | None,
                         seed: int = 0, marker: str = SYNTHETIC_COLUMN,
                         recipe: dict | None = None, verbosity: int = 0,
                         device: str = "auto") -> dict:
    """Train a real-only and a real + synthetic predictor with the same ``time_limit`` and
    ``recipe`` overrides, and score both on ``test`` (real rows neither saw). Returns their
    metrics and the lift of the primary metric (augmented minus real-only)."""
    from polymodal.api.predictor import Predictor
    from polymodal.evaluate.metrics import PRIMARY_METRIC

    results = {}
    for name, table, augment in (("real_only", real_train, None),
                                 ("augmented", augmented_train,
                                  AugmentConfig(marker=marker, per_class=0, seed=seed))):
        start = time.perf_counter()
        predictor = Predictor(label, time_limit=time_limit, seed=seed, recipe=recipe,
                              verbosity=verbosity, device=device)
        predictor.fit(table, augment=augment)
        results[name] = {"metrics": predictor.evaluate(test), "chosen": predictor.chosen_,
                         "num_train_rows": int(len(table)),
                         "fit_s": round(time.perf_counter() - start, 2)}
    metric = PRIMARY_METRIC[predictor.problem_type_][0]
    real_value = results["real_only"]["metrics"][metric]
    aug_value = results["augmented"]["metrics"][metric]
    return {**results, "metric": metric, "lift": aug_value - real_value,
            "time_limit": time_limit, "num_test_rows": int(len(test))}


# --------------------------------------------------------------------------- folder


def augment_to_folder(table, out_dir: str | os.PathLike, *, label: str, compare: bool = False,
                      fit_time_limit: float | None = 60.0, fit_recipe: dict | None = None,
                      holdout_fraction: float = 0.2, budget=None, **options) -> dict:
    """What ``polymodal augment`` does: augment ``table`` and write it to ``out_dir``.

    Writes ``augmented.csv`` (image paths relative to ``out_dir``), the generated images
    under ``images/synthetic/``, the generator under ``generator/`` (when trained here)
    and ``augment_summary.json``. The user's files are never modified: real image paths
    are rewritten relative to ``out_dir``, and real image cells that are not files are
    written under ``images/real/``. ``out_dir`` must be new or empty.

    With ``compare=True`` a stratified ``holdout_fraction`` of the real labelled rows is
    set aside first (written as ``holdout.csv``, never seen by the generator), and a
    real-only and an augmented predictor, each with ``fit_time_limit`` seconds and the
    ``fit_recipe`` overrides (``Predictor(recipe=)``), are scored on it (:func:`compare_augmentation`); the summary's ``compare`` entry holds the result.

    ``budget``: a :class:`~polymodal.train.budget.TimeBudget` for the whole command
    (``time_limit`` is then its limit): the generator trains in ``GENERATOR_SHARE`` of
    what is left once the table is read, sampling stops at ``SAMPLING_END_SHARE`` of it,
    and the rest writes the folder. The ``compare`` predictors are outside it (each has
    ``fit_time_limit``).
    """
    out = Path(out_dir).absolute()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"--out {out} exists and is not an empty folder; pass a new folder "
                          "(augment never overwrites files)")
    config = AugmentConfig(**options)
    config.validate()
    df = read_table(table)
    if label not in df.columns:
        raise SchemaError(f"label column {label!r} is not in the table; its columns are "
                          f"{list(df.columns)[:30]}")
    holdout = None
    if compare:
        if not 0 < holdout_fraction < 1:
            raise ConfigError(f"holdout_fraction={holdout_fraction!r} must be in (0, 1), e.g. 0.2")
        df, holdout = _holdout_split(df, label, holdout_fraction, config.seed, config.marker)
    deadline = None
    if budget is not None and budget.time_limit_s is not None:
        left_s = max(0.0, budget.left_s())
        config = replace(config, time_limit=max(1.0, GENERATOR_SHARE * left_s))
        deadline = time.perf_counter() + SAMPLING_END_SHARE * left_s
    # A generator trained here is created here, so that it can be saved with the table.
    trained_here = config.generator is None
    generator = _untrained_generator(config, df, label) if trained_here else config.generator
    options = {f.name: getattr(config, f.name) for f in fields(config)}  # not asdict: no copies
    augmented, summary = augment_table(df, label=label, deadline=deadline,
                                       **{**options, "generator": generator})
    summary["source_table"] = str(df.attrs.get("source", table))

    def write(staging: Path) -> None:
        media = _media_columns(df, label, config.seed)
        written = _portable(augmented, out, staging, media, config.marker, summary["image"])
        write_text(staging / AUGMENTED_CSV, written.to_csv(index=False))
        if holdout is not None:
            kept = _portable(holdout, out, staging, media, config.marker, summary["image"],
                             real_prefix="holdout")
            write_text(staging / HOLDOUT_CSV, kept.to_csv(index=False))
        if trained_here and hasattr(generator, "network_"):
            generator.save(staging / GENERATOR_DIR)
            summary["generator"]["saved_to"] = GENERATOR_DIR
        if compare:
            summary["compare"] = compare_augmentation(
                split_marked(df, config.marker)[0], augmented, holdout,
                label=label, time_limit=fit_time_limit, seed=config.seed, marker=config.marker,
                recipe=fit_recipe, verbosity=config.verbosity, device=config.device)
            summary["compare"]["holdout_table"] = HOLDOUT_CSV
        summary["files"] = {"table": AUGMENTED_CSV, "synthetic_images": SYNTHETIC_IMAGE_DIR}
        write_json(staging / SUMMARY_JSON, json_safe(summary))

    write_folder(out, write)
    summary["out_dir"] = str(out)
    return summary


def _untrained_generator(config: AugmentConfig, df: pd.DataFrame, label: str):
    """The Generator ``augment_to_folder`` trains (kept so it can be saved with the table)."""
    from polymodal.api.generator import Generator

    image = find_image_column(df, label, config.image, config.seed)
    return Generator(image=image, condition=[label], time_limit=config.time_limit,
                     seed=config.seed, verbosity=config.verbosity, device=config.device)


def _holdout_split(df: pd.DataFrame, label: str, fraction: float, seed: int,
                   marker: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(rows to augment and train on, held-out real labelled rows), stratified by class."""
    from sklearn.model_selection import train_test_split

    real = ~marker_mask(df, marker)
    candidates = np.flatnonzero(real & present_mask(df[label]))
    keys = df[label].iloc[candidates].astype(str).to_numpy()
    n_test = max(1, int(round(fraction * len(candidates))))
    counts = pd.Series(keys).value_counts()
    stratify = keys if counts.min() >= 2 and n_test >= len(counts) else None
    if len(candidates) - n_test < 2:
        raise DataError(f"the table has {len(candidates)} labelled real row(s); comparing needs "
                        "at least 3 (pass more rows or drop --compare)")
    _, test_idx = train_test_split(candidates, test_size=n_test, random_state=seed,
                                   stratify=stratify)
    held = np.zeros(len(df), dtype=bool)
    held[test_idx] = True
    train, test = df.iloc[np.flatnonzero(~held)], df.iloc[np.sort(test_idx)]
    train, test = train.reset_index(drop=True), test.reset_index(drop=True)
    train.attrs, test.attrs = dict(df.attrs), dict(df.attrs)
    return train, test


def _media_columns(df: pd.DataFrame, label: str, seed: int) -> list[str]:
    schema = infer_schema(df, label=label, seed=seed)
    return [*schema.by_modality("image"), *schema.by_modality("audio")]


def _portable(table: pd.DataFrame, out: Path, staging: Path, media: list[str], marker: str,
              image: str, *, real_prefix: str = "real") -> pd.DataFrame:
    """A copy of ``table`` whose media cells are paths relative to ``out``.

    File paths are rewritten (resolved against the table's folder, then made relative to
    ``out``); synthetic images and in-memory real images are written as PNGs into
    ``staging`` (which becomes ``out``).
    """
    from PIL import Image

    from polymodal.data.media import load_image

    base_dir = Path(table.attrs.get("base_dir") or os.getcwd())
    copy = table.copy()
    synthetic = marker_mask(table, marker)
    digits = max(5, len(str(len(table))))
    for column in [c for c in media if c in table.columns]:
        cells = []
        for i, cell in enumerate(table[column]):
            if isinstance(cell, str | os.PathLike) and str(cell).strip():
                path = Path(os.path.expanduser(os.fspath(cell)))
                path = path if path.is_absolute() else base_dir / path
                cells.append(Path(os.path.relpath(path.resolve(), out)).as_posix())
            elif cell_missing(cell):
                cells.append(None)
            elif column == image or isinstance(cell, np.ndarray | bytes | bytearray):
                folder = SYNTHETIC_IMAGE_DIR if synthetic[i] else f"images/{real_prefix}"
                relative = f"{folder}/{column}_{i:0{digits}d}.png"
                (staging / relative).parent.mkdir(parents=True, exist_ok=True)
                try:
                    picture = load_image(cell, base_dir)
                except Exception as exc:  # noqa: BLE001 - any undecodable cell: say which
                    raise DataError(f"column {column!r} row {i}: cannot write this cell as an "
                                    f"image file ({exc}); store media as files") from None
                if isinstance(picture, Image.Image):
                    picture.save(staging / relative)
                cells.append(relative)
            else:
                raise DataError(f"column {column!r} row {i} holds a {type(cell).__name__}, not "
                                "a file path; augment writes tables of file paths — store the "
                                "audio as files")
        copy[column] = pd.Series(cells, dtype=object)
    return copy


def read_summary(out_dir: str | os.PathLike) -> dict:
    """The ``augment_summary.json`` of a folder written by :func:`augment_to_folder`."""
    path = Path(out_dir) / SUMMARY_JSON
    if not path.is_file():
        raise DataError(f"{path} is missing: {out_dir} is not a folder written by "
                        "`polymodal augment`")
    return json.loads(path.read_text())
