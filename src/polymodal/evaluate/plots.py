"""Report figures: each function draws one small matplotlib figure and returns PNG bytes.

Figures are built on :class:`matplotlib.figure.Figure` directly, never through
``pyplot``: no global state, no display needed, and nothing to close, so they are
safe in a server thread. The PNG is rendered by the Agg backend.

Functions that have nothing sensible to draw (a confusion matrix over more than
:data:`MAX_CONFUSION_CLASSES` classes, an empty training history) return ``None``.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from polymodal.evaluate.metrics import expected_calibration_error, reliability_curve

# Above this many classes a confusion matrix is unreadable; the report skips it.
MAX_CONFUSION_CLASSES = 30
# Tick labels longer than this are rotated so they do not overlap.
ROTATE_LABELS_LONGER_THAN = 3
# Bar charts show at most this many bars (the largest).
MAX_BARS = 25
DPI = 100

_BLUE = "#3b6ea8"
_ORANGE = "#d9822b"
_GREY = "#888888"


def _new_figure(width_in: float, height_in: float) -> Figure:
    fig = Figure(figsize=(width_in, height_in), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def _short(text, width: int = 24) -> str:
    text = str(text)
    return text if len(text) <= width else text[: width - 1] + "…"


# --------------------------------------------------------------------------- classification


def confusion_matrix_png(
    y_true: np.ndarray, y_pred: np.ndarray, class_names: Sequence
) -> bytes | None:
    """Confusion matrix normalised per true class (row), each cell annotated with its count.

    ``y_true``/``y_pred`` are class indices (N,) into ``class_names``. Returns ``None``
    when there are more than :data:`MAX_CONFUSION_CLASSES` classes.
    """
    num_classes = len(class_names)
    if num_classes > MAX_CONFUSION_CLASSES:
        return None
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    counts = np.zeros((num_classes, num_classes), dtype=np.int64)  # (true, predicted)
    np.add.at(counts, (y_true, y_pred), 1)
    row_totals = counts.sum(axis=1, keepdims=True)
    rates = counts / np.maximum(row_totals, 1)  # a class absent from y_true stays all zero

    side_in = min(10.0, 2.5 + 0.38 * num_classes)
    fig = _new_figure(side_in + 1.4, side_in)
    ax = fig.add_subplot()
    image = ax.imshow(rates, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, fraction=0.046, label="share of the true class")
    names = [_short(c) for c in class_names]
    rotate = max((len(n) for n in names), default=0) > ROTATE_LABELS_LONGER_THAN
    ax.set_xticks(
        range(num_classes), names, rotation=45 if rotate else 0, ha="right" if rotate else "center"
    )
    ax.set_yticks(range(num_classes), names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(f"Confusion matrix ({int(counts.sum()):,} rows)")
    if num_classes <= 15:  # more cells than this and the numbers no longer fit
        font_size = 9 if num_classes <= 8 else 7
        for i in range(num_classes):
            for j in range(num_classes):
                if counts[i, j]:
                    ax.text(
                        j,
                        i,
                        f"{rates[i, j]:.0%}\n{counts[i, j]:,}",
                        ha="center",
                        va="center",
                        fontsize=font_size,
                        color="white" if rates[i, j] > 0.5 else "black",
                    )
    return _png(fig)


def calibration_png(y_true: np.ndarray, proba: np.ndarray, *, num_bins: int = 10) -> bytes:
    """Reliability diagram of the top-class confidence, ECE in the title.

    ``y_true`` (N,) class indices, ``proba`` (N, K). Points above the diagonal are
    under-confident bins, below it over-confident; the lower panel shows how many
    rows fall in each confidence bin.
    """
    curve = reliability_curve(
        y_true, proba, num_bins=num_bins
    )  # (bins, 3): confidence, accuracy, count
    ece = expected_calibration_error(y_true, proba)
    fig = _new_figure(4.6, 4.8)
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    top.plot([0, 1], [0, 1], linestyle="--", color=_GREY, label="perfect calibration")
    top.plot(curve[:, 0], curve[:, 1], marker="o", color=_BLUE, label="model")
    top.set_xlim(0, 1)
    top.set_ylim(0, 1.02)
    top.set_ylabel("accuracy")
    top.set_title(f"Calibration (ECE = {ece:.3f})")
    top.legend(loc="upper left", fontsize=8)
    width = 1.0 / num_bins
    bottom.bar(curve[:, 0], curve[:, 2], width=width * 0.8, color=_BLUE, alpha=0.7)
    bottom.set_xlabel("confidence (top-class probability)")
    bottom.set_ylabel("rows")
    return _png(fig)


def per_label_f1_png(f1_by_label: Mapping[str, float]) -> bytes:
    """Horizontal bars of F1 per label (multilabel), worst at the bottom."""
    items = sorted(f1_by_label.items(), key=lambda kv: kv[1], reverse=True)[:MAX_BARS]
    fig = _new_figure(5.5, 1.2 + 0.3 * len(items))
    ax = fig.add_subplot()
    names = [_short(k) for k, _ in items][::-1]
    values = [v for _, v in items][::-1]
    ax.barh(names, values, color=_BLUE)
    ax.set_xlim(0, 1)
    ax.set_xlabel("F1")
    shown = f" (best {len(items)} of {len(f1_by_label)})" if len(f1_by_label) > len(items) else ""
    ax.set_title(f"F1 per label{shown}")
    for y, v in enumerate(values):
        ax.text(min(v + 0.01, 0.9), y, f"{v:.2f}", va="center", fontsize=8)
    return _png(fig)


# --------------------------------------------------------------------------- regression


def regression_scatter_png(
    y_true: np.ndarray, y_pred: np.ndarray, *, label: str = "label"
) -> bytes:
    """Predicted vs true values with the y = x line; many points are drawn small and faint."""
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    fig = _new_figure(4.6, 4.4)
    ax = fig.add_subplot()
    size, alpha = (16, 0.8) if len(y_true) <= 500 else (4, 0.3)
    ax.scatter(y_true, y_pred, s=size, alpha=alpha, color=_BLUE, edgecolors="none")
    both = np.concatenate([y_true, y_pred])
    both = both[np.isfinite(both)]
    low, high = (float(both.min()), float(both.max())) if both.size else (0.0, 1.0)
    pad = 0.05 * (high - low or 1.0)
    ax.plot([low - pad, high + pad], [low - pad, high + pad], linestyle="--", color=_GREY)
    ax.set_xlim(low - pad, high + pad)
    ax.set_ylim(low - pad, high + pad)
    ax.set_xlabel(f"true {_short(label)}")
    ax.set_ylabel(f"predicted {_short(label)}")
    ax.set_title(f"Predicted vs true ({len(y_true):,} rows)")
    return _png(fig)


# --------------------------------------------------------------------------- explanations


def ablation_png(ablation: pd.DataFrame) -> bytes:
    """Bars of each modality's contribution, from :func:`~polymodal.evaluate.explain.modality_ablation`."""
    rows = ablation[ablation["masked"] != "none"].iloc[:MAX_BARS]
    metric = str(ablation["metric"].iloc[0]) if len(ablation) else "metric"
    full = float(ablation["value"].iloc[0]) if len(ablation) else float("nan")
    fig = _new_figure(6.0, 1.4 + 0.35 * max(len(rows), 1))
    ax = fig.add_subplot()
    names = list(rows["masked"])[::-1]
    values = list(rows["contribution"])[::-1]
    ax.barh(names, values, color=[_BLUE if v >= 0 else _ORANGE for v in values])
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_xlabel(f"{metric} lost when the modality is masked")
    ax.set_title(f"Modality contributions (all modalities: {metric} = {full:.3g})", fontsize=11)
    return _png(fig)


