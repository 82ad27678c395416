"""The data steps of ``Predictor.fit``: the rows each candidate trains and validates on.

In the order ``fit`` calls them:

1. :func:`read_rows` — the table, its rows marked synthetic set aside, the schema (every
   column's modality with its reason) and the cleaning report;
2. :func:`split_rows` — the labelled rows, split into training and validation rows (or
   validated on ``tuning_data``), and the rows whose label is empty (set aside for
   self-training, :mod:`polymodal.api.self_training`);
3. :func:`fit_transform` — the per-modality transforms, fitted on the training rows;
4. :func:`add_synthetic_rows` — marked and generated rows joined to the training rows
   (after the split: they never validate);
5. :func:`make_datasets` — the encoded datasets, every media file decoded once.
"""

from __future__ import annotations

import dataclasses
import math
import multiprocessing
import os
import time
import warnings
from collections.abc import Callable

import numpy as np
import pandas as pd

from polymodal.data.cells import hashable_values, present_mask
from polymodal.data.cleaning import clean_report
from polymodal.data.dataset import TableDataset
from polymodal.data.readers import read_table, table_notes
from polymodal.data.schema import Schema, infer_schema
from polymodal.data.split import labelled_positions, take_rows, validation_split
from polymodal.data.synthetic import SYNTHETIC_COLUMN, concat_rows, split_marked
from polymodal.data.transforms import TableTransform
from polymodal.errors import ConfigError, DataError, SchemaError
from polymodal.recipes.predictor import IMAGE_AUGMENT_CHOICES, resolve_audio_augment
from polymodal.train.budget import TimeBudget

# Augmentation's share of the budget left after reading and transforming the table: the
# generator needs most of it to learn the classes, the candidates train on the rest.
SYNTHESIS_SHARE = 0.5
# MiniLM may take at most this share of the time left to embed a table's texts; beyond it
# "auto" embeds them with hashed n-grams (bench/RESULTS.md, 'budget').
TEXT_MAX_SHARE = 0.25
MEDIA_CACHE_BYTES = 1 << 30  # decoded images/audio kept in memory below this size
# Above this share of unlabelled rows a fit warns: the labelled rows are too few to learn
# much from, whatever the unlabelled ones add.
MAX_UNLABELLED_SHARE = 0.99
# Media files are decoded by worker processes from this many rows on, which was faster than
# one by one for Fashion-MNIST's PNGs (see bench/RESULTS.md, 'Ad-hoc probes'); below it,
# starting the processes costs more than it saves.
PARALLEL_DECODE_MIN_ROWS = 2000
MAX_FILE_CHECKS = 200  # media cells decoded per column by the cleaning report

Say = Callable[[str], None]


@dataclasses.dataclass
class TableRows:
    """What :func:`read_rows` found: the real rows, the rows marked synthetic (``None``
    when the table has no marker and no synthesizer is given), the real rows' positions
    in the table, the schema and the cleaning report."""

    df: pd.DataFrame
    marked: pd.DataFrame | None
    positions: np.ndarray
    schema: Schema
    cleaning_report: dict


def read_rows(train, *, label: str, columns: dict | None, problem_type: str, seed: int,
              augment=None, say: Say | None = None) -> TableRows:
    """Step 1: read ``train`` and infer its schema; rows marked synthetic are set aside.

    What the reader skipped and the cells the cleaning report finds read differently from
    how they are written go to ``say`` (or ``warnings``), one line each with a count; a
    feature column of files none of which decodes is an error."""
    df = read_table(train)
    say_notes(table_notes(df), say)
    marker = getattr(augment, "marker", SYNTHETIC_COLUMN)
    marked, positions = None, np.arange(len(df))
    if augment is not None or marker in df.columns:
        df, marked, positions = split_marked(df, marker)
        columns = {**(columns or {}), marker: "ignored"}  # a marker, not a feature
    schema = infer_schema(df, label=label, overrides=columns, problem_type=problem_type,
                          seed=seed)
    if augment is not None and schema.problem_type not in ("binary", "multiclass"):
        raise ConfigError(f"augment= needs a classification label; {label!r} is "
                          f"{schema.problem_type} ({schema.problem_reason}). Leave augment=None")
    report = clean_report(df, schema, max_file_checks=MAX_FILE_CHECKS)
    check_readable_columns(report, df.attrs.get("base_dir"))
    say_notes(report.notices(), say)
    return TableRows(df, marked, positions, schema, report)


