"""Predictor metrics: one function per problem type, each returning a flat dict of floats.

Classification: accuracy, balanced accuracy, macro-F1, AUROC (one-vs-rest macro for
multiclass), log-loss and expected calibration error. Regression: RMSE, MAE, R².
Multilabel: micro/macro F1, subset accuracy and per-label F1.
"""

from __future__ import annotations

import numpy as np
from sklearn import metrics as skm

# The metric each problem type is selected on, and whether larger is better.
PRIMARY_METRIC = {
    "binary": ("accuracy", "max"),
    "multiclass": ("accuracy", "max"),
    "regression": ("rmse", "min"),
    "multilabel": ("f1_macro", "max"),
}


def expected_calibration_error(y_true: np.ndarray, proba: np.ndarray, *, num_bins: int = 15) -> float:
    """ECE of the top-class confidence (Guo et al. 2017, Eq. 3), equal-width bins."""
    proba = np.asarray(proba, dtype=np.float64)
    confidence = proba.max(axis=1)
    correct = (proba.argmax(axis=1) == np.asarray(y_true)).astype(np.float64)
    edges = np.linspace(0.0, 1.0, num_bins + 1)
    bins = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, num_bins - 1)
    ece = 0.0
    for b in range(num_bins):
        in_bin = bins == b
        if in_bin.any():
            ece += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(ece)


def reliability_curve(y_true: np.ndarray, proba: np.ndarray, *, num_bins: int = 10):
    """(mean confidence, accuracy, count) per non-empty bin, for calibration plots."""
    proba = np.asarray(proba, dtype=np.float64)
    confidence = proba.max(axis=1)
    correct = (proba.argmax(axis=1) == np.asarray(y_true)).astype(np.float64)
    edges = np.linspace(0.0, 1.0, num_bins + 1)
    bins = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, num_bins - 1)
    rows = [(confidence[bins == b].mean(), correct[bins == b].mean(), int((bins == b).sum()))
            for b in range(num_bins) if (bins == b).any()]
    return np.array(rows, dtype=np.float64).reshape(-1, 3)


def classification_metrics(y_true: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    """Metrics for integer labels ``y_true`` (N,) in [0, K) and probabilities (N, K)."""
    y_true = np.asarray(y_true, dtype=np.int64)
    proba = np.asarray(proba, dtype=np.float64)
    n_classes = proba.shape[1]
    y_pred = proba.argmax(axis=1)
    labels = np.arange(n_classes)
    out = {
        "accuracy": float(skm.accuracy_score(y_true, y_pred)),
        "balanced_accuracy": float(skm.balanced_accuracy_score(y_true, y_pred)),
        "f1_macro": float(skm.f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
        "log_loss": float(skm.log_loss(y_true, np.clip(proba, 1e-12, 1.0), labels=labels)),
        "ece": expected_calibration_error(y_true, proba),
    }
    present = np.unique(y_true)
    if len(present) >= 2:
        if n_classes == 2:
            out["auroc"] = float(skm.roc_auc_score(y_true, proba[:, 1]))
        else:
            # Macro one-vs-rest over the classes present in y_true, renormalised.
            sub = proba[:, present] / np.clip(proba[:, present].sum(axis=1, keepdims=True), 1e-12, None)
            if len(present) == 2:
                out["auroc"] = float(skm.roc_auc_score(y_true == present[1], sub[:, 1]))
            else:
                out["auroc"] = float(skm.roc_auc_score(y_true, sub, multi_class="ovr", labels=present))
    return out


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    return {
        "rmse": float(np.sqrt(np.mean((y_true - y_pred) ** 2))),
        "mae": float(np.mean(np.abs(y_true - y_pred))),
        "r2": float(skm.r2_score(y_true, y_pred)) if len(y_true) > 1 else float("nan"),
    }


def multilabel_metrics(
    y_true: np.ndarray, proba: np.ndarray, *, label_names: list[str] | None = None, threshold: float = 0.5
) -> dict[str, float]:
    """Metrics for multi-hot ``y_true`` (N, K) and per-label probabilities (N, K)."""
    y_true = np.asarray(y_true).astype(np.int64)
    y_pred = (np.asarray(proba) >= threshold).astype(np.int64)
    out = {
        "f1_micro": float(skm.f1_score(y_true, y_pred, average="micro", zero_division=0)),
        "f1_macro": float(skm.f1_score(y_true, y_pred, average="macro", zero_division=0)),
        "subset_accuracy": float((y_true == y_pred).all(axis=1).mean()),
    }
    names = label_names or [str(k) for k in range(y_true.shape[1])]
    per_label = skm.f1_score(y_true, y_pred, average=None, zero_division=0)
    out.update({f"f1[{name}]": float(v) for name, v in zip(names, per_label, strict=True)})
    return out


def compute_metrics(problem_type: str, y_true, outputs, **kw) -> dict[str, float]:
    """Dispatch on the problem type; ``outputs`` are probabilities or predicted values."""
    if problem_type in ("binary", "multiclass"):
        return classification_metrics(y_true, outputs)
    if problem_type == "regression":
        return regression_metrics(y_true, outputs)
    if problem_type == "multilabel":
        return multilabel_metrics(y_true, outputs, **kw)
    raise ValueError(f"unknown problem type {problem_type!r}")