def importance_png(importance: pd.DataFrame) -> bytes:
    """Bars of permutation importance (mean ± std over repeats), largest at the top."""
    rows = importance.iloc[:MAX_BARS]
    metric = str(importance["metric"].iloc[0]) if len(importance) else "metric"
    fig = _new_figure(5.5, 1.4 + 0.3 * max(len(rows), 1))
    ax = fig.add_subplot()
    names = [f"{_short(c)} ({m})" for c, m in zip(rows["column"], rows["modality"], strict=True)][
        ::-1
    ]
    means = list(rows["importance_mean"])[::-1]
    stds = list(rows["importance_std"])[::-1]
    ax.barh(names, means, xerr=stds, color=[_BLUE if v >= 0 else _ORANGE for v in means], capsize=3)
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_xlabel(f"{metric} lost when the column is shuffled")
    shown = f" (top {len(rows)} of {len(importance)})" if len(importance) > len(rows) else ""
    ax.set_title(f"Permutation importance{shown}")
    return _png(fig)


def accuracy_bars_png(names: Sequence[str], values: Sequence[float], *, title: str) -> bytes:
    """Horizontal bars of accuracies in [0, 1], labelled with their values, first at the top."""
    fig = _new_figure(6.0, 1.2 + 0.5 * max(len(names), 1))
    ax = fig.add_subplot()
    bars = ax.barh([_short(n, 60) for n in names], values,
                   color=[(_GREY, _BLUE)[i % 2] for i in range(len(values))])
    ax.bar_label(bars, labels=[f"{v:.3f}" for v in values], padding=3)
    ax.set_xlim(0, 1.05)
    ax.invert_yaxis()
    ax.set_title(title, fontsize=10)
    return _png(fig)


