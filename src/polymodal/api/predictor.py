"""``Predictor``: fit a multimodal table, predict, evaluate, save and load — on a time budget.

The scikit-learn pattern: ``__init__`` stores its arguments unchanged, ``fit`` returns
``self``, learned state ends in ``_``, and using an unfitted predictor raises
:class:`~polymodal.errors.NotFittedError`. ``fit`` does, in order:

1. read the table, infer the schema (every column's modality, with its reason) and the
   problem type, and write the cleaning report (``cleaning_report_``);
2. split a seeded, stratified validation set (unless ``tuning_data`` is given); with
   ``augment=`` (or rows marked ``is_synthetic``) synthetic rows join the training rows
   only after this split (:mod:`polymodal.workflows.augment`), never validation;
3. fit the per-modality transforms on the training rows only;
4. train the candidates in order of cost, each within its share of the time budget —
   the classic baselines on flat features (:mod:`polymodal.models.classic`), then the
   neural fusion model with the shared training loop (:mod:`polymodal.api.neural`);
5. fit a greedy weighted ensemble of them (:mod:`polymodal.models.ensemble`);
6. choose the candidate that validates best; ``leaderboard()`` shows them all.

Outputs inside the predictor follow one convention for every model: ``(N, K)``
probabilities (binary with K = 2, multiclass, multilabel) or ``(N,)`` standardised
values (regression); ``predict``/``predict_proba`` turn them into the user's labels.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import math
import multiprocessing
import numbers
import os
import threading
import time
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from polymodal.api.model_folder import (
    check_folder,
    cleaning_report_from_dict,
    write_folder_atomically,
)
from polymodal.api.neural import (
    EVAL_BATCH_SIZE,
    NeuralCandidate,
    default_halflife_images,
    default_warmup_steps,
)
from polymodal.api.params import get_params, set_params
from polymodal.data.cleaning import clean_report
from polymodal.data.dataset import TableDataset, make_loader
from polymodal.data.readers import read_table
from polymodal.data.schema import PROBLEM_TYPES, Schema, hashable_values, infer_schema, present_mask
from polymodal.data.synthetic import SYNTHETIC_COLUMN, concat_rows, split_marked
from polymodal.data.text import TEXT_KINDS
from polymodal.data.transforms import AUGMENT_DEFAULTS, TableTransform
from polymodal.errors import ConfigError, DataError, ModelFolderError, NotFittedError, SchemaError
from polymodal.evaluate.metrics import PRIMARY_METRIC, compute_metrics
from polymodal.files import write_json, write_text
from polymodal.models.classic import (
    CLASSIC_KINDS,
    ClassicModel,
    category_numbers,
    classic_threads,
    flat_features,
    flat_layout,
)
from polymodal.models.ensemble import blend, ensemble_selection
from polymodal.recipes.base import from_dict, override, to_dict
from polymodal.recipes.predictor import PRESETS, PredictorRecipe, resolve_predictor
from polymodal.train import TrainConfig
from polymodal.train.budget import TimeBudget
from polymodal.train.config import bf16_pays_for_images

logger = logging.getLogger(__name__)

FORMAT_VERSION = 2  # 2: flat features gained category numbers and image edge statistics
NEURAL = "neural"
ENSEMBLE = "ensemble"
OPTIONAL_MODALITIES = ("image", "audio", "text")  # may be left out of a table to predict on
FUSION_CHOICES = ("auto", "concat", "attention")
# Predictor(image_augment=...) names -> TableTransform(augment=...).
IMAGE_AUGMENT_CHOICES = {"none": None,
                         "hflip": {"hflip": True, "shift_px": 0, "rotate_deg": 0.0}}

# Refitting the classic models on train + validation rows adds a few percent of rows on
# large tables and costs time the network would use better: done below this many rows.
REFIT_MAX_ROWS = 20_000
# ... and on media tables larger than this the classic models train on a seeded sample of
# this many rows: forests and boosting on pooled pixels gain little from more, and
# computing flat features for every row costs seconds the network uses better.
CLASSIC_MEDIA_MAX_ROWS = 20_000
# Validation beyond this many rows buys little selection accuracy and costs scoring time.
MAX_VALIDATION_ROWS = 5000
# Refitting a classic model on train + validation rows costs about its first fit scaled by
# the row ratio; this margin covers the rest (feature scaling, noisy timings).
REFIT_COST_MARGIN = 1.5
REFIT_MAX_SHARE = 0.15  # at most this share of the budget is kept back from the network for it
# Augmentation's share of the budget left after reading and transforming the table: the
# generator needs most of it to learn the classes, the candidates train on the rest.
SYNTHESIS_SHARE = 0.5
RESERVE_SHARE = 0.05  # kept back for the ensemble and scoring the validation set
MIN_RESERVE_S = 0.5
MIN_TRAIN_S = 1.0  # below this nothing but a tiny forest is trained
MIN_NEURAL_S = 2.0  # the network needs at least this to take a few steps
FALLBACK_ROWS, FALLBACK_TREES = 500, 10  # the forest kept when the budget is too small
MEDIA_CACHE_BYTES = 1 << 30  # decoded images/audio kept in memory below this size
# Media files are decoded by worker processes from this many rows on, which was faster than
# one by one for Fashion-MNIST's PNGs (see bench/RESULTS.md, 'Ad-hoc probes'); below it,
# starting the processes costs more than it saves.
PARALLEL_DECODE_MIN_ROWS = 2000
MAX_FILE_CHECKS = 200  # media cells decoded per column by the cleaning report

REQUIRED_FILES = ("config.json", "schema.json", "cleaning.json", "transform/transform.json",
                  "ensemble.json", "leaderboard.csv", "versions.json")


class _ThreadsBack:
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


class Predictor:
    """Predict one column of a multimodal table from the others.

    Args:
        label: the column to predict.
        problem_type: ``"auto"`` (inferred from the label, with the reason kept in the
            schema) or one of ``binary``, ``multiclass``, ``regression``, ``multilabel``.
        time_limit: seconds for the whole ``fit``; ``None`` trains every candidate fully.
        preset: ``"fast"`` (small network, short training) or ``"best"`` (larger, longer).
        seed: seeds the split, every model and the training order; the same seed and data
            give identical predictions on CPU.
        columns: modality overrides ``{column: modality}``, e.g. ``{"zip": "categorical"}``.
        text_encoder: ``"auto"`` (MiniLM when installed), ``"minilm"``, ``"hashed"`` or
            ``"minilm+hashed"`` text embeddings.
        image_size: side of the square images the models see; ``None`` infers it.
        fusion: ``"auto"`` (the preset's; for a large table of one image column and
            nothing else, none: the image's embedding goes to the head through a SiLU, see
            :class:`~polymodal.models.fusion.SingleFusion`), ``"concat"`` or ``"attention"``.
        image_augment: random changes to training images (the network's; validation and
            prediction see them as they are). ``None`` (default): none. ``"hflip"``:
            mirror left-right half the time — say so only when a mirrored image keeps its
            label (photos of objects, clothes, animals; not digits, text, or labels about
            left and right). A dict sets ``hflip`` (bool), ``shift_px`` (int) and
            ``rotate_deg`` (float) of :class:`~polymodal.data.transforms.TableTransform`'s
            ``augment`` (missing keys: ``hflip`` False, ``shift_px`` 2, ``rotate_deg`` 0).
            With mirroring on, the network's validation outputs are also scored averaged
            over each image and its mirror (test-time augmentation), which is kept for
            prediction when it validates better.
        validation_fraction: share of labelled rows held out to choose the model.
        verbosity: 0 silent, 1 one line per candidate and the training progress bar.
    """

    def __init__(
        self,
        label: str,
        *,
        problem_type: str = "auto",
        time_limit: float | None = None,
        preset: str = "fast",
        seed: int = 0,
        columns: dict[str, str] | None = None,
        text_encoder: str = "auto",
        image_size: int | None = None,
        fusion: str = "auto",
        image_augment: str | dict | None = None,
        validation_fraction: float = 0.2,
        recipe: dict | None = None,
        verbosity: int = 1,
    ):
        self.label = label
        self.problem_type = problem_type
        self.time_limit = time_limit
        self.preset = preset
        self.seed = seed
        self.columns = columns
        self.text_encoder = text_encoder
        self.image_size = image_size
        self.fusion = fusion
        self.image_augment = image_augment
        self.validation_fraction = validation_fraction
        self.recipe = recipe
        self.verbosity = verbosity

    # ------------------------------------------------------------------ configuration

    def get_params(self, deep: bool = True) -> dict:
        """The constructor arguments, as stored (scikit-learn's contract; JSON-able)."""
        return get_params(self)

    def set_params(self, **params):
        """Set constructor arguments (scikit-learn's contract); refit to apply them."""
        return set_params(self, params)

    def _validate_params(self) -> None:
        """Check every argument once and report all problems in one ConfigError."""
        problems = []

        def is_int(v) -> bool:
            return isinstance(v, numbers.Integral) and not isinstance(v, bool)

        if not isinstance(self.label, str) or not self.label:
            problems.append(f"label={self.label!r} must be a column name (a non-empty string)")
        if self.problem_type not in ("auto", *PROBLEM_TYPES):
            problems.append(f"problem_type={self.problem_type!r} must be 'auto' or one of {list(PROBLEM_TYPES)}")
        if self.time_limit is not None and not (
            isinstance(self.time_limit, numbers.Real) and not isinstance(self.time_limit, bool)
            and self.time_limit > 0 and math.isfinite(self.time_limit)
        ):
            problems.append(f"time_limit={self.time_limit!r} must be a number of seconds > 0, or None")
        if self.preset not in PRESETS:
            problems.append(f"preset={self.preset!r} must be one of {list(PRESETS)}")
        if not is_int(self.seed) or self.seed < 0:
            problems.append(f"seed={self.seed!r} must be an integer >= 0")
        if self.columns is not None and not (
            isinstance(self.columns, dict) and all(isinstance(k, str) and isinstance(v, str)
                                                   for k, v in self.columns.items())
        ):
            problems.append(f"columns={self.columns!r} must be a dict {{column: modality}}, "
                            "e.g. {'zip': 'categorical'}")
        if self.text_encoder not in TEXT_KINDS:
            problems.append(f"text_encoder={self.text_encoder!r} must be one of {list(TEXT_KINDS)}")
        if self.image_size is not None and (not is_int(self.image_size) or self.image_size < 8):
            problems.append(f"image_size={self.image_size!r} must be an integer >= 8, or None to infer it")
        if self.fusion not in FUSION_CHOICES:
            problems.append(f"fusion={self.fusion!r} must be one of {list(FUSION_CHOICES)}")
        if isinstance(self.image_augment, dict):
            unknown = sorted(set(self.image_augment) - set(AUGMENT_DEFAULTS))
            if unknown:
                problems.append(f"image_augment has unknown key(s) {unknown}; the keys are "
                                f"{sorted(AUGMENT_DEFAULTS)}")
        elif not (self.image_augment is None or self.image_augment in IMAGE_AUGMENT_CHOICES):
            problems.append(f"image_augment={self.image_augment!r} must be None, one of "
                            f"{list(IMAGE_AUGMENT_CHOICES)} or a dict like "
                            "{'hflip': True, 'shift_px': 2}")
        if not (isinstance(self.validation_fraction, numbers.Real)
                and 0 < self.validation_fraction <= 0.5):
            problems.append(f"validation_fraction={self.validation_fraction!r} must be in (0, 0.5], e.g. 0.2")
        if not is_int(self.verbosity) or self.verbosity < 0:
            problems.append(f"verbosity={self.verbosity!r} must be an integer >= 0")
        if self.recipe is not None and not isinstance(self.recipe, dict):
            problems.append(f"recipe={self.recipe!r} must be a dict of recipe fields, e.g. "
                            "{'network.width': 96}")
        elif self.recipe:
            try:  # unknown keys and values out of range, before any work
                override(PredictorRecipe(), self.recipe).validate()
            except ConfigError as exc:
                problems.append(str(exc))
        if problems:
            raise ConfigError("Predictor: " + "; ".join(problems))

    def _say(self, message: str) -> None:
        logger.info(message)
        if self.verbosity > 0:
            from rich.console import Console

            Console(stderr=True).print(message, highlight=False, soft_wrap=True)

    # ------------------------------------------------------------------ fit

    def fit(self, train, tuning_data=None, *, resume_dir: str | os.PathLike | None = None,
            checkpoint_every_s: float = 30.0, callbacks: Sequence = (),
            augment=None) -> Predictor:
        """Train every candidate on ``train`` and keep the one that validates best.

        Args:
            train: a DataFrame or a path :func:`~polymodal.data.readers.read_table` reads.
            tuning_data: labelled rows to validate on; default: a seeded, stratified
                ``validation_fraction`` of ``train``.
            resume_dir: folder for the neural candidate's checkpoints; when it holds one
                from an interrupted fit with the same data and settings, training resumes.
            checkpoint_every_s: how often that checkpoint is written (with ``resume_dir``).
            callbacks: training-loop callbacks for the neural candidate
                (see :class:`polymodal.train.Callback`).
            augment: a synthesizer of training rows, called as ``augment(train_rows, label,
                time_limit_s=...)`` with the real training split and its share of the time
                limit, returning ``(rows, summary)``: generative augmentation is
                :class:`polymodal.workflows.augment.AugmentConfig`. Its rows join the
                training rows after the validation split, never validation; rows a table
                marks in its ``is_synthetic`` column (or the synthesizer's ``marker``) are
                treated the same way even without ``augment``. Generating counts against
                ``time_limit``, like everything ``fit`` does.
        """
        start = time.perf_counter()
        self._validate_params()
        if augment is not None and not callable(augment):
            raise ConfigError(f"augment={augment!r} must be a synthesizer such as "
                              "polymodal.workflows.augment.AugmentConfig(ratio=1.0), or None")
        for name in [k for k in vars(self) if k.endswith("_")]:
            delattr(self, name)  # a fit that fails leaves the predictor unfitted, not half-old
        budget = TimeBudget(self.time_limit, start=start)
        log: list[dict] = []

        # 1. Read the table; infer the schema (with reasons) and report what needs cleaning.
        #    Rows marked synthetic are set aside: they may train, never validate.
        df = read_table(train)
        marker = getattr(augment, "marker", SYNTHETIC_COLUMN)
        marked_df = None
        columns = self.columns
        if augment is not None or marker in df.columns:
            df, marked_df, real_positions = split_marked(df, marker)
            columns = {**(self.columns or {}), marker: "ignored"}  # a marker, not a feature
        else:
            real_positions = np.arange(len(df))
        tuning = None if tuning_data is None else read_table(tuning_data)
        if tuning is not None and self.label not in tuning.columns:
            raise SchemaError(f"tuning_data lacks the label column {self.label!r} (its columns: "
                              f"{list(tuning.columns)[:20]}); pass labelled rows to validate on, "
                              "or leave tuning_data=None to split them off the training table")
        schema = infer_schema(df, label=self.label, overrides=columns,
                              problem_type=self.problem_type, seed=self.seed)
        self.cleaning_report_ = clean_report(df, schema, max_file_checks=MAX_FILE_CHECKS)
        problem = schema.problem_type
        self._say(f"[bold]{self.label}[/]: {schema.problem_reason}")
        if augment is not None and problem not in ("binary", "multiclass"):
            raise ConfigError(f"augment= needs a classification label; {self.label!r} is "
                              f"{problem} ({schema.problem_reason}). Leave augment=None")

        # 2. Labelled rows only; split off a validation set unless one was given.
        #    ``validation_rows_`` keeps the positions (in the table given) validated on.
        real_df, df = df, self._labelled(df, "the training table")
        labelled_positions = real_positions[present_mask(real_df[self.label])]
        self.validation_rows_ = np.zeros(0, dtype=np.int64)
        if tuning is None:
            train_idx, val_idx = self._split_positions(df, problem)
            train_df, val_df = _rows(df, train_idx), _rows(df, val_idx)
            self.validation_rows_ = labelled_positions[val_idx]
        else:
            train_df, val_df = df, self._labelled(tuning, "tuning_data")
        self.train_rows_ = labelled_positions if tuning is not None else labelled_positions[train_idx]

        # 3. Transforms learn from the training rows only.
        image_augment = (self.image_augment if isinstance(self.image_augment, dict)
                         else IMAGE_AUGMENT_CHOICES[self.image_augment or "none"])
        transform = TableTransform(schema, image_size=self.image_size,
                                   text_encoder=self.text_encoder, augment=image_augment
                                   ).fit(train_df)
        spec = transform.feature_spec()
        log.append({"event": "prepared", "time_s": time.perf_counter() - start})
        self.schema_, self.transform_, self.problem_type_ = schema, transform, problem
        # 3b. Generative augmentation: synthetic rows join the (real) training rows only, and
        #     the transforms above stay fitted on real rows. Generating gets a share of the
        #     budget (SYNTHESIS_SHARE of what is left), the candidates the rest.
        self.augmentation_ = None
        if marked_df is not None:
            augment_start = time.perf_counter()
            train_df, self.augmentation_ = self._with_synthetic_rows(
                train_df, marked_df, augment, marker, time_limit_s=budget.share_s(SYNTHESIS_SHARE))
            log.append({"event": "augmented", "num_train_rows": len(train_df),
                        "time_s": time.perf_counter() - augment_start})
        # 3c. The recipe: what trains, and how, for this table (saved with the model).
        self.recipe_ = resolve_predictor(schema, len(train_df), preset=self.preset,
                                         fusion=self.fusion, overrides=self.recipe)
        train_ds = TableDataset(train_df, transform, train=True, seed=self.seed,
                                cache_media=self._cache_media(spec, len(train_df)))
        val_ds = TableDataset(val_df, transform, cache_media=True)
        media = bool(spec["image_shapes"] or spec["audio_shapes"])
        if media:
            # Decode every media file once, in parallel, before anything reads them: the
            # flat features and every epoch of the network then read the cache.
            decode_start = time.perf_counter()
            for ds in (train_ds, val_ds):
                if ds.cache_media:
                    ds.preload_media(num_workers=_decode_workers(len(ds)))
            log.append({"event": "media_decoded", "num_rows": len(train_ds) + len(val_ds),
                        "time_s": time.perf_counter() - decode_start})
        score, _, val_known = self._scorer(val_ds)
        metric, mode = PRIMARY_METRIC[problem]

        # 4. Candidates in order of cost, each within its share of the budget.
        self.models_: dict = {}
        val_outputs: dict[str, np.ndarray] = {}
        rows: list[dict] = []

        def record(name: str, outputs: np.ndarray, fit_s: float, predict_s: float, **extra) -> None:
            value = float(score(outputs))
            val_outputs[name] = outputs
            rows.append({"model": name, f"val_{metric}": value, "fit_time_s": round(fit_s, 3),
                         "predict_time_s": round(predict_s, 3)})
            log.append({"event": "candidate", "model": name, f"val_{metric}": value,
                        "fit_time_s": fit_s, "predict_time_s": predict_s, **extra})
            self._say(f"  {name:<24} val {metric} {value:.4f}   fit {fit_s:.1f} s   "
                      f"predict {predict_s:.2f} s")

        layout = flat_layout(spec, category_numbers(transform.vocab_))

        def flat_features_now() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            """(x_train, y_train, x_val): the classic models' flat features and targets.
            Large media tables: the classic models see a seeded sample of the training rows
            (their accuracy on pixel features saturates long before; the network sees all)."""
            flat_start = time.perf_counter()
            classic_rows, y = None, train_ds.encoded.label
            if media and len(train_ds) > CLASSIC_MEDIA_MAX_ROWS:
                classic_rows = np.sort(np.random.default_rng(self.seed).permutation(
                    len(train_ds))[:CLASSIC_MEDIA_MAX_ROWS])
                y = np.asarray(y)[classic_rows]
            x_tr, x_va = self._flat(train_ds, spec, rows=classic_rows), self._flat(val_ds, spec)
            log.append({"event": "flat_features", "num_features": layout.num_features,
                        "classic_train_rows": len(x_tr),
                        "time_s": time.perf_counter() - flat_start})
            return x_tr, y, x_va

        self.training_history_: list[dict] = []
        refits = None
        too_small = budget.left_s() < MIN_TRAIN_S
        threads = torch.get_num_threads()
        if (media and threads >= 2 and not too_small and not math.isinf(budget.left_s())
                and self.recipe_.candidates.neural):
            # Media tables: the flat features and the classic models are computed on one
            # core while the network trains on the others, and the network takes every core
            # back once they are done (the side thread's ~20 s would otherwise come out of
            # the network's budget). Both read only in-memory arrays by now.
            refit = tuning is None and len(train_df) < REFIT_MAX_ROWS
            refits = self._fit_side_by_side(flat_features_now, layout.categorical, spec,
                                            budget, record, log, train_ds, val_ds, score, metric,
                                            mode, resume_dir, checkpoint_every_s, callbacks,
                                            threads, refit=refit)
            x_train = y_train = x_val = None  # the refits are made; nothing reads these
        else:
            x_train, y_train, x_val = flat_features_now()
            too_small = self._fit_baselines(x_train, y_train, x_val, layout.categorical, spec,
                                             budget, record)
            refit = tuning is None and not too_small and len(train_df) < REFIT_MAX_ROWS
            # Time kept back for refitting the classic models on every labelled row (step 7).
            refit_reserve_s = 0.0
            if refit and not math.isinf(budget.left_s()):
                refit_reserve_s = min(REFIT_MAX_SHARE * budget.left_s(),
                                      sum(r["fit_time_s"] for r in rows) * REFIT_COST_MARGIN
                                      * (len(train_df) + len(val_df)) / len(train_df))
            if not too_small and self.recipe_.candidates.neural:
                self._fit_neural(train_ds, val_ds, spec, score, metric, mode, budget, record, log,
                                 resume_dir, checkpoint_every_s, callbacks, refit_reserve_s)

        # 5. A weighted ensemble, when more than one model was trained.
        self.ensemble_weights_: dict[str, float] | None = None
        if len(val_outputs) > 1:
            ens_start = time.perf_counter()
            weights = ensemble_selection(val_outputs, score, mode=mode,
                                         num_rounds=self.recipe_.candidates.ensemble_rounds)
            if len(weights) > 1:
                blended = blend(val_outputs, weights)
                predict_s = sum(r["predict_time_s"] for r in rows if r["model"] in weights)
                self.ensemble_weights_ = weights
                record(ENSEMBLE, blended, time.perf_counter() - ens_start, predict_s,
                       weights=weights)

        # 6. The best on validation wins; ties go to the cheaper (earlier) model.
        chosen = self._choose(rows, metric, mode)
        self.chosen_ = chosen
        if chosen != ENSEMBLE:
            self.ensemble_weights_ = None
        for row in rows:
            row["chosen"] = row["model"] == chosen
        self.leaderboard_ = pd.DataFrame(rows, columns=["model", f"val_{metric}", "fit_time_s",
                                                        "predict_time_s", "chosen"])
        self.val_metric_ = float(next(r[f"val_{metric}"] for r in rows if r["model"] == chosen))
        # Predictions (and the saved folder) use only the models the chosen one needs;
        # every trained candidate stays reachable in memory for inspection.
        self.candidates_ = dict(self.models_)
        needed = set(self.ensemble_weights_ or {chosen: 1.0})
        self.models_ = {name: m for name, m in self.models_.items() if name in needed}

        # 7. Refit the chosen classic models on train + validation rows (AutoGluon's
        #    "refit_full"): the held-out rows were needed to choose a model, and on small
        #    tables a fifth more rows is worth more than the tiny risk of a changed model.
        #    The network keeps its weights (retraining it would double its cost).
        self.refit_models_: list[str] = []
        if refit:
            self._refit_on_all_rows(x_train, y_train, x_val, val_ds, budget, rows, log,
                                    prefitted=refits)
        total_s = time.perf_counter() - start
        log.append({"event": "chosen", "model": chosen, f"val_{metric}": self.val_metric_,
                    "fit_total_s": total_s, "num_train_rows": len(train_df),
                    "num_val_rows": int(val_known.sum())})
        self.train_log_ = log
        self.fit_time_s_ = total_s
        self._say(f"chosen: [bold]{chosen}[/] (val {metric} {self.val_metric_:.4f}) "
                  f"in {total_s:.1f} s")
        return self

    def _fit_baselines(self, x_train, y_train, x_val, categorical, spec, budget, record, *,
                       models: dict | None = None, say=None) -> bool:
        """Fit the classic models on flat features; True when the budget was too small
        for more than the fallback forest. Fitted models go into ``models`` (default
        ``self.models_``), messages to ``say`` (default :meth:`_say`)."""
        models = self.models_ if models is None else models
        say = self._say if say is None else say
        too_small = budget.left_s() < MIN_TRAIN_S
        if too_small:
            message = (f"time_limit={self.time_limit} s is too small to train anything (reading and "
                       f"transforming the table left {max(0.0, budget.left_s()):.2f} s); keeping the "
                       f"fastest baseline, a {FALLBACK_TREES}-tree random forest on at most "
                       f"{FALLBACK_ROWS} rows. Raise time_limit for a real model")
            warnings.warn(message, UserWarning, stacklevel=3)
            say(f"[yellow]warning:[/] {message}")
        candidates = self.recipe_.candidates
        # Too small a budget: the fallback forest alone, whatever the recipe lists.
        for kind in ("random_forest",) if too_small else candidates.classic:
            left = budget.left_s()
            if kind != "random_forest" and left < MIN_TRAIN_S:
                say(f"  {kind:<24} skipped: {max(0.0, left):.1f} s left")
                continue
            model = ClassicModel(kind, self.problem_type_, spec["n_outputs"],
                                 categorical=categorical, seed=self.seed)
            fit_start = time.perf_counter()
            if too_small:
                rng = np.random.default_rng(self.seed)
                kept = np.sort(rng.permutation(len(x_train))[:FALLBACK_ROWS])
                model.fit(x_train[kept], y_train[kept], max_size=FALLBACK_TREES)
            else:
                model.fit(x_train, y_train, time_limit_s=budget.share_s(candidates.shares.get(kind, 0.0)))
            fit_s = time.perf_counter() - fit_start
            predict_start = time.perf_counter()
            outputs = model.predict_outputs(x_val)
            models[kind] = model
            record(kind, outputs, fit_s, time.perf_counter() - predict_start,
                   complete=model.complete_)
        return too_small

    def _refit_on_all_rows(self, x_train, y_train, x_val, val_ds, budget, rows, log, *,
                           prefitted: dict | None = None) -> None:
        """Refit each kept classic model on train + labelled validation rows, with the size
        (trees, iterations) it reached before, when the budget still has time for it.
        ``prefitted`` holds refits already made (``{name: (model, fit_s, num_rows)}``, by
        :meth:`_fit_side_by_side`); only those are used then."""
        if prefitted is None:
            x_all, y_all = self._all_rows(x_train, y_train, x_val, val_ds)
            fit_times = {r["model"]: r["fit_time_s"] for r in rows}
        for name, model in list(self.models_.items()):
            if not isinstance(model, ClassicModel):
                continue
            if prefitted is not None:
                if name not in prefitted:
                    continue
                refitted, fit_s, num_rows = prefitted[name]
            else:
                estimate_s = fit_times[name] * REFIT_COST_MARGIN * len(x_all) / len(x_train)
                if estimate_s > budget.left_s():
                    self._say(f"  {name:<24} not refitted on all rows: needs ~{estimate_s:.1f} s, "
                              f"{max(0.0, budget.left_s()):.1f} s left")
                    continue
                fit_start = time.perf_counter()
                refitted = _refit(model, x_all, y_all)
                fit_s, num_rows = time.perf_counter() - fit_start, len(x_all)
            self.models_[name] = self.candidates_[name] = refitted
            self.refit_models_.append(name)
            log.append({"event": "refit", "model": name, "num_rows": num_rows, "fit_time_s": fit_s})
            self._say(f"  {name:<24} refitted on all {num_rows} labelled rows in {fit_s:.1f} s")

    def _all_rows(self, x_train, y_train, x_val, val_ds) -> tuple[np.ndarray, np.ndarray]:
        """Flat features and targets of the training rows plus the labelled validation rows."""
        _, known = self._targets(val_ds)
        x_all = np.concatenate([x_train, x_val[known]])  # (N_train + N_val, F)
        y_all = np.concatenate([y_train, np.asarray(val_ds.encoded.label)[known]])
        return x_all, y_all

    def _fit_side_by_side(self, flat_features_now, categorical, spec, budget, record, log,
                          train_ds, val_ds, score, metric, mode, resume_dir, checkpoint_every_s,
                          callbacks, threads: int, *, refit: bool) -> dict:
        """The flat features (``flat_features_now()``), the classic models and, with
        ``refit``, their refits on all labelled rows in a background thread with one CPU
        thread; the network meanwhile in this one with the rest, and with all ``threads``
        from its first step after the background thread ends. Results are recorded in the
        usual order (classic first) after both finish.
        Returns the refits made (``{name: (model, fit_s, num_rows)}``)."""
        classic: dict = {}
        refits: dict = {}
        calls: list[tuple] = []  # record() calls, replayed in order once both are done
        messages: list[str] = []
        errors: list[BaseException] = []
        network_end = time.perf_counter() + budget.left_s() * (1 - RESERVE_SHARE)

        def side() -> None:
            try:
                with classic_threads(1):
                    x_train, y_train, x_val = flat_features_now()
                    self._fit_baselines(x_train, y_train, x_val, categorical, spec, budget,
                                        lambda *a, **k: calls.append((a, k)),
                                        models=classic,
                                        say=messages.append)
                    if refit:
                        refits.update(self._refit_before(classic, calls, network_end, x_train,
                                                         y_train, x_val, val_ds, messages))
            except BaseException as exc:  # noqa: BLE001 - re-raised in the calling thread
                errors.append(exc)

        neural_calls: list[tuple] = []
        worker = threading.Thread(target=side, name="polymodal-classic", daemon=True)
        torch.set_num_threads(max(1, threads - 1))
        log.append({"event": "classic_beside_network", "classic_threads": 1,
                    "network_threads": torch.get_num_threads()})
        worker.start()
        take_back = _ThreadsBack(worker, threads, log)
        try:
            self._fit_neural(train_ds, val_ds, spec, score, metric, mode, budget,
                             lambda *a, **k: neural_calls.append((a, k)), log, resume_dir,
                             checkpoint_every_s, [*callbacks, take_back])
        finally:
            worker.join()
            torch.set_num_threads(threads)
        if errors:
            raise errors[0]
        for message in messages:
            self._say(message)
        for kind in CLASSIC_KINDS:  # the order the sequential path records them in
            if kind in classic:
                self.models_[kind] = classic[kind]
        for args, kwargs in calls + neural_calls:
            record(*args, **kwargs)
        return refits

    def _refit_before(self, classic: dict, calls: list, deadline: float, x_train, y_train,
                      x_val, val_ds, messages: list) -> dict:
        """Refit each of ``classic`` on all labelled rows, each only when its estimated cost
        ends before ``deadline`` (a ``perf_counter`` time)."""
        x_all, y_all = self._all_rows(x_train, y_train, x_val, val_ds)
        fit_times = {args[0]: args[2] for args, _ in calls}
        refits = {}
        for name, model in classic.items():
            estimate_s = fit_times[name] * REFIT_COST_MARGIN * len(x_all) / len(x_train)
            if time.perf_counter() + estimate_s > deadline:
                messages.append(f"  {name:<24} not refitted on all rows: needs ~{estimate_s:.1f} s")
                continue
            fit_start = time.perf_counter()
            refits[name] = (_refit(model, x_all, y_all), time.perf_counter() - fit_start, len(x_all))
        return refits

    def _fit_neural(self, train_ds, val_ds, spec, score, metric, mode, budget, record, log,
                    resume_dir, checkpoint_every_s, callbacks, refit_reserve_s: float = 0.0) -> None:
        """Train the fusion network in what is left of the budget, minus a reserve for the
        ensemble, the validation scoring and the classic models' refit."""
        left = budget.left_s()
        reserve = (max(MIN_RESERVE_S, RESERVE_SHARE * left) + refit_reserve_s
                   if not math.isinf(left) else 0.0)
        time_s = None if math.isinf(left) else left - reserve
        if time_s is not None and time_s < MIN_NEURAL_S:
            self._say(f"  {NEURAL:<24} skipped: {max(0.0, time_s):.1f} s left of the time limit")
            return
        net, training = self.recipe_.network, self.recipe_.training
        n_train = len(train_ds)
        config = TrainConfig(
            batch_size=training.batch_size, lr=training.lr, weight_decay=training.weight_decay,
            warmup_steps=default_warmup_steps(n_train, training.batch_size, training.max_epochs),
            min_lr_ratio=training.min_lr_ratio, max_epochs=training.max_epochs,
            time_limit_s=time_s,
            ema_halflife_images=(default_halflife_images(n_train, training.batch_size)
                                 if training.ema else None),
            early_stopping_patience=training.early_stopping_patience,
            checkpoint_every_s=checkpoint_every_s if resume_dir is not None else None,
            seed=self.seed, progress=self.verbosity > 0,
            # Image networks are convolutions, which AMX tiles run in bf16 far faster.
            precision=("bf16" if bf16_pays_for_images(spec["image_shapes"].values())
                       else "auto"),
        )
        network = dataclasses.asdict(net)
        smoothing = training.label_smoothing
        self.neural_config_ = {"network": network, "train": dataclasses.asdict(config),
                               "label_smoothing": smoothing}
        candidate = NeuralCandidate(spec, network, seed=self.seed, label_smoothing=smoothing)
        out_dir = None if resume_dir is None else Path(resume_dir) / NEURAL
        fit_start = time.perf_counter()
        result = candidate.fit(train_ds, val_ds, config=config, score=score, metric_name=metric,
                               metric_mode=mode, out_dir=out_dir, resume=resume_dir is not None,
                               callbacks=callbacks)
        fit_s = time.perf_counter() - fit_start
        predict_start = time.perf_counter()
        outputs = self._dataset_outputs(val_ds, {NEURAL: candidate}, spec)[NEURAL]
        predict_s = time.perf_counter() - predict_start
        augment = self.transform_.augment_
        if spec["image_shapes"] and augment is not None and augment["hflip"]:
            # Trained on mirror images too: score the mean over each image and its mirror
            # (what predict_outputs gives with tta_hflip, batch for batch), and keep it for
            # prediction only when it validates better.
            tta_start = time.perf_counter()
            loader = make_loader(val_ds, batch_size=EVAL_BATCH_SIZE, shuffle=False, seed=0)
            mirror = np.concatenate([candidate.mirror_outputs(b) for b in loader])
            tta_outputs = 0.5 * (outputs + mirror)
            plain, tta = float(score(outputs)), float(score(tta_outputs))
            candidate.tta_hflip = tta > plain if mode == "max" else tta < plain
            log.append({"event": "tta_hflip", f"val_{metric}_plain": plain,
                        f"val_{metric}_tta": tta, "kept": candidate.tta_hflip,
                        "time_s": time.perf_counter() - tta_start})
            self._say(f"  {NEURAL:<24} mirror test-time augmentation: val {metric} {plain:.4f} "
                      f"-> {tta:.4f}, {'kept' if candidate.tta_hflip else 'not kept'}")
            if candidate.tta_hflip:
                outputs, predict_s = tta_outputs, predict_s + time.perf_counter() - tta_start
        self.models_[NEURAL] = candidate
        self.training_history_ = list(result.history)
        log.extend({"model": NEURAL, **entry} for entry in result.history)
        record(NEURAL, outputs, fit_s, predict_s, tta_hflip=candidate.tta_hflip,
               stop_reason=result.stop_reason, steps=result.steps, epochs=result.epochs,
               resumed_from_step=result.resumed_from_step)

    @staticmethod
    def _choose(rows: list[dict], metric: str, mode: str) -> str:
        def key(row: dict) -> float:
            value = row[f"val_{metric}"]
            if not math.isfinite(value):
                return math.inf
            return -value if mode == "max" else value

        return min(rows, key=key)["model"]  # min keeps the first of equal keys

    # ------------------------------------------------------------------ fit helpers

    def _labelled(self, df: pd.DataFrame, what: str) -> pd.DataFrame:
        """The rows of ``df`` whose label is present (a warning counts the others)."""
        if self.label not in df.columns:
            raise SchemaError(f"{what} has no label column {self.label!r}; its columns are "
                              f"{list(df.columns)[:20]}")
        present = present_mask(df[self.label])
        if not present.any():
            raise DataError(f"every row of {what} lacks a value in label column {self.label!r}; "
                            "pass labelled rows")
        if not present.all():
            message = (f"{int((~present).sum()):,} row(s) of {what} have no {self.label!r} value "
                       "and are left out of training")
            warnings.warn(message, UserWarning, stacklevel=3)
            self._say(f"[yellow]note:[/] {message}")
        return _rows(df, np.flatnonzero(present))

    def _split(self, df: pd.DataFrame, problem: str) -> tuple[pd.DataFrame, pd.DataFrame]:
        """A seeded validation split, stratified by class when every class can be split."""
        train_idx, val_idx = self._split_positions(df, problem)
        return _rows(df, train_idx), _rows(df, val_idx)

    def _split_positions(self, df: pd.DataFrame, problem: str) -> tuple[np.ndarray, np.ndarray]:
        """Sorted row positions (train, validation) of :meth:`_split`."""
        from sklearn.model_selection import train_test_split

        n = len(df)
        n_val = max(1, min(MAX_VALIDATION_ROWS, int(round(self.validation_fraction * n))))
        if n - n_val < 2:
            raise DataError(f"the training table has {n} labelled row(s); a predictor needs at "
                            "least 3 (2 to train on, 1 to validate on)")
        stratify = None
        if problem in ("binary", "multiclass"):
            keys = hashable_values(df[self.label]).astype(str).to_numpy()
            counts = pd.Series(keys).value_counts()
            if counts.min() >= 2 and n_val >= len(counts) and n - n_val >= len(counts):
                stratify = keys
        train_idx, val_idx = train_test_split(np.arange(n), test_size=n_val,
                                              random_state=self.seed, stratify=stratify)
        return np.sort(train_idx), np.sort(val_idx)

    @staticmethod
    def _cache_media(spec: dict, num_rows: int) -> bool:
        per_row = sum(math.prod(s) for s in spec["image_shapes"].values())
        per_row += sum(math.prod(s) for s in spec["audio_shapes"].values())
        return per_row * 4 * num_rows <= MEDIA_CACHE_BYTES

    def _flat(self, dataset: TableDataset, spec: dict, rows: np.ndarray | None = None) -> np.ndarray:
        """Flat features (N, F) of every row of ``dataset`` (or of ``rows``, in that order),
        without augmentation."""
        numbers = category_numbers(self.transform_.vocab_)
        # A shallow copy (same arrays and media cache) that does not augment: the original
        # may be training the network in another thread meanwhile.
        dataset = copy.copy(dataset)
        dataset.train = False
        loader = make_loader(dataset, batch_size=EVAL_BATCH_SIZE, shuffle=False, seed=0,
                             sampler=None if rows is None else rows.tolist())
        return np.concatenate([flat_features(b, spec, numbers) for b in loader])

    def _scorer(self, dataset: TableDataset):
        """``(score(outputs) -> primary metric, y_true, known)`` over the dataset's labelled rows."""
        y_true, known = self._targets(dataset)
        if not known.any():
            raise DataError(f"no validation row has a {self.label!r} value the training rows have "
                            "(unseen classes cannot be scored); pass more rows or other tuning_data")
        y_known = y_true[known]

        def score(outputs: np.ndarray) -> float:
            return self._primary_metric(y_known, np.asarray(outputs)[known])

        return score, y_true, known

    def _primary_metric(self, y_true: np.ndarray, outputs: np.ndarray) -> float:
        """The primary metric alone, as :func:`compute_metrics` defines it but without the
        others (ensemble selection scores hundreds of blends)."""
        problem = self.problem_type_
        if problem in ("binary", "multiclass"):
            return float(np.mean(outputs.argmax(axis=1) == y_true))  # accuracy
        if problem == "regression":
            values = self.transform_.inverse_label(outputs)
            return float(np.sqrt(np.mean((np.asarray(y_true, dtype=np.float64) - values) ** 2)))
        from sklearn.metrics import f1_score

        predicted = (outputs >= 0.5).astype(np.int64)
        return float(f1_score(y_true, predicted, average="macro", zero_division=0))

    def _targets(self, dataset: TableDataset) -> tuple[np.ndarray, np.ndarray]:
        """Encoded labels as metrics take them (class indices, original-unit values or
        multi-hot) and which rows have one."""
        enc = dataset.encoded
        if enc.label is None:
            raise DataError(f"the table has no label column {self.label!r}, so it cannot be "
                            "scored; pass rows that include it")
        known = np.asarray(enc.label_present, dtype=bool)
        if self.problem_type_ == "regression":
            values = np.asarray(self.transform_.inverse_label(np.nan_to_num(enc.label)))
            return values, known
        if self.problem_type_ == "multilabel":
            return np.asarray(enc.label).astype(np.int64), known
        return np.asarray(enc.label, dtype=np.int64), known & (np.asarray(enc.label) >= 0)

    def _metrics(self, y_true: np.ndarray, outputs: np.ndarray) -> dict[str, float]:
        """All metrics of the problem type, regression in the label's own units."""
        problem = self.problem_type_
        if problem == "regression":
            return compute_metrics(problem, y_true, self.transform_.inverse_label(outputs))
        if problem == "multilabel":
            return compute_metrics(problem, y_true, outputs,
                                   label_names=[str(t) for t in self.transform_.classes_])
        return compute_metrics(problem, y_true, outputs)

    # ------------------------------------------------------------------ predict

    def _check_fitted(self) -> None:
        if not hasattr(self, "chosen_"):
            raise NotFittedError("This Predictor is not fitted yet; call fit(...) or Predictor.load(dir)")

    @property
    def classes_(self) -> list | None:
        """Classes (binary/multiclass) or tags (multilabel) in output order; None for regression."""
        self._check_fitted()
        return self.transform_.classes_

    def _prepare(self, data, drop: Iterable[str] | None) -> pd.DataFrame:
        """The table to predict on, checked against the training columns, with ``drop``
        columns emptied (every cell missing, as a row without them would be)."""
        self._check_fitted()
        df = read_table(data)
        schema = self.schema_
        features = schema.features()
        absent = [c for c in features if c not in df.columns]
        required = [c for c in absent if schema.modality(c) not in OPTIONAL_MODALITIES]
        if required:
            raise DataError(f"the table lacks column(s) {required} that the predictor was trained "
                            f"on; its columns are {list(df.columns)[:20]}. Add them (only image, "
                            "audio and text columns may be left out)")
        if absent:
            warnings.warn(f"column(s) {absent} are missing from the table; the predictor treats "
                          "them as absent in every row (their presence mask is False)",
                          UserWarning, stacklevel=3)
        extra = [c for c in df.columns if c not in schema.columns]
        if extra:
            warnings.warn(f"column(s) {extra[:20]} were not in the training table and are ignored",
                          UserWarning, stacklevel=3)
        if drop:
            names = [drop] if isinstance(drop, str) else list(drop)
            unknown = [c for c in names if c not in features]
            if unknown:
                raise ConfigError(f"drop: {unknown} are not feature columns of this predictor; "
                                  f"choose among {features}")
            for column in names:
                if column in df.columns:
                    df[column] = pd.Series([None] * len(df), index=df.index, dtype=object)
        return df

    def _dataset_outputs(self, dataset: TableDataset, models: dict,
                         spec: dict) -> dict[str, np.ndarray]:
        """Each model's outputs over the dataset's rows, in one pass over its batches."""
        classic = {n: m for n, m in models.items() if isinstance(m, ClassicModel)}
        neural = {n: m for n, m in models.items() if isinstance(m, NeuralCandidate)}
        flats: list[np.ndarray] = []
        parts: dict[str, list[np.ndarray]] = {n: [] for n in neural}
        numbers = category_numbers(self.transform_.vocab_)
        loader = make_loader(dataset, batch_size=EVAL_BATCH_SIZE, shuffle=False, seed=0)
        for batch in loader:
            if classic:
                flats.append(flat_features(batch, spec, numbers))
            for name, model in neural.items():
                parts[name].append(model.predict_outputs(batch))
        outputs = {name: np.concatenate(p) for name, p in parts.items()}
        if classic:
            x = np.concatenate(flats)
            outputs.update({name: m.predict_outputs(x) for name, m in classic.items()})
        return outputs

    def _outputs(self, df: pd.DataFrame, *, with_label: bool = False
                 ) -> tuple[np.ndarray, TableDataset]:
        """The chosen model's outputs for ``df`` (N, K) or (N,), and the encoded dataset."""
        dataset = TableDataset(df, self.transform_, with_label=with_label,
                               allow_missing_columns=True)
        outputs = self._dataset_outputs(dataset, self.models_, self.transform_.feature_spec())
        if self.ensemble_weights_:
            return blend(outputs, self.ensemble_weights_), dataset
        return outputs[self.chosen_], dataset

    def predict_proba(self, df, *, drop: Iterable[str] | None = None) -> pd.DataFrame:
        """Class (or tag) probabilities: one column per entry of ``classes_``, rows as in ``df``.

        ``drop`` names feature columns to mask out (treated as missing in every row), as
        the per-modality ablation does.
        """
        self._check_fitted()
        if self.problem_type_ == "regression":
            raise ConfigError("predict_proba is for classification and multilabel; this predictor "
                              "does regression — call predict(df) for values")
        table = self._prepare(df, drop)
        outputs, _ = self._outputs(table)
        return pd.DataFrame(outputs, index=table.index, columns=list(self.classes_))

    def predict(self, df, *, drop: Iterable[str] | None = None) -> pd.Series:
        """Predictions in the label's own values, rows as in ``df``.

        Classes as in the training table (strings stay strings, integers integers),
        regression values in the label's units, multilabel a list of tags per row.
        """
        table = self._prepare(df, drop)
        outputs, _ = self._outputs(table)
        values = self.transform_.decode_label(outputs)
        dtype = object if self.problem_type_ == "multilabel" else None  # a list of tags per row
        return pd.Series(values, index=table.index, name=self.label, dtype=dtype)

    def evaluate(self, df) -> dict[str, float]:
        """Every metric of the problem type on ``df``'s labelled rows (a flat dict).

        Rows whose label is missing, or a class never seen in training, are not scored.
        """
        table = self._prepare(df, None)
        if self.label not in table.columns:
            raise DataError(f"the table has no label column {self.label!r}, so the predictor cannot "
                            f"be scored on it; its columns are {list(table.columns)[:20]}")
        outputs, dataset = self._outputs(table, with_label=True)
        y_true, known = self._targets(dataset)
        if not known.any():
            raise DataError(f"no row of the table has a usable {self.label!r} value ({len(table)} "
                            "rows); pass rows with known labels")
        return self._metrics(y_true[known], outputs[known])

    def leaderboard(self) -> pd.DataFrame:
        """Every candidate: ``model``, ``val_<metric>``, ``fit_time_s``, ``predict_time_s``, ``chosen``."""
        self._check_fitted()
        return self.leaderboard_.copy()

    # ------------------------------------------------------------------ save / load

    def _with_synthetic_rows(self, train: pd.DataFrame, marked: pd.DataFrame, synthesize,
                             marker: str, *, time_limit_s: float | None
                             ) -> tuple[pd.DataFrame, dict | None]:
        """The real training split, the rows the table already marked, and (with
        ``synthesize``) newly generated ones; and the summary.

        Marked rows of classes absent from ``train`` are left out (the predictor could not
        encode them).
        """
        if synthesize is None and marked.empty:
            return train, None
        label = self.label
        known = set(map(str, train[label]))
        usable = marked.iloc[np.flatnonzero(present_mask(marked[label]) & marked[label].astype(str)
                                            .isin(known).to_numpy())] if len(marked) else marked
        rows, summary = pd.DataFrame(columns=train.columns), None
        if synthesize is not None:
            rows, summary = synthesize(train, label, time_limit_s=time_limit_s)
        if summary is None:
            summary = {"marker": marker, "label": label, "num_real": len(train),
                       "num_synthetic": 0, "generator": None, "filter": None}
        summary["num_marked_used"] = len(usable)
        summary["num_marked_left_out"] = len(marked) - len(usable)
        return concat_rows([train, usable, rows], train.attrs), summary

    def config_dict(self) -> dict:
        """The resolved configuration written to ``config.json``."""
        self._check_fitted()
        return {"params": self.get_params(), "recipe": to_dict(self.recipe_),
                "problem_type": self.problem_type_, "label": self.label,
                "chosen": self.chosen_, "val_metric": self.val_metric_,
                "models": sorted(self.models_),
                "refit_on_all_rows": list(getattr(self, "refit_models_", [])),
                "neural": _json_safe(getattr(self, "neural_config_", None)),
                "augmentation": _json_safe(getattr(self, "augmentation_", None))}

    def save(self, directory: str | os.PathLike) -> Path:
        """Write the fitted predictor to ``directory`` atomically (nothing pickled).

        An existing polymodal model folder there is replaced as a whole; any other
        non-empty folder is left alone and raises :class:`ModelFolderError`.
        """
        self._check_fitted()
        from polymodal import versions

        def write(folder: Path) -> None:
            write_json(folder / "config.json", self.config_dict())
            write_json(folder / "schema.json", self.schema_.to_dict())
            write_json(folder / "cleaning.json", self.cleaning_report_.to_dict())
            self.transform_.save(folder / "transform")
            for name, model in self.models_.items():
                model.save(folder / "models" / name)
            write_json(folder / "ensemble.json", {"chosen": self.chosen_,
                                                  "weights": self.ensemble_weights_,
                                                  "models": sorted(self.models_)})
            write_text(folder / "leaderboard.csv", self.leaderboard_.to_csv(index=False))
            write_json(folder / "versions.json", versions())
            lines = [json.dumps(_json_safe(r)) for r in self.train_log_]
            write_text(folder / "train_log.jsonl", "\n".join(lines) + "\n")

        return write_folder_atomically(directory, write, format_version=FORMAT_VERSION)

    @classmethod
    def load(cls, directory: str | os.PathLike) -> Predictor:
        """A predictor saved by :meth:`save`; it gives identical predictions."""
        path = check_folder(directory, format_version=FORMAT_VERSION, required=REQUIRED_FILES)
        try:
            config = json.loads((path / "config.json").read_text())
            ensemble = json.loads((path / "ensemble.json").read_text())
            schema = Schema.from_dict(json.loads((path / "schema.json").read_text()))
            cleaning = cleaning_report_from_dict(json.loads((path / "cleaning.json").read_text()))
            leaderboard = pd.read_csv(path / "leaderboard.csv")
            predictor = cls(**config["params"])
            names = list(ensemble["models"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ModelFolderError(f"{path} has a missing or malformed entry ({exc}); save the "
                                   "predictor again") from None
        missing = [f"models/{n}" for n in names if not (path / "models" / n).is_dir()]
        if missing:
            raise ModelFolderError(f"{path} is incomplete: {', '.join(missing)} missing; save the "
                                   "predictor again")
        predictor.schema_ = schema
        predictor.problem_type_ = config["problem_type"]
        # Folders written before recipes existed hold the preset's settings instead.
        predictor.recipe_ = (from_dict(PredictorRecipe, config["recipe"]) if "recipe" in config
                             else None)
        predictor.cleaning_report_ = cleaning
        predictor.transform_ = TableTransform.load(path / "transform")
        predictor.models_ = {
            name: (NeuralCandidate.load(path / "models" / name) if name == NEURAL
                   else ClassicModel.load(path / "models" / name))
            for name in names
        }
        predictor.ensemble_weights_ = ensemble["weights"]
        predictor.chosen_ = ensemble["chosen"]
        predictor.val_metric_ = config["val_metric"]
        predictor.refit_models_ = list(config.get("refit_on_all_rows", []))
        if config.get("neural") is not None:
            predictor.neural_config_ = config["neural"]
        predictor.augmentation_ = config.get("augmentation")
        predictor.leaderboard_ = leaderboard
        log_path = path / "train_log.jsonl"
        predictor.train_log_ = ([json.loads(line) for line in log_path.read_text().splitlines() if line]
                                if log_path.is_file() else [])
        predictor.training_history_ = [
            {k: v for k, v in r.items() if k != "model"} for r in predictor.train_log_
            if r.get("model") == NEURAL and r.get("event") in ("train", "eval")
        ]
        return predictor

    def __repr__(self) -> str:
        state = f"chosen={self.chosen_!r}" if hasattr(self, "chosen_") else "not fitted"
        return f"Predictor(label={self.label!r}, preset={self.preset!r}, {state})"


def _refit(model: ClassicModel, x_all: np.ndarray, y_all: np.ndarray) -> ClassicModel:
    """A classic model of the same kind and size as ``model``, fitted on ``x_all``."""
    refitted = ClassicModel(model.kind, model.problem_type, model.n_outputs,
                            categorical=model.categorical, seed=model.seed)
    refitted.fit(x_all, y_all, max_size=model.size_)
    refitted.complete_ = model.complete_
    return refitted


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


def _rows(df: pd.DataFrame, positions: np.ndarray) -> pd.DataFrame:
    """Rows by position, renumbered, keeping the table's attrs (its base_dir)."""
    part = df.iloc[positions].reset_index(drop=True)
    part.attrs = dict(df.attrs)
    return part


def _json_safe(value):
    """NaN/inf as null, numpy scalars as numbers, so every log line is valid JSON."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
