"""Task heads, their losses, and how raw outputs become predictions.

Output conventions (``outputs`` = what :class:`TaskHead` returns):

==============  ==================  ==================================  =======================
problem_type    outputs             labels (from ``Batch.label``)       predict_from_outputs
==============  ==================  ==================================  =======================
binary          (B,) one logit      (B,) int64 in {0, 1}                (B,) P(class 1)
multiclass      (B, K) logits       (B,) int64 in [0, K)                (B, K) probabilities
regression      (B,) value          (B,) float32, standardised          (B,) standardised value
multilabel      (B, K) logits       (B, K) float32 multi-hot            (B, K) P(each tag)
==============  ==================  ==================================  =======================

A missing label — class index -1 (the label transform's code for missing or unseen),
or NaN — adds nothing to :func:`task_loss`, so partly labelled batches train as is.

Binary uses **one** logit (sigmoid + binary cross-entropy), not two softmax logits:
it is the same model with half the head parameters and no redundant degree of
freedom, and ``P(class 1)`` is what AUROC and thresholding want. A spec's ``n_outputs``
of 1 or 2 are both accepted for binary. Regression predicts the target on the
standardised scale the fitted label transform produced; un-standardising is that
transform's job, not the network's.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from polymodal.data.schema import PROBLEM_TYPES
from polymodal.errors import ConfigError, DataError
from polymodal.models.encoders import ConfigurableModule

# The label transform's code for a missing (or unseen) class; such rows add no loss.
MISSING_CLASS = -1


def _check_problem_type(problem_type: str) -> None:
    if problem_type not in PROBLEM_TYPES:
        raise ConfigError(f"problem_type {problem_type!r} is not one of {list(PROBLEM_TYPES)}")


def head_output_dim(problem_type: str, n_outputs: int) -> int:
    """How many numbers the head emits per row for this problem type."""
    _check_problem_type(problem_type)
    if problem_type == "binary":
        if n_outputs not in (1, 2):
            raise ConfigError(f"binary problem with n_outputs={n_outputs}; expected 1 or 2 "
                              "(two classes need one logit)")
        return 1
    if problem_type == "regression":
        if n_outputs != 1:
            raise ConfigError(f"regression with n_outputs={n_outputs}; only one target is supported, "
                              "set n_outputs to 1")
        return 1
    if problem_type == "multiclass" and n_outputs < 2:
        raise ConfigError(f"multiclass problem with n_outputs={n_outputs}; expected the number of "
                          "classes (>= 2)")
    if problem_type == "multilabel" and n_outputs < 1:
        raise ConfigError(f"multilabel problem with n_outputs={n_outputs}; expected the number of "
                          "tags (>= 1)")
    return int(n_outputs)


class TaskHead(ConfigurableModule):
    """Dropout + a linear layer from the fused embedding ``(B, in_dim)`` to the task's outputs.

    Returns ``(B,)`` for binary/regression and ``(B, K)`` otherwise (see the module table).
    """

    def __init__(self, in_dim: int, problem_type: str, n_outputs: int, *, dropout: float = 0.1):
        super().__init__()
        out_dim = head_output_dim(problem_type, n_outputs)
        if in_dim < 1 or not 0.0 <= dropout < 1.0:
            raise ConfigError(f"TaskHead: need in_dim >= 1 and dropout in [0, 1), got {in_dim}, {dropout}")
        self._store_config(in_dim=in_dim, problem_type=problem_type, n_outputs=n_outputs,
                           dropout=dropout)
        self.problem_type = problem_type
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(in_dim, out_dim)

    def forward(self, fused: torch.Tensor) -> torch.Tensor:  # (B, in_dim)
        out = self.linear(self.dropout(fused))  # (B, out_dim)
        return out.squeeze(1) if self.problem_type in ("binary", "regression") else out


def _check_labels(problem_type: str, outputs: torch.Tensor, labels: torch.Tensor) -> None:
    """Raise DataError when labels cannot belong to these outputs (shape, dtype, range)."""
    rows = outputs.shape[0]
    if problem_type in ("binary", "multiclass", "regression") and labels.shape != (rows,):
        raise DataError(f"{problem_type} labels have shape {tuple(labels.shape)}; expected ({rows},) "
                        "to match the outputs")
    if problem_type == "multilabel" and labels.shape != outputs.shape:
        raise DataError(f"multilabel labels have shape {tuple(labels.shape)}; expected "
                        f"{tuple(outputs.shape)} (one multi-hot column per tag)")
    if problem_type in ("binary", "multiclass"):
        known = labels[labels != MISSING_CLASS]
        if labels.dtype.is_floating_point:
            known = known[~known.isnan()]
            if not torch.equal(known, known.round()):
                raise DataError(f"{problem_type} labels must be class indices, got non-integer "
                                "floats; encode the label column with the fitted label transform")
        n_classes = 2 if problem_type == "binary" else outputs.shape[1]
        if known.numel() and (known.min() < 0 or known.max() >= n_classes):
            raise DataError(f"{problem_type} labels range over [{int(known.min())}, "
                            f"{int(known.max())}]; expected class indices in [0, {n_classes}) "
                            f"(or {MISSING_CLASS} for a missing label)")


def _known_labels(problem_type: str, labels: torch.Tensor) -> torch.Tensor:
    """Bool mask, shaped like ``labels``, of the labels that are not missing."""
    known = ~labels.isnan() if labels.dtype.is_floating_point else torch.ones_like(labels, dtype=torch.bool)
    if problem_type in ("binary", "multiclass"):
        known &= labels != MISSING_CLASS
    return known


def task_loss(problem_type: str, outputs: torch.Tensor, labels: torch.Tensor, *,
              label_smoothing: float = 0.0) -> torch.Tensor:
    """The mean training loss over the batch's known labels (a scalar tensor).

    binary: BCE with logits; multiclass: cross-entropy; regression: mean squared error on
    the standardised target; multilabel: BCE with logits averaged over rows and tags.
    Missing labels (class index -1, NaN values) are left out of the mean; a batch with
    none known gives a zero loss that still back-propagates (to zero gradients).
    ``label_smoothing`` (binary and multiclass) mixes that much of the uniform
    distribution into the targets, as ``torch.nn.CrossEntropyLoss`` does.
    """
    _check_problem_type(problem_type)
    if not 0.0 <= label_smoothing < 1.0:
        raise ValueError(f"label_smoothing={label_smoothing!r} must be in [0, 1)")
    _check_labels(problem_type, outputs, labels)
    known = _known_labels(problem_type, labels)  # (B,) or (B, K)
    # Missing labels are replaced by a harmless valid value, then weighted out.
    labels = torch.where(known, labels, torch.zeros((), dtype=labels.dtype, device=labels.device))
    if problem_type == "multiclass":
        losses = F.cross_entropy(outputs, labels.long(), reduction="none",
                                 label_smoothing=label_smoothing)  # (B,)
    elif problem_type == "regression":
        losses = F.mse_loss(outputs, labels.to(outputs.dtype), reduction="none")  # (B,)
    else:  # binary (B,) and multilabel (B, K)
        targets = labels.to(outputs.dtype)
        if problem_type == "binary" and label_smoothing:
            targets = targets * (1.0 - label_smoothing) + 0.5 * label_smoothing
        losses = F.binary_cross_entropy_with_logits(outputs, targets, reduction="none")
    weights = known.to(losses.dtype)
    return (losses * weights).sum() / weights.sum().clamp(min=1.0)


def predict_from_outputs(problem_type: str, outputs: torch.Tensor) -> torch.Tensor:
    """Probabilities (classification) or standardised values (regression); see the module table."""
    _check_problem_type(problem_type)
    if problem_type == "multiclass":
        return outputs.softmax(dim=-1)
    if problem_type == "regression":
        return outputs
    return torch.sigmoid(outputs)  # binary and multilabel