# --------------------------------------------------------------------------- training


def _metric_series(history: Sequence[Mapping], preferred: str | None) -> dict[str, list]:
    """Metric name -> [(step, value)] for the numeric metrics logged in the history.

    Keeps only ``val_<preferred>`` / ``<preferred>`` when logged, else every metric (at most 4).
    """
    series: dict[str, list] = {}
    for i, row in enumerate(history):
        metrics = row.get("metrics") or {}
        for key, value in metrics.items():
            if isinstance(value, int | float | np.number) and np.isfinite(value):
                series.setdefault(str(key), []).append((row.get("step", i), float(value)))
    if preferred is not None:
        wanted = [k for k in (f"val_{preferred}", preferred) if k in series]
        if wanted:
            return {wanted[0]: series[wanted[0]]}
    return dict(list(series.items())[:4])


def training_curve_png(history: Sequence[Mapping], *, metric: str | None = None) -> bytes | None:
    """Training loss and the validation metric vs step, or ``None`` for an empty history.

    ``history`` is the predictor's ``training_history_``: dicts with ``step``, ``epoch``,
    ``loss``, ``metrics`` (a dict) and ``elapsed_s``. ``metric`` picks the metric to
    draw (``val_<metric>`` or ``<metric>``); by default every logged metric.
    """
    if not history:
        return None
    steps = [row.get("step", i) for i, row in enumerate(history)]
    # The training loop repeats the last training loss in its "eval" records; when it
    # tags records, draw the loss from the "train" ones only.
    tagged = any(row.get("event") == "train" for row in history)
    losses = [
        (s, float(row["loss"]))
        for s, row in zip(steps, history, strict=True)
        if (not tagged or row.get("event") == "train")
        and isinstance(row.get("loss"), int | float | np.number)
        and np.isfinite(row["loss"])
    ]
    metrics = _metric_series(history, metric)
    if not losses and not metrics:
        return None
    fig = _new_figure(8.0, 3.2)
    left, right = fig.subplots(1, 2)
    if losses:
        left.plot(*zip(*losses, strict=True), color=_BLUE)
    left.set_xlabel("step")
    left.set_ylabel("training loss")
    left.set_title("Loss")
    for k, (name, points) in enumerate(metrics.items()):
        right.plot(
            *zip(*points, strict=True),
            marker="o",
            markersize=3,
            label=name,
            color=_ORANGE if k == 0 else None,
        )
    right.set_xlabel("step")
    right.set_title("Validation metric")
    if metrics:
        right.legend(fontsize=8)
    elapsed = [row.get("elapsed_s") for row in history]
    elapsed = [float(e) for e in elapsed if isinstance(e, int | float | np.number)]
    total = f" in {max(elapsed):.0f} s" if elapsed else ""
    fig.suptitle(f"Training: {len(history)} log points, last step {steps[-1]}{total}")
    return _png(fig)