def check_has_features(schema: Schema) -> None:
    """Refuse a table whose every column but the label is ignored: no model can learn
    from it, and the error names each ignored column, why, and the override to keep it."""
    if schema.features():
        return
    ignored = [c for c in schema.columns.values() if c.name != schema.label]
    if not ignored:
        raise SchemaError(f"the table has only the label column {schema.label!r}; add the "
                          "columns to predict it from")
    why = "; ".join(f"{c.name!r} ({c.reason.removeprefix('ignored: ')})" for c in ignored[:5])
    more = f" and {len(ignored) - 5} more" if len(ignored) > 5 else ""
    first = ignored[0].name
    raise SchemaError(f"no column is left to predict {schema.label!r} from: every other "
                      f"column is ignored: {why}{more}; keep one with --column "
                      f"{first}=numeric (or categorical, text; Python: columns={{{first!r}: "
                      "'numeric'}), or add feature columns")


def say_notes(notes: list[str], say: Say | None) -> None:
    """Each note as one line through ``say`` (the console), or as a UserWarning without it."""
    for note in notes:
        if say is not None:
            say(f"[yellow]note:[/] {note}")
        else:
            warnings.warn(note, UserWarning, stacklevel=3)


def check_readable_columns(report, base_dir: str | None) -> None:
    """Refuse a feature column of image/audio files none of whose checked cells decodes:
    training would quietly see every cell as absent."""
    for column in report.unreadable_columns():
        first = column.file_problems[0]
        where = f" (relative paths resolve against {base_dir})" if base_dir else ""
        raise DataError(
            f"{column.modality} column {column.name!r}: none of its {column.files_checked:,} "
            f"checked files can be read (row {first.row}: {first.reason}){where}; fix the "
            f"paths, or leave the column out with --column {column.name}=ignored (Python: "
            f"columns={{{column.name!r}: 'ignored'}})")


@dataclasses.dataclass
class SplitRows:
    """Training and validation rows, and their positions in the table given (validation
    positions are empty when ``tuning_data`` validates); the training table's rows whose
    label is empty."""

    train: pd.DataFrame
    val: pd.DataFrame
    train_positions: np.ndarray
    val_positions: np.ndarray
    unlabelled: pd.DataFrame


def split_rows(rows: TableRows, tuning_data, *, label: str, problem_type: str,
               fraction: float, seed: int, say: Say) -> SplitRows:
    """Step 2: labelled rows only; a seeded, stratified validation split unless
    ``tuning_data`` is given. The rows without a label are returned apart."""
    labelled = labelled_positions(rows.df, label, "the training table",
                                  numbers=problem_type == "regression")
    unlabelled = take_rows(rows.df, np.setdiff1d(np.arange(len(rows.df)), labelled))
    check_labelled_counts(rows.df[label].iloc[labelled], label, problem_type, len(rows.df),
                          say)
    df, positions = take_rows(rows.df, labelled), rows.positions[labelled]
    if tuning_data is None:
        train_idx, val_idx = validation_split(df, label, problem_type, fraction=fraction,
                                              seed=seed)
        check_has_features(rows.schema)  # after the row count: one row makes all constant
        return SplitRows(take_rows(df, train_idx), take_rows(df, val_idx),
                         positions[train_idx], positions[val_idx], unlabelled)
    tuning = read_table(tuning_data)
    if label not in tuning.columns:
        raise SchemaError(f"tuning_data lacks the label column {label!r} (its columns: "
                          f"{list(tuning.columns)[:20]}); pass labelled rows to validate on, "
                          "or leave tuning_data=None to split them off the training table")
    val = take_rows(tuning, labelled_rows(tuning, label, "tuning_data", say,
                                             numbers=problem_type == "regression"))
    check_has_features(rows.schema)
    return SplitRows(df, val, positions, np.zeros(0, dtype=np.int64), unlabelled)


