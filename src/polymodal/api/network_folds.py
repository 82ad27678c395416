"""The fusion network's fold fits, for cross-validated selection on small tables.

On a small table of numbers, categories and text the network often trains in a second or
two, and it can be the best model there: judging it on one small hold-out split alone, or
leaving it out of the out-of-fold choice, loses it (bench/RESULTS.md, 'tabular_suite').
:func:`fold_fit` trains a copy of it on each fold's rows, with the recipe, seed and
network of the fit, for the steps (per row) at which the fit's network scored best — a
fixed length, so its held-out fold is not used to stop it and its out-of-fold outputs
are as honest as the classic models'. The rows are the already encoded training and
validation rows (:meth:`~polymodal.data.transforms.EncodedTable.stack`): text is not
embedded again. The network the fit trained is the one kept; the folds only judge it.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Callable

import numpy as np

from polymodal.api.candidate_outputs import candidate_outputs
from polymodal.api.candidates import NEURAL, CandidateRun
from polymodal.api.neural import NeuralCandidate
from polymodal.data.dataset import TableDataset
from polymodal.data.transforms import EncodedTable

FoldFit = Callable[[np.ndarray, np.ndarray], np.ndarray]


def fold_fit(run: CandidateRun, known_val_rows: np.ndarray, *, share: float
             ) -> tuple[FoldFit, float] | None:
    """``(fit, seconds)``: a function from a fold's (training rows, held-out rows) —
    positions in the training rows followed by ``known_val_rows`` of the validation rows,
    as :func:`~polymodal.api.candidate_schedule.all_rows` orders them — to the held-out
    rows' outputs, and what one fold fit on the fit's training rows is expected to cost.
    Each fold fit stops at ``share`` of the budget left when it starts. ``None`` when the
    network cannot be judged this way: none trained, it was never evaluated, it
    self-trained on unlabelled rows, it trained with other ``torchrun`` ranks (which wait
    for rank 0's end, not for its folds), or the table has images or audio (a fold would
    decode and train on them again: too slow to pay for)."""
    network = run.models.get(NEURAL)
    result = getattr(network, "result_", None)
    if (not isinstance(network, NeuralCandidate) or result is None or not result.best_step
            or run.spec["image_shapes"] or run.spec["audio_shapes"] or run.stream is not None
            or (run.self_training or {}).get("used")
            or (run.ranks is not None and run.ranks.leads)):
        return None
    rows = EncodedTable.stack([(run.train_ds.encoded, np.arange(len(run.train_ds))),
                               (run.val_ds.encoded, known_val_rows)])
    batch = run.recipe.training.batch_size
    epochs = result.best_step / math.ceil(len(run.train_ds) / batch)
    fit_s = next(r["fit_time_s"] for r in run.rows if r["model"] == NEURAL)
    expected_s = fit_s * result.best_step / max(1, result.steps)

    def fit(train_rows: np.ndarray, test_rows: np.ndarray) -> np.ndarray:
        steps = max(1, round(epochs * math.ceil(len(train_rows) / batch)))
        left = run.budget.left_s()
        config = dataclasses.replace(
            run.train_config(None, len(train_rows), run.seed), max_steps=steps,
            time_limit_s=None if math.isinf(left) else share * max(0.0, left),
            progress=False, early_stopping_patience=None)
        fold = NeuralCandidate(run.spec, network.network, seed=run.seed,
                               label_smoothing=network.label_smoothing)
        fold.fit(_rows(run.train_ds, rows, train_rows, train=True), None, config=config,
                 score=None, metric_name=run.metric, metric_mode=run.mode, validate=False)
        test = _rows(run.val_ds, rows, test_rows, train=False)
        return candidate_outputs(test, {NEURAL: fold}, run.spec, run.transform.vocab_)[NEURAL]

    return fit, expected_s


def _rows(like: TableDataset, encoded: EncodedTable, rows: np.ndarray, *,
          train: bool) -> TableDataset:
    """A dataset like ``like`` (its transform and seed) over ``rows`` of ``encoded``."""
    dataset = copy.copy(like)
    dataset.encoded = EncodedTable.stack([(encoded, rows)])
    dataset.train, dataset.epoch, dataset._media_cache = train, 0, {}
    return dataset
