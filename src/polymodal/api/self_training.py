"""Self-training: the network learns from the training rows whose label is empty.

Pseudo-labelling (Lee 2013, "Pseudo-Label: the simple and efficient semi-supervised
learning method") in rounds, each student continuing from the best network so far (as in
Xie et al. 2020, "Self-training with Noisy Student", without their larger students), with
class-balanced selection (Zou et al. 2018, "Unsupervised domain adaptation for semantic
segmentation via class-balanced self-training"):

1. the teacher: the network trained on the labelled training rows, in ``teacher_share``
   of the network's time (:meth:`~polymodal.api.candidates.CandidateRun.fit_neural`);
   by default all of it, so the rounds run in the time its early stopping leaves (or
   without a time limit) and never take time from the labelled-only network;
2. it predicts a seeded sample of the unlabelled rows, as many as
   :data:`SCORE_SHARE` of a round's time pays for; with ``propagate`` (the default) its
   class probabilities are averaged with those label spreading gives over its fused
   embeddings of these rows and of the labelled ones (:func:`spread_labels`; Iscen et
   al. 2019, "Label propagation for deep semi-supervised learning");
3. :func:`select_pseudo_labels`: rows whose top class probability is at least
   ``threshold``; per class the most confident first, no class more than the median
   class has (so one easy class cannot crowd out the rest), at most
   ``max_pseudo_ratio`` rows per labelled training row in all;
4. a student continues from the best network, at half the learning rate, on the labelled
   rows (repeated until they are half of its rows: a pseudo-label weighs less than a real
   one) and the pseudo-labelled rows, in an equal share of the time left;
5. validation — labelled rows only — keeps the best of the teacher and the students, a
   student only when it gets more rows right beyond one standard error (McNemar); the
   next round labels with it. A round that does not validate better is not used, so
   when the unlabelled rows do not help, the teacher is what the fit keeps.
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import torch
from sklearn.exceptions import ConvergenceWarning

from polymodal.api.candidate_outputs import candidate_outputs
from polymodal.api.neural import NeuralCandidate
from polymodal.data.dataset import TableDataset
from polymodal.data.split import take_rows
from polymodal.data.synthetic import concat_rows

# A round may spend this share of its time predicting unlabelled rows; the rest trains.
SCORE_SHARE = 0.35
# Rows scored per pseudo-label wanted: at a usual threshold about half the rows qualify,
# and class balance drops some of those.
SCORED_PER_PSEUDO_ROW = 3
SCORE_CHUNK_ROWS = 2048  # unlabelled rows scored between looks at the clock
MIN_SCORED_ROWS = 256  # time for fewer unlabelled rows than this: the round is not worth it
MIN_ROUND_S = 2.0  # a student needs at least this to take a few steps
MIN_ROUND_SHARE = 0.1  # ... and this share of the network's time, to learn anything new
STUDENT_MARGIN_S = 1.0  # kept back from a student's time for building its rows
# A student continues from a trained network: at the teacher's peak rate it first unlearns
# much of it, and a short round cannot win that back (seen on Fashion-MNIST at 20 % labels).
STUDENT_LR_SCALE = 0.5
LABELLED_SHARE = 0.5  # of a student's training rows, at least
# Label spreading over the fused embeddings (see SelfTraining._propagate): neighbours per
# row, the share of a row's label that comes from its neighbours, and when to stop: a
# label travels one neighbour per step and each step changes the result by alpha times
# less, so a mean change per row of 1e-9 is about 100 steps; rows further away are left
# unlabelled. The step limit is a guard only.
PROPAGATE_NEIGHBOURS = 10
PROPAGATE_ALPHA = 0.8
PROPAGATE_TOLERANCE = 1e-9
PROPAGATE_ITERATIONS = 1000
# At most this many scored unlabelled rows, and a seeded sample of at most this many
# labelled ones, make the graph (its neighbour search costs the square of its rows).
PROPAGATE_MAX_ROWS = 20_000
PROPAGATE_MAX_LABELLED = 5_000


class head_inputs:
    """A context manager that records what ``model``'s network hands its head — the fused
    embedding of each row — while it predicts; with mirror test-time augmentation the
    two views of a batch are averaged, as its outputs are."""

    def __init__(self, model: NeuralCandidate):
        self.model, self.calls = model, []

    def __enter__(self) -> head_inputs:
        def record(_module, args):
            self.calls.append(args[0].detach().to("cpu", torch.float32).numpy())

        self.handle = self.model.model_.head.register_forward_pre_hook(record)
        return self

    def __exit__(self, *exc) -> None:
        self.handle.remove()

    def rows(self) -> np.ndarray:
        """(N, D): one embedding per predicted row, in order."""
        calls = self.calls
        if self.model.tta_hflip and self.model.model_.spec["image_shapes"] and calls:
            calls = [0.5 * (a + b) for a, b in zip(calls[0::2], calls[1::2], strict=True)]
        return np.concatenate(calls).astype(np.float64)


def unlabelled_summary(num_rows: int, recipe, self_training: dict | None) -> dict:
    """What the training rows without a label were for, as ``unlabelled_`` and
    ``config.json`` keep it."""
    summary = {"num_rows": num_rows, "method": recipe.unlabelled.method, "used": False}
    if self_training is not None:
        summary.update(self_training)
    return summary


def select_pseudo_labels(probs: np.ndarray, *, threshold: float,
                         max_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Which rows of ``probs`` (N, K) get a pseudo-label, and which class (both (M,),
    sorted by row): a top probability of at least ``threshold``; per class, the most
    confident rows first, at most as many as the median class has confident rows; at
    most ``max_rows`` in all, shared equally by the classes. Ties break by row order, so
    the same outputs always select the same rows."""
    top = probs.argmax(axis=1)  # (N,)
    confidence = probs[np.arange(len(probs)), top]  # (N,)
    confident = np.flatnonzero(confidence >= threshold)
    num_classes = probs.shape[1]
    counts = np.bincount(top[confident], minlength=num_classes)  # (K,)
    per_class = int(min(np.median(counts), max_rows // num_classes))
    chosen = []
    for k in range(num_classes):
        rows = confident[top[confident] == k]
        order = np.argsort(-confidence[rows], kind="stable")  # most confident first
        chosen.append(rows[order[:per_class]])
    rows = np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, dtype=np.int64)
    return rows, top[rows]


def spread_labels(labelled: np.ndarray, classes: np.ndarray, unlabelled: np.ndarray, *,
                  num_classes: int) -> np.ndarray:
    """Class probabilities (M, ``num_classes``) of the ``unlabelled`` points (M, D), by
    label spreading (Zhou et al. 2004, scikit-learn's ``LabelSpreading``) from the
    ``labelled`` points (N, D) of ``classes`` (N,) over a graph of each point's nearest
    neighbours by cosine: a point is labelled by the chain of neighbours that leads to
    it, not only by the labelled point nearest to it. A class no labelled point has keeps
    probability 0."""
    from sklearn.semi_supervised import LabelSpreading

    points = np.concatenate([labelled, unlabelled]).astype(np.float64)
    points /= np.linalg.norm(points, axis=1, keepdims=True) + 1e-12
    targets = np.concatenate([classes, np.full(len(unlabelled), -1, dtype=np.int64)])
    spreading = LabelSpreading(kernel="knn", n_neighbors=min(PROPAGATE_NEIGHBOURS,
                                                             len(points) - 1),
                               alpha=PROPAGATE_ALPHA, max_iter=PROPAGATE_ITERATIONS,
                               tol=PROPAGATE_TOLERANCE * len(points))
    # The network trains beside the classic candidates in another thread, where a warnings
    # filter set here may be undone; the tolerance is what keeps sklearn from warning.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        spreading.fit(points, targets)
    probs = np.zeros((len(unlabelled), num_classes))
    probs[:, spreading.classes_] = spreading.label_distributions_[len(labelled):]
    return probs


class SelfTraining:
    """The rounds of step 2-5 for one fit's network (see the module docstring).

    Args:
        run: the :class:`~polymodal.api.candidates.CandidateRun` (its training rows,
            validation scorer, transform and recipe ``unlabelled`` section).
        train_config: ``(time_s, num_rows, seed) -> TrainConfig`` for a student.
        callbacks: training-loop callbacks, as the teacher had.
    """

    def __init__(self, run, train_config: Callable, callbacks: Sequence = ()):
        self.run = run
        self.recipe = run.recipe.unlabelled
        self.train_config = train_config
        self.callbacks = callbacks
        self.label = run.transform.schema.label
        self.summary: dict = {}
        self.predict_s = 0.0
        self.min_round_s = MIN_ROUND_S

    def teacher_time_s(self, time_s: float | None) -> float | None:
        """The teacher's share of the network's ``time_s``; a round needs at least
        MIN_ROUND_SHARE of ``time_s`` from then on."""
        if time_s is not None:
            self.min_round_s = max(MIN_ROUND_S, MIN_ROUND_SHARE * time_s)
        return None if time_s is None else self.recipe.teacher_share * time_s

    def fit(self, teacher: NeuralCandidate, outputs: np.ndarray, *, deadline: float | None,
            predict_s: float) -> tuple[NeuralCandidate, np.ndarray]:
        """The best network of the teacher and its students, and its validation outputs;
        ``deadline`` is a ``perf_counter`` time (None: no time limit); ``predict_s`` what
        the teacher took to predict the validation rows (the rate scoring is planned at)."""
        run, recipe = self.run, self.recipe
        unlabelled = run.unlabelled
        best, best_outputs = teacher, outputs
        best_value = teacher_value = float(run.score(outputs))
        rate = len(run.val_ds) / max(predict_s, 1e-3)  # rows per second
        self.predict_s = predict_s
        sample = np.random.default_rng(run.seed).permutation(len(unlabelled))
        rounds: list[dict] = []
        self.summary = {"method": "self_training", "num_unlabelled": len(unlabelled),
                        "threshold": recipe.threshold, "rounds": rounds,
                        f"val_{run.metric}_labelled_only": teacher_value}
        for number in range(1, recipe.rounds + 1):
            start = time.perf_counter()
            left = math.inf if deadline is None else deadline - start
            round_s = left / (recipe.rounds - number + 1)
            max_rows = int(recipe.max_pseudo_ratio * len(run.train_ds))
            num_scored = min(len(sample), SCORED_PER_PSEUDO_ROW * max_rows)
            if deadline is not None:
                num_scored = int(min(num_scored, SCORE_SHARE * round_s * rate))
            if round_s < self.min_round_s or num_scored < min(len(sample), MIN_SCORED_ROWS):
                rounds.append({"round": number, "skipped": f"{max(0.0, left):.1f} s left"})
                break
            scored = take_rows(unlabelled, np.sort(sample[:num_scored]))
            probs, embedded = self._predict(best, scored, None if deadline is None
                                            else start + SCORE_SHARE * round_s)
            scored, num_scored = scored.iloc[:len(probs)], len(probs)
            if recipe.propagate:  # the first PROPAGATE_MAX_ROWS; the graph grows as its square
                part = slice(0, PROPAGATE_MAX_ROWS)
                probs[part] = 0.5 * (probs[part] + self._propagate(best, embedded[part]))
            rate = num_scored / max(time.perf_counter() - start, 1e-3)  # measured, for the next
            rows, classes = select_pseudo_labels(probs, threshold=recipe.threshold,
                                                 max_rows=max_rows)
            record = {"round": number, "num_scored": num_scored, "num_pseudo": len(rows),
                      "propagated": recipe.propagate,
                      "score_s": round(time.perf_counter() - start, 3)}
            rounds.append(record)
            if len(rows) == 0:
                record["skipped"] = "no row reached the threshold"
                break
            pseudo = take_rows(scored, rows)
            pseudo[self.label] = list(run.transform.decode_label(classes.astype(np.int64)))
            student, student_outputs, fit_s = self._student(
                best, pseudo, number, None if deadline is None
                else round_s - (time.perf_counter() - start))
            value = float(run.score(student_outputs))
            better = value > best_value if run.mode == "max" else value < best_value
            gained, lost = self._changed_rows(student_outputs, best_outputs)
            better = better and gained - lost >= max(1.0, math.sqrt(gained + lost))
            record.update({f"val_{run.metric}": value, "kept": better, "fit_s": round(fit_s, 3),
                           "val_rows_gained": gained, "val_rows_lost": lost,
                           "pseudo_per_class": np.bincount(
                               classes, minlength=probs.shape[1]).tolist()})
            run.say(f"  {'neural':<24} self-training round {number}: {len(rows):,} of "
                    f"{num_scored:,} unlabelled rows pseudo-labelled, val {run.metric} "
                    f"{best_value:.4f} -> {value:.4f}, {'kept' if better else 'not kept'}")
            if better:
                best, best_outputs, best_value = student, student_outputs, value
        self.summary.update({f"val_{run.metric}": best_value, "used": best is not teacher,
                             "num_pseudo_labelled": max(
                                 [r.get("num_pseudo", 0) for r in rounds if r.get("kept")],
                                 default=0)})
        return best, best_outputs

    def _changed_rows(self, outputs: np.ndarray, best: np.ndarray) -> tuple[int, int]:
        """Validation rows a student gets right that the best network so far gets wrong,
        and the reverse. A student is kept only when the first exceeds the second by one
        standard error of their difference (sqrt of their sum, as in McNemar's test) as
        well as scoring better: on a few hundred validation rows a better score alone is
        often noise, and a student kept by noise tested worse (bench/RESULTS.md,
        augment_scarcity)."""
        labels = np.asarray(self.run.val_ds.encoded.label).astype(np.int64).reshape(-1)
        right, right_before = outputs.argmax(axis=1) == labels, best.argmax(axis=1) == labels
        return int((right & ~right_before).sum()), int((right_before & ~right).sum())

    def _predict(self, model: NeuralCandidate, rows: pd.DataFrame,
                 deadline: float | None) -> tuple[np.ndarray, np.ndarray]:
        """``model``'s class probabilities (M, K) and fused embeddings (M, D) for the first
        M of ``rows`` (their labels are empty): all of them, or as many chunks as end
        before ``deadline`` (at least one), since a busy machine scores slower than
        planned."""
        run, parts, embedded, done = self.run, [], [], 0
        while done < len(rows) and (not parts or deadline is None
                                    or time.perf_counter() < deadline):
            chunk = take_rows(rows, np.arange(done, min(done + SCORE_CHUNK_ROWS, len(rows))))
            dataset = TableDataset(chunk, run.transform, with_label=False)
            with head_inputs(model) as inputs:
                parts.append(candidate_outputs(dataset, {"neural": model}, run.spec,
                                               run.transform.vocab_)["neural"])
            embedded.append(inputs.rows())
            done += len(chunk)
        return np.concatenate(parts), np.concatenate(embedded)

    def _propagate(self, model: NeuralCandidate, embedded: np.ndarray) -> np.ndarray:
        """Class probabilities (M, K) of the unlabelled rows ``embedded`` by ``model``, by
        :func:`spread_labels` from the labelled training rows over the network's fused
        embeddings, as Iscen et al. 2019 ("Label propagation for deep semi-supervised
        learning") label: a row takes the class its neighbours lead to, which the
        network's output for it alone does not see."""
        run = self.run
        rows = run.train_rows
        if len(rows) > PROPAGATE_MAX_LABELLED:
            rows = take_rows(rows, np.sort(np.random.default_rng(run.seed).permutation(
                len(rows))[:PROPAGATE_MAX_LABELLED]))
        dataset = TableDataset(rows, run.transform)
        with head_inputs(model) as inputs:
            outputs = candidate_outputs(dataset, {"neural": model}, run.spec,
                                        run.transform.vocab_)["neural"]
        classes = np.asarray(dataset.encoded.label).astype(np.int64).reshape(-1)
        return spread_labels(inputs.rows(), classes, embedded, num_classes=outputs.shape[1])

    def _student(self, best: NeuralCandidate, pseudo: pd.DataFrame, number: int,
                 time_s: float | None) -> tuple[NeuralCandidate, np.ndarray, float]:
        """A network that starts from ``best`` and trains on the labelled and
        pseudo-labelled rows; its validation outputs and training seconds."""
        run = self.run
        start = time.perf_counter()
        # The labelled rows repeated until they are about LABELLED_SHARE of the student's
        # rows: pseudo-labels weigh less than real ones, and a few labelled rows are not
        # drowned out by many pseudo-labelled ones.
        repeats = max(1, round(LABELLED_SHARE * len(pseudo)
                               / ((1 - LABELLED_SHARE) * len(run.train_rows))))
        rows = concat_rows([run.train_rows] * repeats + [pseudo], run.train_rows.attrs)
        dataset = TableDataset(rows, run.transform, train=True, seed=run.seed + number,
                               cache_media=True)
        student = NeuralCandidate(run.spec, best.network, seed=run.seed + number,
                                  label_smoothing=best.label_smoothing,
                                  tta_hflip=best.tta_hflip)
        student.model_.load_state_dict(best.model_.state_dict())
        left = None if time_s is None else time_s - (time.perf_counter() - start)
        if left is not None:  # and then score the validation rows, as the teacher took
            left = max(0.5, left - 2 * self.predict_s - STUDENT_MARGIN_S)
        config = dataclasses.replace(self.train_config(left, len(dataset), run.seed + number),
                                     lr=STUDENT_LR_SCALE * self.run.recipe.training.lr)
        with torch.random.fork_rng(devices=[]):
            student.fit(dataset, run.val_ds, config=config, score=run.score,
                        metric_name=run.metric, metric_mode=run.mode,
                        tie_break=run.tie_break, callbacks=self.callbacks)
        outputs = candidate_outputs(run.val_ds, {"neural": student}, run.spec,
                                    run.transform.vocab_)["neural"]
        return student, outputs, time.perf_counter() - start
