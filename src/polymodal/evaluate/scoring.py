"""A predictor's outputs scored against a table's labels, in the predictor's conventions.

Outputs are ``(N, K)`` probabilities (binary with K = 2, multiclass, multilabel) or
``(N,)`` standardised values (regression); ``transform`` is the fitted
:class:`~polymodal.data.transforms.TableTransform`, which turns standardised values back
into the label's units.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from polymodal.errors import DataError
from polymodal.evaluate.metrics import compute_metrics


def targets(dataset, problem_type: str, transform, label: str) -> tuple[np.ndarray, np.ndarray]:
    """Encoded labels as metrics take them (class indices, values in the label's units or
    multi-hot) and the (N,) mask of rows that have one."""
    enc = dataset.encoded
    if enc.label is None:
        raise DataError(f"the table has no label column {label!r}, so it cannot be scored; "
                        "pass rows that include it")
    known = np.asarray(enc.label_present, dtype=bool)
    if problem_type == "regression":
        return np.asarray(transform.inverse_label(np.nan_to_num(enc.label))), known
    if problem_type == "multilabel":
        return np.asarray(enc.label).astype(np.int64), known
    return np.asarray(enc.label, dtype=np.int64), known & (np.asarray(enc.label) >= 0)


def log_loss_scorer(problem_type: str, y_true: np.ndarray, known: np.ndarray
                    ) -> Callable[[np.ndarray], float] | None:
    """``outputs -> mean negative log-likelihood`` of the labelled rows' classes (binary and
    multiclass; None for the other problem types): what decides between models of equal
    accuracy, which a small validation set often leaves."""
    if problem_type not in ("binary", "multiclass"):
        return None
    rows, classes = np.flatnonzero(known), np.asarray(y_true)[known]

    def log_loss(outputs: np.ndarray) -> float:
        p = np.asarray(outputs, dtype=np.float64)[rows, classes]
        return float(-np.mean(np.log(np.clip(p, 1e-15, 1.0))))

    return log_loss


def primary_metric(problem_type: str, transform, y_true: np.ndarray, outputs: np.ndarray) -> float:
    """The primary metric alone, as :func:`compute_metrics` defines it but without the
    others (ensemble selection scores hundreds of blends)."""
    if problem_type in ("binary", "multiclass"):
        return float(np.mean(outputs.argmax(axis=1) == y_true))  # accuracy
    if problem_type == "regression":
        values = transform.inverse_label(outputs)
        return float(np.sqrt(np.mean((np.asarray(y_true, dtype=np.float64) - values) ** 2)))
    from sklearn.metrics import f1_score

    predicted = (outputs >= 0.5).astype(np.int64)
    return float(f1_score(y_true, predicted, average="macro", zero_division=0))


def all_metrics(problem_type: str, transform, y_true: np.ndarray,
                outputs: np.ndarray) -> dict[str, float]:
    """Every metric of the problem type, regression in the label's own units."""
    if problem_type == "regression":
        return compute_metrics(problem_type, y_true, transform.inverse_label(outputs))
    if problem_type == "multilabel":
        return compute_metrics(problem_type, y_true, outputs,
                               label_names=[str(t) for t in transform.classes_])
    return compute_metrics(problem_type, y_true, outputs)


def scorer(dataset, problem_type: str, transform, label: str
           ) -> tuple[Callable[[np.ndarray], float], np.ndarray, np.ndarray]:
    """``(score(outputs) -> primary metric, y_true, known)`` over the dataset's labelled rows."""
    y_true, known = targets(dataset, problem_type, transform, label)
    if not known.any():
        raise DataError(f"no validation row has a {label!r} value the training rows have "
                        "(unseen classes cannot be scored); pass more rows or other tuning_data")
    y_known = y_true[known]

    def score(outputs: np.ndarray) -> float:
        return primary_metric(problem_type, transform, y_known, np.asarray(outputs)[known])

    return score, y_true, known
