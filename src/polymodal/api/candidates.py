"""The Predictor's candidates trained on one fit's data, within its budget.

:class:`CandidateRun` holds what every step shares (training and validation rows, feature
spec, budget, validation scorer, recipe) and what the steps produce (fitted models, their
validation outputs, leaderboard rows, the log). Its steps, in ``Predictor.fit``'s order:

1. :meth:`~CandidateRun.fit_classic` — the scikit-learn candidates on flat features
   (:mod:`polymodal.models.classic`), each within its recipe share of what is left, as
   its cost plan says (:mod:`polymodal.api.candidate_costs`: all rows, a subsample, or
   skipped, with the reason in the leaderboard's ``note``);
2. :meth:`~CandidateRun.fit_neural` — the fusion network with the shared training loop
   (:mod:`polymodal.api.neural`), in what is left minus a reserve (ensemble, scoring,
   refits, saving).

The order they run in (one after another, or side by side on media tables) and the
classic models' refit on every labelled row are :mod:`polymodal.api.candidate_schedule`.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import math
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from polymodal.api.candidate_costs import CostPlan, Probe, plan_classic, save_seconds
from polymodal.api.candidate_outputs import candidate_outputs
from polymodal.api.neural import (
    EVAL_BATCH_SIZE,
    NeuralCandidate,
    default_halflife_images,
    default_warmup_steps,
)
from polymodal.api.ranks import Ranks, transform_text
from polymodal.data.dataset import TableDataset, make_loader
from polymodal.models.classic import (
    ClassicModel,
    category_numbers,
    flat_features,
)
from polymodal.models.classic_file import load_writer
from polymodal.train import TrainConfig
from polymodal.train.budget import TimeBudget
from polymodal.train.config import bf16_pays_for_images

NEURAL = "neural"
RESERVE_SHARE = 0.05  # kept back for the ensemble and scoring the validation set
MIN_RESERVE_S = 0.5
MIN_TRAIN_S = 1.0  # below this nothing but a tiny forest is trained
MIN_NEURAL_S = 2.0  # the network needs at least this to take a few steps
# ... and this share of the limit: its first step and final scoring cannot be cut short,
# and on a busy CPU they alone can outlast a smaller remainder (bench/RESULTS.md, 'budget').
MIN_NEURAL_SHARE = 0.15
FALLBACK_ROWS, FALLBACK_TREES = 500, 10  # the forest kept when the budget is too small
# On media tables larger than this the classic models train on a seeded sample of this
# many rows: forests and boosting on pooled pixels gain little from more, and computing
# flat features for every row costs seconds the network uses better.
CLASSIC_MEDIA_MAX_ROWS = 20_000
FLAT_BATCH_SIZE = 65_536  # rows per batch of flat features when no column is media
# A streamed table's epochs are long: the network is scored every this many steps, so
# early stopping and keeping the best weights work within an epoch.
STREAM_EVAL_EVERY_STEPS = 1000


def _categorical_for(kind: str, categorical: list[bool], kinds: tuple[str, ...]) -> list[bool]:
    """The category columns a candidate splits on as sets. Beside LightGBM, which does so,
    scikit-learn's boosting reads the codes as ordered numbers: a second view of them for
    the ensemble, and trees that ONNX can express (the export refuses set splits)."""
    if kind == "hist_gradient_boosting" and "lightgbm" in kinds:
        return [False] * len(categorical)
    return categorical


@dataclasses.dataclass
class CandidateRun:
    """One fit's candidates: the inputs every step shares, and what the steps produce."""

    train_ds: TableDataset
    val_ds: TableDataset
    transform: object  # the fitted TableTransform
    recipe: object  # the resolved PredictorRecipe
    problem_type: str
    budget: TimeBudget
    score: Callable[[np.ndarray], float]  # validation outputs -> the primary metric
    metric: str
    mode: str  # "max" or "min"
    seed: int
    say: Callable[[str], None]
    log: list[dict]
    time_limit: float | None = None  # as the user gave it, for messages
    progress: bool = False
    device: str = "auto"  # where the network trains (a name for resolve_device)
    num_val_rows: int = 0  # validation rows with a usable label
    models: dict = dataclasses.field(default_factory=dict)
    val_outputs: dict = dataclasses.field(default_factory=dict)
    rows: list = dataclasses.field(default_factory=list)
    training_history: list = dataclasses.field(default_factory=list)
    neural_config: dict | None = None
    refit_models: list = dataclasses.field(default_factory=list)
    too_small: bool = False  # the budget left room for the fallback forest alone
    cost_probe: Probe | None = None  # times a classic candidate's smallest fit (tests fake it)
    subsampled: set = dataclasses.field(default_factory=set)  # classic models fitted on a subsample
    # The network's training batches when the table streams (api/streamed_fit.py); the
    # classic models then train on ``train_ds``, a sample of the table.
    stream: object | None = None
    train_rows: object = None  # the training rows' DataFrame (for self-training's students)
    unlabelled: object = None  # the training table's rows without a label (a DataFrame)
    self_training: dict | None = None  # what self-training did (api.self_training)
    ranks: Ranks | None = None  # under torchrun: the group the network trains with
    tie_break: Callable[[np.ndarray], float] | None = None  # validation log loss (classes)

    @functools.cached_property
    def spec(self) -> dict:
        """The fitted transform's feature spec, built once per run."""
        return self.transform.feature_spec()

    def record(self, name: str, outputs: np.ndarray, fit_s: float, predict_s: float, *,
               note: str = "", **extra) -> None:
        """A candidate's validation outputs, its leaderboard row and its log record;
        ``note`` says what its budget changed (rows subsampled, and why)."""
        value = float(self.score(outputs))
        self.val_outputs[name] = outputs
        self.rows.append({"model": name, f"val_{self.metric}": value, "fit_time_s":
                          round(fit_s, 3), "predict_time_s": round(predict_s, 3), "note": note})
        self.log.append({"event": "candidate", "model": name, f"val_{self.metric}": value,
                         "fit_time_s": fit_s, "predict_time_s": predict_s, "note": note,
                         **extra})
        self.say(f"  {name:<24} val {self.metric} {value:.4f}   fit {fit_s:.1f} s   "
                 f"predict {predict_s:.2f} s" + (f"   ({note})" if note else ""))

    def skip(self, name: str, note: str, *, spent_s: float = 0.0) -> None:
        """A candidate the budget left out: a leaderboard row without a score, saying why."""
        self.rows.append({"model": name, f"val_{self.metric}": math.nan,
                          "fit_time_s": round(spent_s, 3), "predict_time_s": 0.0, "note": note})
        self.log.append({"event": "skipped", "model": name, "note": note, "time_s": spent_s})
        self.say(f"  {name:<24} {note}")

    # ------------------------------------------------------------------ features

    def flat_features(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(x_train, y_train, x_val): the classic models' flat features and targets.
        Large media tables: the classic models see a seeded sample of the training rows
        (their accuracy on pixel features saturates long before; the network sees all)."""
        start = time.perf_counter()
        spec, rows, y = self.spec, None, self.train_ds.encoded.label
        media = bool(spec["image_shapes"] or spec["audio_shapes"])
        if media and len(self.train_ds) > CLASSIC_MEDIA_MAX_ROWS:
            rows = np.sort(np.random.default_rng(self.seed).permutation(
                len(self.train_ds))[:CLASSIC_MEDIA_MAX_ROWS])
            y = np.asarray(y)[rows]
        x_train, x_val = self._flat(self.train_ds, rows), self._flat(self.val_ds)
        self.log.append({"event": "flat_features", "num_features": x_train.shape[1],
                         "classic_train_rows": len(x_train),
                         "time_s": time.perf_counter() - start})
        return x_train, y, x_val

    def _flat(self, dataset: TableDataset, rows: np.ndarray | None = None) -> np.ndarray:
        """Flat features (N, F) of every row of ``dataset`` (or of ``rows``, in that order),
        without augmentation."""
        numbers = category_numbers(self.transform.vocab_)
        # A shallow copy (same arrays and media cache) that does not augment: the original
        # may be training the network in another thread meanwhile.
        dataset = copy.copy(dataset)
        dataset.train = False
        # Rows without media are gathered by slicing arrays: large batches cost nothing.
        media = self.spec["image_shapes"] or self.spec["audio_shapes"]
        loader = make_loader(dataset, batch_size=EVAL_BATCH_SIZE if media else FLAT_BATCH_SIZE,
                             shuffle=False, seed=0,
                             sampler=None if rows is None else rows.tolist())
        return np.concatenate([flat_features(b, self.spec, numbers) for b in loader])

    # ------------------------------------------------------------------ 1. classic

    def fit_classic(self, x_train, y_train, x_val, categorical: list[bool], *,
                    models: dict | None = None, say=None, record=None, skip=None) -> bool:
        """Fit the classic candidates, each as its cost plan says (:mod:`candidate_costs`);
        True when the budget was too small for more than the fallback forest. ``models``,
        ``say``, ``record`` and ``skip`` default to this run's own."""
        models = self.models if models is None else models
        say = self.say if say is None else say
        record = self.record if record is None else record
        skip = self.skip if skip is None else skip
        too_small = self.budget.left_s() < MIN_TRAIN_S
        if too_small:
            message = (f"time_limit={self.time_limit} s is too small to train anything (reading "
                       f"and transforming the table left {max(0.0, self.budget.left_s()):.2f} s);"
                       f" keeping the fastest baseline, a {FALLBACK_TREES}-tree random forest on "
                       f"at most {FALLBACK_ROWS} rows. Raise time_limit for a real model")
            warnings.warn(message, UserWarning, stacklevel=4)  # the CLI prints it once
        candidates, n_outputs = self.recipe.candidates, self.spec["n_outputs"]
        if self.budget.time_limit_s is not None:
            load_writer()  # the save's slow first import, inside the fit that plans for it
        # Too small a budget: the fallback forest alone, whatever the recipe lists.
        for kind in ("random_forest",) if too_small else candidates.classic:
            left = self.budget.left_s()
            if models and left < MIN_TRAIN_S:
                skip(kind, f"skipped: {max(0.0, left):.1f} s left of the time limit")
                continue
            model = ClassicModel(kind, self.problem_type, n_outputs,
                                 categorical=_categorical_for(kind, categorical,
                                                              candidates.classic),
                                 seed=self.seed)
            fit_start = time.perf_counter()
            if too_small:
                plan = CostPlan(rows=np.sort(np.random.default_rng(self.seed).permutation(
                    len(x_train))[:FALLBACK_ROWS]), note=f"fallback: {FALLBACK_TREES} trees on at most {FALLBACK_ROWS} rows")
                model.fit(x_train[plan.rows], y_train[plan.rows], max_size=FALLBACK_TREES)
            else:
                share_s = self.budget.share_s(candidates.shares.get(kind, 0.0))
                plan = plan_classic(model, x_train, y_train, share_s, seed=self.seed,
                                    required=not models, probe=self.cost_probe)
                if plan.skip:
                    skip(kind, plan.note, spent_s=plan.probe_s)
                    continue
                rows = slice(None) if plan.rows is None else plan.rows
                model.fit(x_train[rows], y_train[rows],
                          time_limit_s=self.budget.share_s(candidates.shares.get(kind, 0.0)))
            fit_s = time.perf_counter() - fit_start
            predict_start = time.perf_counter()
            outputs = model.predict_outputs(x_val)
            models[kind] = model
            if plan.rows is not None:
                self.subsampled.add(kind)  # its refit on all rows would cost n / rows more
            record(kind, outputs, fit_s, time.perf_counter() - predict_start, note=plan.note,
                   complete=model.complete_, probe_s=plan.probe_s, estimate_s=plan.estimate_s,
                   num_rows=len(x_train) if plan.rows is None else len(plan.rows))
        return too_small

    # ------------------------------------------------------------------ 2. neural

    def fit_neural(self, *, resume_dir=None, checkpoint_every_s: float = 30.0,
                   callbacks: Sequence = (), refit_reserve_s: float = 0.0, record=None,
                   skip=None) -> None:
        """Train the fusion network in what is left of the budget, minus a reserve for the
        ensemble, the validation scoring, the classic models' refit and saving them."""
        record = self.record if record is None else record
        left = self.budget.left_s()
        save_s = save_seconds(self.models.values())
        reserve = (max(MIN_RESERVE_S, RESERVE_SHARE * left) + refit_reserve_s + save_s
                   if not math.isinf(left) else 0.0)
        time_s = None if math.isinf(left) else left - reserve
        self.log.append({"event": "reserve", "seconds": reserve, "save_s": save_s,
                         "refit_s": refit_reserve_s})
        if time_s is not None and time_s < max(MIN_NEURAL_S,
                                               MIN_NEURAL_SHARE * self.budget.time_limit_s):
            (skip or self.skip)(NEURAL, f"skipped: {max(0.0, time_s):.1f} s left of the "
                                "time limit")
            return
        spec, net, training = self.spec, self.recipe.network, self.recipe.training
        semi = self._self_training(callbacks)
        teacher_s = time_s if semi is None else semi.teacher_time_s(time_s)
        deadline = None if time_s is None else time.perf_counter() + time_s
        train = self.train_ds if self.stream is None else self.stream
        n_train = len(self.train_ds) if self.stream is None else self.stream.num_rows
        config = self.train_config(teacher_s, n_train, self.seed,
                                   checkpoint_every_s=checkpoint_every_s
                                   if resume_dir is not None else None)
        network = dataclasses.asdict(net)
        self.neural_config = {"network": network, "train": dataclasses.asdict(config),
                              "label_smoothing": training.label_smoothing}
        candidate = NeuralCandidate(spec, network, seed=self.seed,
                                    label_smoothing=training.label_smoothing)
        out_dir = None if resume_dir is None else Path(resume_dir) / NEURAL
        fit_start = time.perf_counter()
        if self.ranks is not None:  # under torchrun: every rank trains it with this one
            train = self.ranks.lead("predictor", train, lambda: {
                "transform": transform_text(self.transform), "network": network,
                "config": config, "seed": self.seed,
                "label_smoothing": training.label_smoothing, "metric": self.metric,
                "mode": self.mode, "out_dir": None if out_dir is None else str(out_dir),
                "resume": resume_dir is not None}, say=self.say, log=self.log)
        result = candidate.fit(train, self.val_ds, config=config, score=self.score,
                               metric_name=self.metric, metric_mode=self.mode,
                               tie_break=self.tie_break, out_dir=out_dir,
                               resume=resume_dir is not None, callbacks=callbacks)
        if self.ranks is not None:
            self.ranks.phase = "after"
        fit_s = time.perf_counter() - fit_start
        predict_start = time.perf_counter()
        outputs = candidate_outputs(self.val_ds, {NEURAL: candidate}, spec,
                                    self.transform.vocab_)[NEURAL]
        predict_s = time.perf_counter() - predict_start
        augment = self.transform.augment_
        if spec["image_shapes"] and augment is not None and augment["hflip"]:
            outputs, predict_s = self._mirror_tta(candidate, outputs, predict_s)
        self.training_history = list(result.history)
        self.log.extend({"model": NEURAL, **entry} for entry in result.history)
        note = ""
        if semi is not None:
            start = time.perf_counter()
            candidate, outputs = semi.fit(candidate, outputs, deadline=deadline,
                                          predict_s=predict_s)
            fit_s += time.perf_counter() - start
            self.self_training = semi.summary
            self.log.append({"event": "self_training", **semi.summary})
            tried = any(f"val_{self.metric}" in r for r in semi.summary["rounds"])
            note = (f"self-trained on {semi.summary['num_pseudo_labelled']:,} pseudo-labelled "
                    "rows" if semi.summary["used"] else "labelled rows only: self-training "
                    + ("did not validate better" if tried else "had no time left"))
        self.models[NEURAL] = candidate
        record(NEURAL, outputs, fit_s, predict_s, note=note, tta_hflip=candidate.tta_hflip,
               stop_reason=result.stop_reason, steps=result.steps, epochs=result.epochs,
               images_seen=result.images_seen,
               resumed_from_step=result.resumed_from_step)

    def train_config(self, time_s: float | None, num_rows: int, seed: int, *,
                     checkpoint_every_s: float | None = None) -> TrainConfig:
        """The network's loop settings for ``num_rows`` training rows in ``time_s``."""
        spec, training = self.spec, self.recipe.training
        return TrainConfig(
            batch_size=training.batch_size, lr=training.lr, weight_decay=training.weight_decay,
            warmup_steps=default_warmup_steps(num_rows, training.batch_size, training.max_epochs),
            min_lr_ratio=training.min_lr_ratio, max_epochs=training.max_epochs,
            time_limit_s=time_s,
            ema_halflife_images=(default_halflife_images(num_rows, training.batch_size)
                                 if training.ema else None),
            early_stopping_patience=training.early_stopping_patience,
            eval_every_steps=None if self.stream is None else STREAM_EVAL_EVERY_STEPS,
            checkpoint_every_s=checkpoint_every_s,
            seed=seed, progress=self.progress, device=self.device,
            compile=training.compile,
            # Image networks are convolutions, which AMX tiles run in bf16 far faster.
            precision=("bf16" if bf16_pays_for_images(spec["image_shapes"].values())
                       else "auto"),
        )

    def _self_training(self, callbacks: Sequence):
        """The self-training rounds when the recipe asks for them and there are
        unlabelled rows (:mod:`polymodal.api.self_training`), else None."""
        if (self.recipe.unlabelled.method != "self_training" or self.unlabelled is None
                or not len(self.unlabelled) or self.train_rows is None):
            return None
        if self.ranks is not None and self.ranks.leads:
            # The other ranks train the teacher only; a student would train alone.
            self.say(f"  {NEURAL:<24} no self-training under torchrun: the unlabelled rows "
                     "are left out")
            self.self_training = {"rounds": [], "not_run": "torchrun"}
            return None
        from polymodal.api.self_training import SelfTraining

        return SelfTraining(self, self.train_config, callbacks)

    def _mirror_tta(self, candidate: NeuralCandidate, outputs: np.ndarray,
                    predict_s: float) -> tuple[np.ndarray, float]:
        """Trained on mirror images too: score the mean over each image and its mirror (what
        predict_outputs gives with tta_hflip, batch for batch), and keep it for prediction
        only when it validates better."""
        start = time.perf_counter()
        loader = make_loader(self.val_ds, batch_size=EVAL_BATCH_SIZE, shuffle=False, seed=0)
        mirror = np.concatenate([candidate.mirror_outputs(b) for b in loader])
        tta_outputs = 0.5 * (outputs + mirror)
        plain, tta = float(self.score(outputs)), float(self.score(tta_outputs))
        candidate.tta_hflip = tta > plain if self.mode == "max" else tta < plain
        self.log.append({"event": "tta_hflip", f"val_{self.metric}_plain": plain,
                         f"val_{self.metric}_tta": tta, "kept": candidate.tta_hflip,
                         "time_s": time.perf_counter() - start})
        self.say(f"  {NEURAL:<24} mirror test-time augmentation: val {self.metric} "
                 f"{plain:.4f} -> {tta:.4f}, {'kept' if candidate.tta_hflip else 'not kept'}")
        if candidate.tta_hflip:
            return tta_outputs, predict_s + time.perf_counter() - start
        return outputs, predict_s