def usable_unlabelled(rows: pd.DataFrame, label: str, problem_type: str, choice: str,
                      say: Say, *, streamed: bool = False) -> pd.DataFrame:
    """The rows without a label a fit may use (``choice``: the Predictor's
    ``unlabelled``): none with "ignore", a label that is not a class (regression,
    multilabel) or a streamed table, said as a note. "self_training" on such a label is
    an error."""
    if not len(rows):
        return rows
    classes = problem_type in ("binary", "multiclass")
    if choice == "self_training" and not classes:
        raise ConfigError(f"unlabelled='self_training' needs a class label; {label!r} is "
                          f"{problem_type}. Pass unlabelled='ignore' (--unlabelled ignore), "
                          "or 'auto'")
    if choice == "ignore" or not classes or streamed:
        why = ("unlabelled='ignore'" if choice == "ignore"
               else "a streamed table trains on its labelled rows" if classes
               else f"self-training is for class labels, {label!r} is {problem_type}")
        say_notes([f"{len(rows):,} row(s) have no {label!r} value and are left out of "
                   f"training ({why})"], say)
        return rows.iloc[:0]
    return rows


def say_unlabelled(rows: pd.DataFrame, label: str, method: str, say: Say) -> pd.DataFrame:
    """Say what the rows without a label the fit may use are for (the resolved recipe's
    ``unlabelled.method``); the rows it uses (none when the method is "none")."""
    if len(rows) and method == "none":
        say_notes([f"{len(rows):,} row(s) without a label are left out of training (the "
                   "recipe trains no network to self-train)"], say)
        return rows.iloc[:0]
    if len(rows):
        say(f"{len(rows):,} row(s) have no {label!r} value: the network self-trains on them "
            "(pseudo-labels, kept only if validation on labelled rows improves)")
    return rows


def check_labelled_counts(labels: pd.Series, label: str, problem_type: str, num_rows: int,
                          say: Say | None) -> None:
    """A class with fewer than 2 labelled rows is an error naming it when rows without a
    label are there too (one row cannot be both learned and checked; a note otherwise);
    more than MAX_UNLABELLED_SHARE of the rows unlabelled, a warning with the count."""
    num_unlabelled = num_rows - len(labels)
    if num_unlabelled > MAX_UNLABELLED_SHARE * num_rows:
        say_notes([f"{num_unlabelled:,} of {num_rows:,} rows ({num_unlabelled / num_rows:.1%}) "
                   f"have no {label!r} value; {len(labels):,} labelled rows are very few to "
                   "learn from — label more rows if you can"], say)
    if problem_type not in ("binary", "multiclass"):
        return
    counts = hashable_values(labels).astype(str).value_counts()
    if len(counts) > 1 and counts.max() < 2:  # a row identifier, or a quantity
        named = ", ".join(repr(c) for c in sorted(counts.index)[:3])
        named += ", ..." if len(counts) > 3 else ""
        numbers = pd.to_numeric(counts.index.to_series(), errors="coerce").notna().all()
        fix = ("; if it is a quantity, pass --problem-type regression (Python: "
               "problem_type='regression')" if numbers else "; is it a row identifier?")
        raise DataError(f"label column {label!r}: each of its {len(counts):,} classes "
                        f"({named}) has one labelled row, so no class can be both "
                        f"learned and validated; label more rows per class{fix}")
    rare = counts[counts < 2]
    if len(rare):
        named = ", ".join(repr(c) for c in sorted(rare.index)[:10])
        more = f" and {len(rare) - 10} more" if len(rare) > 10 else ""
        if not num_unlabelled:  # a fully labelled table trains as before, with a note
            say_notes([f"label column {label!r}: class(es) {named}{more} have one labelled "
                       "row; they cannot be both learned and validated"], say)
            return
        raise DataError(f"label column {label!r}: class(es) {named}{more} have fewer than 2 "
                        "labelled rows; label at least 2 rows of each class, or drop the "
                        "rows of those classes")


