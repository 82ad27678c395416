"""The order the Predictor's candidates train in, and their refit on every labelled row.

:func:`start_run` makes the run they share (``Predictor.fit``'s step 4);
:func:`fit_candidates` (step 5) trains them one after another — the
classic models, then the network in what is left minus :func:`refit_reserve_s` — or, on
media tables with two or more threads, :func:`fit_side_by_side`: the classic models (and
their refits) in a background thread with one CPU thread while the network trains in this
one. :func:`refit_on_all_rows` (step 7) refits the kept classic models on train +
validation rows when the budget has time (AutoGluon's "refit_full").
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Sequence

import numpy as np
import torch

from polymodal.api.candidate_costs import save_seconds
from polymodal.api.candidates import MIN_TRAIN_S, RESERVE_SHARE, CandidateRun
from polymodal.api.fit_data import make_datasets
from polymodal.evaluate.metrics import PRIMARY_METRIC
from polymodal.evaluate.scoring import log_loss_scorer, scorer
from polymodal.models.classic import (
    CLASSIC_KINDS,
    ClassicModel,
    category_numbers,
    classic_threads,
    flat_layout,
)
from polymodal.train.budget import TimeBudget

# Refitting a classic model on train + validation rows costs about its first fit scaled by
# the row ratio; the time kept back from the network for it has this margin for the rest
# (feature scaling, noisy timings). The refits themselves start at their expected time
# and a deadline stops one that runs over.
REFIT_COST_MARGIN = 1.5
REFIT_MAX_SHARE = 0.15  # at most this share of the budget is kept back from the network for it


def start_run(p, train_df, val_df, budget: TimeBudget, log: list, *,
              unlabelled=None) -> CandidateRun:
    """Step 4: the datasets and the run the candidates of the predictor ``p`` share (its
    fitted transform, recipe and problem type, its seed, device and console), and the rows
    without a label the network may self-train on."""
    train_ds, val_ds = make_datasets(train_df, val_df, p.transform_, seed=p.seed, log=log)
    score, y_true, known = scorer(val_ds, p.problem_type_, p.transform_, p.schema_.label)
    metric, mode = PRIMARY_METRIC[p.problem_type_]
    return CandidateRun(train_ds, val_ds, p.transform_, p.recipe_, p.problem_type_, budget,
                        score, metric, mode, p.seed, p._say, log, time_limit=p.time_limit,
                        progress=p.verbosity > 0, device=p.device,
                        num_val_rows=int(known.sum()),
                        tie_break=log_loss_scorer(p.problem_type_, y_true, known),
                        train_rows=train_df, unlabelled=unlabelled)


def fit_candidates(run: CandidateRun, refit: bool, **neural) -> tuple[tuple, dict | None]:
    """The classic candidates and the network, side by side on media tables with two or
    more threads. Returns the classic models' flat features (x_train, y_train, x_val) and
    the refits already made ({} when the network trained alone, None when the classic
    models trained before it)."""
    spec, threads = run.spec, torch.get_num_threads()
    budget, candidates = run.budget, run.recipe.candidates
    run.too_small = budget.left_s() < MIN_TRAIN_S
    if not candidates.classic and candidates.neural and not run.too_small:
        # No classic model to train (resolve_predictor's docstring says when the recipe
        # leaves them out): no flat features either; the network has every thread.
        run.say("  classic models: none in the recipe (candidates.classic adds them)")
        run.fit_neural(**neural)
        return (None, None, None), {}
    categorical = flat_layout(spec, category_numbers(run.transform.vocab_)).categorical
    if ((spec["image_shapes"] or spec["audio_shapes"]) and threads >= 2
            and not run.too_small and not math.isinf(budget.left_s()) and candidates.neural):
        # Media tables: the network would otherwise wait for the side thread's work.
        refits = fit_side_by_side(run, categorical, refit=refit, threads=threads, **neural)
        return (None, None, None), refits
    flat = run.flat_features()
    run.too_small = run.fit_classic(*flat, categorical)
    if not run.too_small and candidates.neural:
        # Time kept back for refitting the classic models on every labelled row (step 7).
        reserve = (refit_reserve_s(run, len(run.train_ds) + len(run.val_ds)) if refit
                   else 0.0)
        run.fit_neural(refit_reserve_s=reserve, **neural)
    return flat, None


def refit_reserve_s(run: CandidateRun, num_all_rows: int) -> float:
    """Time to keep back from the network for refitting the classic models on
    ``num_all_rows`` rows (step 3)."""
    left = max(0.0, run.budget.left_s())
    if math.isinf(left):
        return 0.0
    fit_s = sum(r["fit_time_s"] for r in run.rows)
    return min(REFIT_MAX_SHARE * left,
               REFIT_COST_MARGIN * refit_seconds(fit_s, num_all_rows, len(run.train_ds)))


def refit_seconds(fit_s: float, num_all_rows: int, num_train_rows: int) -> float:
    """The expected seconds of a refit on ``num_all_rows`` rows of a fit that took ``fit_s``
    on ``num_train_rows``."""
    return fit_s * num_all_rows / max(1, num_train_rows)


def _refit_until(model: ClassicModel, x_all, y_all, deadline: float
                 ) -> tuple[ClassicModel | None, float]:
    """``model`` refitted on all rows (None when ``deadline``, a ``perf_counter`` time or
    inf, stopped it: the model trained on the training rows stays) and the seconds spent."""
    start = time.perf_counter()
    refitted = model.refit_like(x_all, y_all,
                                time_limit_s=None if math.isinf(deadline) else deadline - start)
    return refitted, time.perf_counter() - start


def fit_side_by_side(run: CandidateRun, categorical: list[bool], *, refit: bool, threads: int,
                     resume_dir=None, checkpoint_every_s: float = 30.0,
                     callbacks: Sequence = ()) -> dict:
    """The flat features, the classic models and, with ``refit``, their refits on all
    labelled rows in a background thread with one CPU thread; the network meanwhile in
    this one with the rest, and with all ``threads`` from its first step after the
    background thread ends. Results are recorded in the usual order (classic first)
    after both finish. Returns the refits made (``{name: (model, fit_s, num_rows)}``)."""
    classic: dict = {}
    refits: dict = {}
    calls: list[tuple] = []  # record() calls, replayed in order once both are done
    messages: list[str] = []
    errors: list[BaseException] = []
    network_end = time.perf_counter() + run.budget.left_s() * (1 - RESERVE_SHARE)

    def side() -> None:
        try:
            with classic_threads(1):
                x_train, y_train, x_val = run.flat_features()
                run.fit_classic(x_train, y_train, x_val, categorical, models=classic,
                                 say=messages.append,
                                 record=lambda *a, **k: calls.append((run.record, a, k)),
                                 skip=lambda *a, **k: calls.append((run.skip, a, k)))
                if refit:
                    refits.update(refit_before(run, classic, calls, network_end, x_train,
                                                     y_train, x_val, messages))
        except BaseException as exc:  # noqa: BLE001 - re-raised in the calling thread
            errors.append(exc)

    neural_calls: list[tuple] = []
    worker = threading.Thread(target=side, name="polymodal-classic", daemon=True)
    torch.set_num_threads(max(1, threads - 1))
    run.log.append({"event": "classic_beside_network", "classic_threads": 1,
                     "network_threads": torch.get_num_threads()})
    worker.start()
    take_back = ThreadsBack(worker, threads, run.log)
    try:
        run.fit_neural(resume_dir=resume_dir, checkpoint_every_s=checkpoint_every_s,
                        callbacks=[*callbacks, take_back],
                        record=lambda *a, **k: neural_calls.append((run.record, a, k)),
                        skip=lambda *a, **k: neural_calls.append((run.skip, a, k)))
    finally:
        worker.join()
        torch.set_num_threads(threads)
    if errors:
        raise errors[0]
    for message in messages:
        run.say(message)
    for kind in CLASSIC_KINDS:  # the order the sequential path records them in
        if kind in classic:
            run.models[kind] = classic[kind]
    for method, args, kwargs in calls + neural_calls:
        method(*args, **kwargs)
    return refits


def refit_on_all_rows(run: CandidateRun, kept: dict, candidates: dict, x_train, y_train, x_val, *,
                      prefitted: dict | None = None) -> None:
    """Refit each kept classic model (in ``kept`` and ``candidates``, replaced there) on
    train + labelled validation rows, with the size (trees, iterations) it reached
    before, when the budget still has time for it. ``prefitted`` holds refits already
    made by :func:`fit_side_by_side`; only those are used then."""
    if prefitted is None:
        x_all, y_all = all_rows(run, x_train, y_train, x_val)
        fit_times = {r["model"]: r["fit_time_s"] for r in run.rows}
    for name, model in list(kept.items()):
        if not isinstance(model, ClassicModel) or name in run.subsampled:
            continue
        if prefitted is not None:
            if name not in prefitted:
                continue
            refitted, fit_s, num_rows = prefitted[name]
        else:
            # Started when its expected time is left after saving.
            expected_s = refit_seconds(fit_times[name], len(x_all), len(x_train))
            left = run.budget.left_s() - save_seconds(kept.values())
            if expected_s > left:
                run.say(f"  {name:<24} not refitted on all rows: needs ~{expected_s:.1f} "
                         f"s, {max(0.0, left):.1f} s left")
                continue
            refitted, fit_s = _refit_until(model, x_all, y_all, time.perf_counter() + left)
            num_rows = len(x_all)
            if refitted is None:
                run.log.append({"event": "refit_stopped", "model": name, "time_s": fit_s})
                run.say(f"  {name:<24} refit on all rows stopped at the time limit after "
                         f"{fit_s:.1f} s: the model trained on the training rows stays")
                continue
        kept[name] = candidates[name] = refitted
        run.refit_models.append(name)
        run.log.append({"event": "refit", "model": name, "num_rows": num_rows,
                         "fit_time_s": fit_s})
        run.say(f"  {name:<24} refitted on all {num_rows} labelled rows in {fit_s:.1f} s")


def all_rows(run: CandidateRun, x_train, y_train, x_val) -> tuple[np.ndarray, np.ndarray]:
    """Flat features and targets of the training rows plus the labelled validation rows."""
    known = known_rows(run)
    x_all = np.concatenate([x_train, x_val[known]])  # (N_train + N_val, F)
    y_all = np.concatenate([y_train, np.asarray(run.val_ds.encoded.label)[known]])
    return x_all, y_all


def known_rows(run: CandidateRun) -> np.ndarray:
    """Positions of the validation rows with a label the training rows know."""
    enc = run.val_ds.encoded
    known = np.asarray(enc.label_present, dtype=bool)
    if run.problem_type in ("binary", "multiclass"):
        known &= np.asarray(enc.label) >= 0  # classes the training rows never had
    return np.flatnonzero(known)


def refit_before(run: CandidateRun, classic: dict, calls: list, deadline: float, x_train, y_train,
                  x_val, messages: list) -> dict:
    """Refit each of ``classic`` on all labelled rows, each started when its expected time
    ends before ``deadline`` (a ``perf_counter`` time), which stops it otherwise (the
    model trained on the training rows then stays, as in :func:`refit_on_all_rows`)."""
    x_all, y_all = all_rows(run, x_train, y_train, x_val)
    fit_times = {args[0]: args[2] for method, args, _ in calls if method == run.record}
    refits = {}
    for name, model in classic.items():
        if name in run.subsampled:
            continue
        expected_s = refit_seconds(fit_times[name], len(x_all), len(x_train))
        if time.perf_counter() + expected_s > deadline:
            messages.append(f"  {name:<24} not refitted on all rows: needs ~{expected_s:.1f} s")
            continue
        refitted, fit_s = _refit_until(model, x_all, y_all, deadline)
        if refitted is None:
            messages.append(f"  {name:<24} refit on all rows stopped after {fit_s:.1f} s: the "
                            "network's time was up; the model trained on the training rows stays")
            continue
        refits[name] = (refitted, fit_s, len(x_all))
    return refits


class ThreadsBack:
    """Training-loop callback: once ``worker`` (the classic models' thread) has ended, the
    network trains with ``threads`` torch threads again; logged as ``network_threads``."""

    def __init__(self, worker: threading.Thread, threads: int, log: list):
        self.worker, self.threads, self.log = worker, threads, log
        self.done = False

    def on_step_end(self, state, model) -> None:
        if self.done or self.worker.is_alive():
            return
        self.done = True
        torch.set_num_threads(self.threads)
        self.log.append({"event": "network_threads", "threads": self.threads,
                         "step": state.step})
