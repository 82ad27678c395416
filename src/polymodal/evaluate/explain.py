"""What a fitted predictor relies on: per-modality ablation and permutation importance.

Both re-score the predictor on a table with some information taken away and report
how much its primary metric (:data:`~polymodal.evaluate.metrics.PRIMARY_METRIC`) gets
worse:

- :func:`modality_ablation` masks out every feature column of one modality at a time
  (``predict_proba(df, drop=columns)``: the predictor sees those cells as missing, the
  same path a row with a missing image takes), so it answers "what does each modality
  contribute on top of the others".
- :func:`permutation_importance` shuffles one column's cells across rows (Breiman 2001,
  "Random Forests", §10; the model-agnostic form of Fisher, Rudin & Dominici 2019,
  "All models are wrong, but many are useful", Eq. 3.2). The column keeps its
  distribution but loses its link to the label.

Both work with any object that has the Predictor interface: ``predict_proba(df, *,
drop=None)`` (classification, multilabel), ``predict(df, *, drop=None)`` (regression),
``schema_``, ``problem_type_`` and ``classes_``. The sign convention is the same for
every metric: ``contribution``/``importance`` > 0 means the information helps, whatever
the metric's direction (RMSE falls when it helps, accuracy rises).
"""

from __future__ import annotations

import numbers

import numpy as np
import pandas as pd

from polymodal.data.cells import category_key, cell_tags, column_numbers, present_mask
from polymodal.data.readers import read_table
from polymodal.errors import ConfigError, DataError
from polymodal.evaluate.metrics import PRIMARY_METRIC, compute_metrics

# The row in modality_ablation that masks nothing.
BASELINE_ROW = "none"


# --------------------------------------------------------------------------- targets