def labelled_rows(df: pd.DataFrame, label: str, what: str, say: Say, *,
                  numbers: bool = False) -> np.ndarray:
    """Positions of the rows of ``df`` with a label (``numbers``: a finite number); a
    warning counts the others."""
    positions = labelled_positions(df, label, what, numbers=numbers)
    if len(positions) < len(df):
        say_notes([f"{len(df) - len(positions):,} row(s) of {what} have no {label!r} "
                   "value and are left out of training"], say)
    return positions


def fit_transform(schema: Schema, train: pd.DataFrame, *, image_size: int | None,
                  text_encoder: str, image_augment: str | dict | None,
                  audio_augment: str | dict | None = "auto",
                  budget: TimeBudget | None = None, texts: pd.DataFrame | None = None,
                  seed: int = 0, say: Callable[[str], None] = print) -> TableTransform:
    """Step 3: the per-modality transforms, fitted on the training rows. ``texts``: every
    row whose text will be embedded at fit (training and validation), for the budget check
    of :func:`budget_text_encoder`."""
    augment = (image_augment if isinstance(image_augment, dict)
               else IMAGE_AUGMENT_CHOICES[image_augment or "none"])
    if budget is not None:
        text_encoder = budget_text_encoder(text_encoder, schema, train if texts is None else texts,
                                           budget, say)
    transform = TableTransform(schema, image_size=image_size, text_encoder=text_encoder,
                               augment=augment,
                               audio_augment=resolve_audio_augment(audio_augment, schema)).fit(train)
    if image_augment == "auto":
        transform.augment = auto_image_augment(transform, train, seed=seed, say=say)
    return transform


def auto_image_augment(transform: TableTransform, train: pd.DataFrame, *, seed: int,
                       say: Callable[[str], None]) -> dict | None:
    """``image_augment="auto"``: mirror the training images left-right ("hflip") when
    :func:`~polymodal.api.mirror_check.check_mirroring` finds a mirrored image keeps its
    label, else no augmentation; said on the console with the figures."""
    from polymodal.api.mirror_check import check_mirroring

    check = check_mirroring(transform, train, seed=seed)
    if check is None:
        return None
    say(f"images {'mirrored' if check.keeps else 'not mirrored'} in training: "
        f"{check.describe()}; --image-augment {'none' if check.keeps else 'hflip'} to "
        "decide otherwise")
    return IMAGE_AUGMENT_CHOICES["hflip"] if check.keeps else None


def budget_text_encoder(kind: str, schema: Schema, df: pd.DataFrame, budget: TimeBudget,
                        say: Callable[[str], None]) -> str:
    """``"auto"`` as the time limit allows: MiniLM unless embedding the table's texts would
    take more than TEXT_MAX_SHARE of the time left (estimated from a timed probe), then the
    hashed n-grams, said on the console. An explicit choice is kept as it is."""
    from polymodal.data.text import minilm_available, minilm_seconds

    columns = schema.by_modality("text")
    if kind != "auto" or not columns or budget.time_limit_s is None or not minilm_available():
        return kind
    cells = [v for c in columns for v in df[c][present_mask(df[c])].tolist()]
    estimate_s, todo = minilm_seconds(cells)
    allowed_s = TEXT_MAX_SHARE * max(0.0, budget.left_s())
    if estimate_s <= allowed_s:
        return kind
    say(f"[yellow]note:[/] text embedded with hashed n-grams, not MiniLM: MiniLM would take "
        f"~{estimate_s:.0f} s for {todo:,} new texts, more than {TEXT_MAX_SHARE:.0%} of the "
        f"{budget.left_s():.0f} s left (pass text_encoder='minilm' / --text-encoder minilm "
        "to insist)")
    return "hashed"


