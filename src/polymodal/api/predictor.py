"""``Predictor``: fit a multimodal table, predict, evaluate, save and load — on a time budget.

A scikit-learn estimator (:mod:`polymodal.api.sklearn_compat`): ``__init__`` stores its
arguments unchanged, ``fit(X, y)`` (or ``fit(table)`` with ``label=``) returns ``self``,
learned state ends in ``_``, ``predict``/``predict_proba`` return arrays, ``score`` is
accuracy or R², and using an unfitted predictor raises
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

import os
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.utils.metaestimators import available_if

from polymodal.api import cross_validation, fit_data, streamed_fit
from polymodal.api.candidate_schedule import fit_candidates, refit_on_all_rows, start_run
from polymodal.api.candidates import CandidateRun, candidate_outputs
from polymodal.api.export_onnx import check_export_format
from polymodal.api.predictor_folder import predictor_config, read_predictor, write_predictor
from polymodal.api.ranks import Ranks, rank_group, train_predictor_share
from polymodal.api.selection import ENSEMBLE, choose
from polymodal.api.self_training import unlabelled_summary
from polymodal.api.sklearn_compat import (
    PredictorContract,
    label_array,
    prediction_input,
    training_table,
)
from polymodal.data.category_encoding import unseen_values
from polymodal.data.dataset import TableDataset
from polymodal.data.fingerprint import table_fingerprint
from polymodal.data.prediction_table import prediction_table
from polymodal.data.readers import read_table
from polymodal.data.schema import OPTIONAL_MODALITIES
from polymodal.errors import ConfigError, DataError
from polymodal.evaluate.scoring import all_metrics, targets
from polymodal.models.ensemble import blend
from polymodal.recipes.predictor import predictor_param_problems, resolve_predictor
from polymodal.train.budget import TimeBudget

__all__ = ["ENSEMBLE", "Predictor"]

# Training rows below which the classic models are refitted on train + validation rows:
# on large image and audio tables the time is better spent on the network; elsewhere the
# held-out rows are worth the trees' seconds (bench/RESULTS.md, 'tabular_suite').
REFIT_MAX_ROWS = 20_000  # tables with images or audio
REFIT_MAX_ROWS_FLAT = 50_000  # the others


class Predictor(PredictorContract):
    """Predict one column of a multimodal table from the others.

    A classifier for scikit-learn when ``problem_type`` is ``binary``, ``multiclass`` or
    ``multilabel`` (``is_classifier`` is true, so its tools stratify folds), a regressor
    when it is ``regression``; with ``"auto"``, whichever the fitted label turned out to be.

    Args:
        label: the column to predict; with ``fit(X, y)`` the name ``y`` takes (default:
            ``y``'s name, else ``"target"``).
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
            prediction see them as they are). ``"auto"`` (default): ``"hflip"`` when a
            quick check on the training images finds a mirrored image keeps its label
            (:mod:`polymodal.api.mirror_check`: photos of objects, clothes, animals; not
            digits, text, or labels about left and right), else none. ``None`` or
            ``"none"``: none. ``"hflip"``: mirror left-right half the time. A dict sets ``hflip`` (bool), ``shift_px`` (int) and
            ``rotate_deg`` (float) of :class:`~polymodal.data.transforms.TableTransform`'s
            ``augment`` (missing keys: ``hflip`` False, ``shift_px`` 2, ``rotate_deg`` 0).
            With mirroring on, the network's validation outputs are also scored averaged
            over each image and its mirror (test-time augmentation), which is kept for
            prediction when it validates better.
        audio_augment: random changes to training clips (the network's; validation and
            prediction hear them as they are): speed and pitch perturbation, time shift,
            background noise and SpecAugment masks (:mod:`polymodal.data.audio_augment`).
            ``"auto"`` (default): ``"speech"`` on tables with audio columns. ``"speech"``:
            the defaults of ``AUDIO_AUGMENT_DEFAULTS``, which keep a spoken word's label.
            ``"none"`` or ``None``: none. A dict sets any of those keys.
        validation_fraction: share of labelled rows held out to choose the model.
        unlabelled: the training rows whose label is empty: ``"auto"`` (classification:
            the network self-trains on them, kept only when validation on labelled rows
            improves; :mod:`polymodal.api.self_training`), ``"self_training"`` (the same,
            an error for other labels) or ``"ignore"``. What they did: ``unlabelled_``.
        verbosity: 0 silent, 1 one line per candidate and the training progress bar.
        device: where the network trains and predicts: ``"auto"`` (a CUDA GPU when there
            is one, else the CPU), ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``; not saved.

    Attributes (after ``fit``): ``classes_`` (an array, ``predict_proba``'s column order;
    None for regression), ``n_features_in_`` (the table's columns other than the label),
    ``feature_names_in_`` (their names, when ``X`` had named columns), ``problem_type_``,
    ``schema_``, ``chosen_``, ``leaderboard_`` and what ``leaderboard()`` shows.
    """

    _fitted_attribute = "chosen_"
    _not_fitted = "This Predictor is not fitted yet; call fit(...) or Predictor.load(dir)"
    _param_problems = staticmethod(predictor_param_problems)

    def __init__(
        self,
        label: str | None = None,
        *,
        problem_type: str = "auto",
        time_limit: float | None = None,
        preset: str = "fast",
        seed: int = 0,
        columns: dict[str, str] | None = None,
        text_encoder: str = "auto",
        image_size: int | None = None,
        fusion: str = "auto",
        image_augment: str | dict | None = "auto",
        audio_augment: str | dict | None = "auto",
        validation_fraction: float = 0.2,
        unlabelled: str = "auto",
        recipe: dict | None = None,
        verbosity: int = 1,
        device: str = "auto",
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
        self.audio_augment = audio_augment
        self.validation_fraction = validation_fraction
        self.unlabelled = unlabelled
        self.recipe = recipe
        self.verbosity = verbosity
        self.device = device

    # ------------------------------------------------------------------ configuration

    # ------------------------------------------------------------------ fit

    def fit(self, X, y=None, *, tuning_data=None, resume_dir: str | os.PathLike | None = None,
            checkpoint_every_s: float = 30.0, callbacks: Sequence = (),
            augment=None, budget: TimeBudget | None = None) -> Predictor:
        """Train every candidate on ``X`` and keep the one that validates best.

        Args:
            X: the table, a DataFrame or a path :func:`~polymodal.data.readers.read_table`
                reads, holding the ``label`` column; or, with ``y``, the features (a
                DataFrame, or an array whose columns are named ``x0, x1, ...``).
            y: the targets, one per row of ``X`` (a Series, an array or a list); None
                when ``X`` holds the label column.
            tuning_data: labelled rows to validate on; default: a seeded, stratified
                ``validation_fraction`` of the labelled rows.
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
            budget: the caller's clock for ``time_limit``, when the command started it
                before this fit (the CLI does, so that reading the table counts); by
                default the fit starts its own.

        Under ``torchrun`` rank 0 does this; the other ranks train the network with it and
        stay unfitted (:mod:`polymodal.api.ranks`): save and predict on rank 0.
        """
        self._validate_params()  # first: a bad time_limit (nan) is named as such
        budget = budget or TimeBudget(self.time_limit)
        if budget.time_limit_s != self.time_limit:
            raise ConfigError(f"budget= counts to {budget.time_limit_s} s but time_limit="
                              f"{self.time_limit}; give the Predictor the budget's limit")
        start = time.perf_counter()
        if augment is not None and not callable(augment):
            raise ConfigError(f"augment={augment!r} must be a synthesizer such as "
                              "polymodal.workflows.augment.AugmentConfig(ratio=1.0), or None")
        if hasattr(augment, "validate"):
            augment.validate()  # its own settings, before any work
        for name in [k for k in vars(self) if k.endswith("_")]:
            delattr(self, name)  # a fit that fails leaves the predictor unfitted, not half-old
        with rank_group(self.device) as ranks:  # under torchrun (polymodal.api.ranks)
            if ranks.follower:  # trains the network with rank 0; stays unfitted
                ranks.follow(train_predictor_share)
                return self
            return self._fit(X, y, tuning_data, augment, budget, ranks, start=start,
                             resume_dir=resume_dir, checkpoint_every_s=checkpoint_every_s,
                             callbacks=callbacks)

    def _fit(self, X, y, tuning_data, augment, budget: TimeBudget, ranks: Ranks, *,
             start: float, resume_dir, checkpoint_every_s: float,
             callbacks: Sequence) -> Predictor:
        """``fit``'s steps, in this process alone or on rank 0 of a ``torchrun`` group."""
        log: list[dict] = []
        table, label, named = training_table(X, y, self.label, self.problem_type, "Predictor")

        # 1-3. Read the table; infer the schema (with reasons) and report what needs cleaning;
        #      split off validation rows (labelled only) unless tuning_data is given; fit
        #      the transforms on the real training rows; synthetic rows (marked in the
        #      table, or made within a share of the budget) join the training rows after.
        #      A seeded sample stands in for a table too large for memory (it streams).
        stream = streamed_fit.open_large_table(table, tuning_data=tuning_data, augment=augment)
        table = table if stream is None else streamed_fit.sample_rows(self, stream, log)
        train_df, val_df, unlabelled = self._prepare_rows(table, label, named, tuning_data,
                                                          augment, budget, log, ranks)
        num_train = (len(train_df) if stream is None
                     else streamed_fit.labelled_estimate(stream, table, label))
        num_unlabelled = len(unlabelled)
        usable = fit_data.usable_unlabelled(unlabelled, label, self.problem_type_,
                                            self.unlabelled, self._say,
                                            streamed=stream is not None)
        # 4. The recipe for this table (saved with the model), and the datasets; the
        #    network's training rows stream from the table when it is too large.
        self.recipe_ = resolve_predictor(self.schema_, num_train, preset=self.preset,
                                         fusion=self.fusion, overrides=self.recipe,
                                         num_unlabelled_rows=len(usable),
                                         unlabelled=self.unlabelled)
        unlabelled = fit_data.say_unlabelled(usable, label, self.recipe_.unlabelled.method,
                                             self._say)
        run = start_run(self, train_df, val_df, budget, log, unlabelled=unlabelled)
        run.ranks = ranks
        if stream is not None:
            run.stream = streamed_fit.training_batches(self, stream, table, log)
        self.num_val_rows_ = run.num_val_rows
        # 5. Candidates in order of cost, each within its share of the budget.
        media = any(self.schema_.by_modality(m) for m in ("image", "audio"))
        refit = (tuning_data is None and stream is None
                 and num_train < (REFIT_MAX_ROWS if media else REFIT_MAX_ROWS_FLAT))
        flat, refits = fit_candidates(run, refit, resume_dir=resume_dir,
                                      checkpoint_every_s=checkpoint_every_s, callbacks=callbacks)
        refit = refit and (refits is not None or not run.too_small)
        # 6. A weighted ensemble of them; the best on validation wins.
        self._choose(run)
        cross_validation.select(self, run, flat if refit else (None, None, None))  # small tables
        # 7. Refit the chosen classic models on train + validation rows (AutoGluon's
        #    "refit_full"): the held-out rows were needed to choose a model, and on small
        #    tables a fifth more rows is worth more than the tiny risk of a changed model.
        #    The network keeps its weights (retraining it would double its cost).
        if refit:
            refit_on_all_rows(run, self.models_, self.candidates_, *flat, prefitted=refits)
        self.refit_models_ = run.refit_models
        if stream is not None:
            log.append(streamed_fit.report(self, stream, run.stream, run, len(table)))
        self.unlabelled_ = unlabelled_summary(num_unlabelled, self.recipe_, run.self_training)
        total_s = time.perf_counter() - start
        log.append({"event": "chosen", "model": self.chosen_,
                    f"val_{run.metric}": self.val_metric_, "fit_total_s": total_s,
                    "num_train_rows": num_train, "num_val_rows": self.num_val_rows_})
        self.train_log_, self.fit_time_s_ = log, total_s
        self._say(f"chosen: [bold]{self.chosen_}[/] (val {run.metric} {self.val_metric_:.4f}) "
                  f"in {total_s:.1f} s")
        return self

    # ------------------------------------------------------------------ fit steps

    def _prepare_rows(self, train, label: str, named: bool, tuning_data, augment,
                      budget: TimeBudget, log: list, ranks: Ranks
                      ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
        """Steps 1-3 (:mod:`polymodal.api.fit_data`): the schema, the split, the fitted
        transforms, the training rows with synthetic rows joined and the rows without a
        label; sets ``schema_``,
        ``problem_type_``, ``n_features_in_`` (and with ``named``, ``feature_names_in_``),
        ``cleaning_report_``, ``train_rows_``, ``validation_rows_``, ``transform_`` and
        ``augmentation_``."""
        start = time.perf_counter()
        rows = fit_data.read_rows(train, label=label, columns=self.columns,
                                  problem_type=self.problem_type, seed=self.seed,
                                  augment=augment, say=self._say)
        self.schema_, self.problem_type_ = rows.schema, rows.schema.problem_type
        features = [c for c in rows.df.columns if c != label]
        self.n_features_in_ = len(features)
        if named:
            self.feature_names_in_ = np.asarray(features, dtype=object)
        self.data_fingerprint_ = table_fingerprint(rows.df)  # for the model card
        self.cleaning_report_ = rows.cleaning_report
        self._say(f"[bold]{label}[/]: {rows.schema.problem_reason}")
        split = fit_data.split_rows(rows, tuning_data, label=label,
                                    problem_type=self.problem_type_,
                                    fraction=self.validation_fraction, seed=self.seed,
                                    say=self._say)
        self.train_rows_, self.validation_rows_ = split.train_positions, split.val_positions
        self.transform_ = fit_data.fit_transform(self.schema_, split.train,
                                                 image_size=self.image_size,
                                                 text_encoder=streamed_fit.text_encoder(
                                                     self.text_encoder, train, self._say),
                                                 image_augment=self.image_augment,
                                                 audio_augment=self.audio_augment,
                                                 budget=budget, texts=rows.df, seed=self.seed,
                                                 say=self._say)
        log.append({"event": "prepared", "time_s": time.perf_counter() - start})
        train_df, self.augmentation_ = fit_data.add_synthetic_rows(
            split.train, rows.marked, augment, budget, log, label=label)
        table_rows = len(rows.df) + (0 if rows.marked is None else len(rows.marked))
        ranks.training_rows(train_df, split.train_positions if train_df is split.train else None,
                            table_rows=table_rows, seed=self.seed)
        return train_df, split.val, split.unlabelled

    def _choose(self, run: CandidateRun) -> None:
        """Step 6 (:func:`polymodal.api.selection.choose`): predictions (and the saved
        folder) use only what the chosen model needs; ``candidates_`` keeps them all."""
        choice = choose(run, ensemble_rounds=self.recipe_.candidates.ensemble_rounds)
        self.chosen_, self.ensemble_weights_ = choice.chosen, choice.ensemble_weights
        self.leaderboard_, self.val_metric_ = choice.leaderboard, choice.val_metric
        self.candidates_ = dict(run.models)
        self.models_ = {name: m for name, m in run.models.items() if name in choice.needed()}
        self.training_history_ = run.training_history
        if run.neural_config is not None:
            self.neural_config_ = run.neural_config

    # ------------------------------------------------------------------ predict

    @property
    def classes_(self) -> np.ndarray | None:
        """Classes (binary/multiclass) or tags (multilabel) in ``predict_proba``'s column
        order, an array; None for regression."""
        self._check_fitted()
        classes = self.transform_.classes_
        return None if classes is None else label_array(classes)

    def _prepare(self, data, drop: Iterable[str] | None) -> pd.DataFrame:
        """The table to predict on, checked against the training columns, with ``drop``
        columns emptied (every cell missing, as a row without them would be)."""
        self._check_fitted()
        return prediction_table(read_table(prediction_input(data, self)), self.schema_, drop,
                                optional=OPTIONAL_MODALITIES)

    def _outputs(self, df: pd.DataFrame, *, with_label: bool = False
                 ) -> tuple[np.ndarray, TableDataset]:
        """The chosen model's outputs for ``df`` (N, K) or (N,), and the encoded dataset."""
        dataset = TableDataset(df, self.transform_, with_label=with_label,
                               allow_missing_columns=True)
        outputs = candidate_outputs(dataset, self.models_, self.transform_.feature_spec(),
                                    self.transform_.vocab_, device=self.device)
        if self.ensemble_weights_:
            return blend(outputs, self.ensemble_weights_), dataset
        return outputs[self.chosen_], dataset

    def _has_proba(self) -> bool:
        if self._problem_type() == "regression":
            raise AttributeError("predict_proba is for classification and multilabel; this "
                                 "predictor does regression — call predict(X) for values")
        return True

    @available_if(_has_proba)
    def predict_proba(self, X, *, drop: Iterable[str] | None = None) -> np.ndarray:
        """Class (or tag) probabilities (N, K): a column per entry of ``classes_``, rows as
        in ``X``. A regressor has no ``predict_proba`` (as scikit-learn's have none).

        ``drop`` names feature columns to mask out (treated as missing in every row), as
        the per-modality ablation does.
        """
        outputs, _ = self._outputs(self._prepare(X, drop))
        return np.asarray(outputs, dtype=np.float64)

    def predict(self, X, *, drop: Iterable[str] | None = None) -> np.ndarray:
        """Predictions (N,) in the label's own values, rows as in ``X``.

        Classes as in the training table (strings stay strings, integers integers),
        regression values in the label's units, multilabel a list of tags per row.
        """
        outputs, _ = self._outputs(self._prepare(X, drop))
        values = self.transform_.decode_label(outputs)
        if self.problem_type_ == "multilabel":  # a list of tags per row
            return label_array(values)
        if self.problem_type_ == "regression":
            return np.asarray(values, dtype=np.float64)
        return label_array(values, like=self.classes_)

    def unseen_categories(self, X) -> dict[str, dict[str, int]]:
        """Per categorical feature column, the values in ``X`` the model has no category
        for (not in the training rows, or too rare to keep) and how many rows hold each,
        most frequent first; columns without any are left out. Those rows are predicted
        with the column's "unknown" category, a guess a user should know about."""
        df = self._prepare(X, None)
        found = {c: unseen_values(df[c], vocab) for c, vocab in self.transform_.vocab_.items()
                 if c in df.columns}
        return {c: counts for c, counts in found.items() if counts}

    def evaluate(self, df) -> dict[str, float]:
        """Every metric of the problem type on ``df``'s labelled rows (a flat dict).

        Rows whose label is missing, or a class never seen in training, are not scored.
        """
        table, label = self._prepare(df, None), self.schema_.label
        if label not in table.columns:
            raise DataError(f"the table has no label column {label!r}, so the predictor cannot "
                            f"be scored on it; its columns are {list(table.columns)[:20]}")
        outputs, dataset = self._outputs(table, with_label=True)
        y_true, known = targets(dataset, self.problem_type_, self.transform_, label)
        if not known.any():
            raise DataError(f"no row of the table has a usable {label!r} value ({len(table)} "
                            "rows); pass rows with known labels")
        return all_metrics(self.problem_type_, self.transform_, y_true[known], outputs[known])

    def leaderboard(self) -> pd.DataFrame:
        """Every candidate: ``model``, ``val_<metric>``, ``fit_time_s``, ``predict_time_s``, ``chosen``."""
        self._check_fitted()
        return self.leaderboard_.copy()

    # ------------------------------------------------------------------ save / load

    def config_dict(self) -> dict:
        """The resolved configuration written to ``config.json``."""
        self._check_fitted()
        return predictor_config(self)

    def save(self, directory: str | os.PathLike) -> Path:
        """Write the fitted predictor to ``directory`` atomically (nothing pickled).

        An existing polymodal model folder there is replaced as a whole; any other
        non-empty folder is left alone and raises :class:`ModelFolderError`.
        """
        self._check_fitted()
        return write_predictor(self, directory)

    def export(self, directory: str | os.PathLike, *, format: str = "onnx",
               force: bool = False) -> Path:
        """Write ONNX graphs, the preprocessing spec and a numpy ``runtime.py`` that score
        raw rows without torch (:mod:`polymodal.api.export_predictor`)."""
        from polymodal.api.export_predictor import export_predictor

        self._check_fitted()
        check_export_format(format)
        return export_predictor(self, directory, force=force)

    @classmethod
    def load(cls, directory: str | os.PathLike, *, device: str = "auto") -> Predictor:
        """A predictor saved by :meth:`save`, predicting on ``device``; it gives identical
        predictions."""
        return read_predictor(cls, directory, device)

    def __repr__(self) -> str:
        state = f"chosen={self.chosen_!r}" if hasattr(self, "chosen_") else "not fitted"
        return (f"Predictor(label={self.label!r}, problem_type={self.problem_type!r}, "
                f"preset={self.preset!r}, {state})")