def label_targets(predictor, df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The label column of ``df`` encoded the way metrics take it, and which rows can be scored.

    Returns ``(y_true, scored)`` over all rows of ``df``: class indices into
    ``predictor.classes_`` (N,) for binary/multiclass, floats (N,) for regression,
    multi-hot (N, K) for multilabel; ``scored`` (N,) bool is False where the label is
    missing or is a class the predictor never saw (those rows cannot be scored).
    """
    label = predictor.schema_.label
    if label not in df.columns:
        raise DataError(
            f"the table has no label column {label!r}, so the predictor cannot be scored on it; "
            f"pass rows that include {label!r} (columns given: {list(df.columns)[:20]})"
        )
    cells = df[label]
    problem = predictor.problem_type_
    present = present_mask(cells)
    if problem == "regression":
        values = column_numbers(cells)
        return values, present & np.isfinite(values)
    classes = [category_key(c) for c in predictor.classes_]
    if problem == "multilabel":
        delimiter = predictor.schema_.columns[label].delimiter
        column_of = {tag: k for k, tag in enumerate(classes)}
        multi_hot = np.zeros((len(df), len(classes)), dtype=np.int64)  # (N, K)
        for i, cell in enumerate(cells):
            for tag in cell_tags(cell, delimiter):
                if tag in column_of:
                    multi_hot[i, column_of[tag]] = 1
        return multi_hot, present
    index_of = {key: k for k, key in enumerate(classes)}
    y_true = np.array(
        [
            index_of.get(category_key(c), -1) if ok else -1
            for c, ok in zip(cells, present, strict=True)
        ],
        dtype=np.int64,
    )
    return y_true, y_true >= 0


def predictor_outputs(predictor, df: pd.DataFrame, *, drop: set[str] | None = None) -> np.ndarray:
    """Probabilities (N, K) in ``classes_`` order, or predicted values (N,) for regression."""
    if predictor.problem_type_ == "regression":
        return np.asarray(predictor.predict(df, drop=drop), dtype=np.float64).reshape(-1)
    proba = predictor.predict_proba(df, drop=drop)
    if isinstance(proba, pd.DataFrame):
        # Align columns to classes_ by name when they carry the class names; else trust the order.
        by_key = {category_key(c): c for c in proba.columns}
        keys = [category_key(c) for c in predictor.classes_]
        if all(k in by_key for k in keys):
            proba = proba[[by_key[k] for k in keys]]
        proba = proba.to_numpy()
    proba = np.asarray(proba, dtype=np.float64)
    assert proba.ndim == 2 and proba.shape[0] == len(df), proba.shape
    return proba


def primary_metric(predictor) -> tuple[str, str]:
    """``(name, "max" | "min")`` of the metric the predictor is judged on."""
    return PRIMARY_METRIC[predictor.problem_type_]


def _score(predictor, y_true, outputs, scored) -> float:
    name, _ = primary_metric(predictor)
    kwargs = {}
    if predictor.problem_type_ == "multilabel":
        kwargs["label_names"] = [str(c) for c in predictor.classes_]
    return float(
        compute_metrics(predictor.problem_type_, y_true[scored], outputs[scored], **kwargs)[name]
    )


def _gain(predictor, reference: float, degraded: float) -> float:
    """How much worse ``degraded`` is than ``reference``, positive = worse, for either direction."""
    _, direction = primary_metric(predictor)
    return reference - degraded if direction == "max" else degraded - reference


def as_table(data) -> pd.DataFrame:
    """A DataFrame as is; a path to a table file or folder read with :func:`read_table`."""
    return data if isinstance(data, pd.DataFrame) else read_table(data)


def _scorable(predictor, df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    y_true, scored = label_targets(predictor, df)
    if not scored.any():
        raise DataError(
            f"no row of the table has a usable value in label column {predictor.schema_.label!r} "
            f"({len(df)} rows); pass rows with known labels"
        )
    return y_true, scored


# --------------------------------------------------------------------------- ablation


def modality_ablation(predictor, df) -> pd.DataFrame:
    """The primary metric with every modality, then with each modality masked out.

    ``df`` is a DataFrame with the label column, or a path to such a table.

    Returns one row per modality, after a first row ``masked == "none"`` (the full
    model), with columns:

    - ``masked``: the modality masked out, ``columns``: its feature columns (comma-separated);
    - ``metric``: the primary metric's name, ``value``: its value with that modality masked;
    - ``change``: ``value`` minus the full model's value (raw, in the metric's direction);
    - ``contribution``: how much worse the predictor does without the modality
      (positive = the modality helps; the sign is flipped for metrics where lower is better).

    Rows after the first are sorted by ``contribution``, largest first. Deterministic:
    nothing is random.
    """
    df = as_table(df)
    y_true, scored = _scorable(predictor, df)
    name, _ = primary_metric(predictor)
    features = predictor.schema_.features()
    full = _score(predictor, y_true, predictor_outputs(predictor, df), scored)
    rows = [
        {
            "masked": BASELINE_ROW,
            "columns": "",
            "metric": name,
            "value": full,
            "change": 0.0,
            "contribution": 0.0,
        }
    ]
    modalities = list(dict.fromkeys(predictor.schema_.modality(c) for c in features))
    for modality in modalities:
        columns = predictor.schema_.by_modality(modality)
        value = _score(
            predictor, y_true, predictor_outputs(predictor, df, drop=set(columns)), scored
        )
        rows.append(
            {
                "masked": modality,
                "columns": ", ".join(columns),
                "metric": name,
                "value": value,
                "change": value - full,
                "contribution": _gain(predictor, full, value),
            }
        )
    out = pd.DataFrame(rows)
    ordered = out.iloc[1:].sort_values("contribution", ascending=False, kind="stable")
    out = pd.concat([out.iloc[:1], ordered], ignore_index=True)
    out.attrs["num_rows_scored"] = int(scored.sum())
    return out


# --------------------------------------------------------------------------- permutation


def _check_positive_int(name: str, value, fix: str) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ConfigError(f"{name} must be a positive integer; got {value!r}. {fix}")


def permutation_importance(
    predictor,
    df,
    *,
    n_repeats: int = 3,
    seed: int = 0,
    max_rows: int = 2000,
) -> pd.DataFrame:
    """Permutation importance of every feature column, on at most ``max_rows`` rows of ``df``
    (a DataFrame with the label column, or a path to one).

    For each feature column, its cells are shuffled across the (scored) rows
    ``n_repeats`` times and the predictor re-scored; ``importance`` is how much the
    primary metric gets worse (positive = the column helps). Rows beyond ``max_rows``
    are left out by a seeded sample, so each call costs at most
    ``1 + n_repeats * num_features`` predictions on ``max_rows`` rows.

    Returns one row per feature column, sorted by ``importance_mean`` (largest first),
    with columns ``column``, ``modality``, ``metric``, ``importance_mean``,
    ``importance_std`` (over repeats; 0 when ``n_repeats == 1``). ``attrs`` holds
    ``baseline`` (the unshuffled score) and ``num_rows_scored``.

    The same ``seed`` gives the same result; each column's shuffles depend only on
    ``seed`` and the column's position among the features, not on the other columns.
    """
    _check_positive_int("n_repeats", n_repeats, "Use e.g. n_repeats=3.")
    _check_positive_int("max_rows", max_rows, "Use e.g. max_rows=2000.")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer; got {seed!r}")

    df = as_table(df)
    y_true, scored = _scorable(predictor, df)
    # Only rows that can be scored take part; shuffling among them keeps the sample the same.
    positions = np.flatnonzero(scored)
    if len(positions) > max_rows:
        sampler = np.random.default_rng(np.random.SeedSequence([seed, 0]))
        positions = np.sort(sampler.choice(positions, size=max_rows, replace=False))
    rows_df = df.iloc[positions]
    y_rows = y_true[positions]
    everyone = np.ones(len(positions), dtype=bool)

    name, _ = primary_metric(predictor)
    baseline = _score(predictor, y_rows, predictor_outputs(predictor, rows_df), everyone)
    records = []
    for k, column in enumerate(predictor.schema_.features()):
        if column not in rows_df.columns:
            raise DataError(
                f"feature column {column!r} is not in the table, so it cannot be permuted; "
                f"pass the columns the predictor was trained on"
            )
        rng = np.random.default_rng(np.random.SeedSequence([seed, 1, k]))
        gains = []
        for _ in range(n_repeats):
            shuffled = rows_df.copy()  # keeps attrs (base_dir for relative media paths)
            cells = rows_df[column].iloc[rng.permutation(len(rows_df))]
            cells.index = rows_df.index  # assign by position, keeping the column's dtype
            shuffled[column] = cells
            value = _score(predictor, y_rows, predictor_outputs(predictor, shuffled), everyone)
            gains.append(_gain(predictor, baseline, value))
        records.append(
            {
                "column": column,
                "modality": predictor.schema_.modality(column),
                "metric": name,
                "importance_mean": float(np.mean(gains)),
                "importance_std": float(np.std(gains)),
            }
        )
    out = pd.DataFrame(
        records, columns=["column", "modality", "metric", "importance_mean", "importance_std"]
    )
    out = out.sort_values("importance_mean", ascending=False, kind="stable").reset_index(drop=True)
    out.attrs["baseline"] = baseline
    out.attrs["num_rows_scored"] = len(positions)
    return out