def add_synthetic_rows(train: pd.DataFrame, marked: pd.DataFrame | None, synthesize,
                       budget: TimeBudget, log: list, *, label: str
                       ) -> tuple[pd.DataFrame, dict | None]:
    """Step 4: the real training rows, the table's marked rows of classes the training
    rows have, and (with ``synthesize``) new rows made within SYNTHESIS_SHARE of the
    budget left; and the augmentation summary (``None`` when nothing was marked or made)."""
    if marked is None or (synthesize is None and marked.empty):
        return train, None
    start = time.perf_counter()
    known = set(map(str, train[label]))
    usable = marked.iloc[np.flatnonzero(present_mask(marked[label]) & marked[label].astype(str)
                                        .isin(known).to_numpy())] if len(marked) else marked
    rows, summary = pd.DataFrame(columns=train.columns), None
    if synthesize is not None:
        rows, summary = synthesize(train, label, time_limit_s=budget.share_s(SYNTHESIS_SHARE))
    if summary is None:
        summary = {"marker": getattr(synthesize, "marker", SYNTHETIC_COLUMN), "label": label,
                   "num_real": len(train), "num_synthetic": 0, "generator": None,
                   "filter": None}
    summary["num_marked_used"] = len(usable)
    summary["num_marked_left_out"] = len(marked) - len(usable)
    train = concat_rows([train, usable, rows], train.attrs)
    log.append({"event": "augmented", "num_train_rows": len(train),
                "time_s": time.perf_counter() - start})
    return train, summary


def make_datasets(train: pd.DataFrame, val: pd.DataFrame, transform: TableTransform, *,
                  seed: int, log: list) -> tuple[TableDataset, TableDataset]:
    """Step 5: the training and validation datasets; every media file is decoded once, in
    parallel on large tables, before anything reads them."""
    spec = transform.feature_spec()
    train_ds = TableDataset(train, transform, train=True, seed=seed,
                            cache_media=_cache_media(spec, len(train)))
    val_ds = TableDataset(val, transform, cache_media=True)
    if spec["image_shapes"] or spec["audio_shapes"]:
        start = time.perf_counter()
        for ds in (train_ds, val_ds):
            if ds.cache_media:
                ds.preload_media(num_workers=_decode_workers(len(ds)))
        log.append({"event": "media_decoded", "num_rows": len(train_ds) + len(val_ds),
                    "time_s": time.perf_counter() - start})
    return train_ds, val_ds


def training_dataset(train: pd.DataFrame, transform: TableTransform, *,
                     seed: int) -> TableDataset:
    """The training rows alone as :func:`make_datasets` makes them (media decoded once):
    what another rank trains the network on under ``torchrun``."""
    spec = transform.feature_spec()
    dataset = TableDataset(train, transform, train=True, seed=seed,
                           cache_media=_cache_media(spec, len(train)))
    if (spec["image_shapes"] or spec["audio_shapes"]) and dataset.cache_media:
        dataset.preload_media(num_workers=_decode_workers(len(dataset)))
    return dataset


def _cache_media(spec: dict, num_rows: int) -> bool:
    """Whether decoded images/audio of ``num_rows`` rows fit in MEDIA_CACHE_BYTES."""
    per_row = sum(math.prod(s) for s in spec["image_shapes"].values())  # uint8 pixels
    per_row += 4 * sum(math.prod(s) for s in spec["audio_shapes"].values())  # float32
    return per_row * num_rows <= MEDIA_CACHE_BYTES


def _cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _decode_workers(num_rows: int) -> int:
    """Worker processes that decode a table's media files: none for small tables (starting
    processes costs more than it saves), else one per core the process may use."""
    if num_rows < PARALLEL_DECODE_MIN_ROWS or "fork" not in multiprocessing.get_all_start_methods():
        return 0  # spawned workers would each get a pickled copy of the transform
    cores = _cores()
    return cores if cores > 1 else 0
