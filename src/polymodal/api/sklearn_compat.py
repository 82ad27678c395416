"""scikit-learn's estimator contract for polymodal's estimators.

:class:`Estimator`, shared by the Predictor and the Generator: scikit-learn's
``BaseEstimator`` with ``get_params(deep)``/``set_params`` (so ``clone``, ``Pipeline``
and ``GridSearchCV`` work), ``__sklearn_is_fitted__``, one check of the arguments and the
console. :class:`PredictorContract` adds the Predictor's tags (a classifier or a
regressor as its ``problem_type`` says) and ``score`` (accuracy, or R² for regression).

A Predictor takes a table whose columns it matches by name, as well as scikit-learn's
``fit(X, y)``: :func:`training_table` joins ``X`` (a DataFrame, an array, or what
``read_table`` reads) and ``y`` into one table; :func:`prediction_input` gives arrays the
column names seen in ``fit``; :func:`label_array` makes predictions an array.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from polymodal.api.params import ParamsMixin
from polymodal.data.cells import category_keys, cell_tags
from polymodal.errors import ConfigError, DataError

__all__ = ["DEFAULT_TARGET", "Estimator", "PredictorContract", "label_array",
           "prediction_input", "training_table"]

DEFAULT_TARGET = "target"  # the label column's name when neither label= nor y names it
CLASSIFICATION = ("binary", "multiclass", "multilabel")


def _array_names(n: int) -> list[str]:
    """Column names for an array's features: scikit-learn's own ``x0, x1, ...``."""
    return [f"x{i}" for i in range(n)]


def _named(X: pd.DataFrame) -> bool:
    return all(isinstance(c, str) for c in X.columns)


def _frame(X, what: str) -> tuple[pd.DataFrame | str | Path, bool]:
    """``X`` as a table, and whether its columns carry the user's names. A DataFrame or a
    path is a table already; anything else is checked as scikit-learn checks arrays
    (2-D, not sparse, not complex, at least one row and column; NaN allowed)."""
    if isinstance(X, str | Path):
        return X, True  # a file's columns have names
    if isinstance(X, pd.DataFrame):
        if _named(X):
            return X, True
        # Columns that are not all strings are positions, as scikit-learn takes them.
        return X.set_axis(_array_names(X.shape[1]), axis=1), False
    from sklearn.utils import check_array

    array = check_array(X, dtype=None, ensure_all_finite=False, input_name="X",
                        estimator=what)
    return pd.DataFrame(array, columns=_array_names(array.shape[1])), False


def _target(y, n_rows: int, classification: bool) -> np.ndarray | pd.Series:
    """``y`` as one column of ``n_rows`` values, checked as scikit-learn checks targets."""
    if isinstance(y, pd.DataFrame):
        if y.shape[1] != 1:
            raise DataError(f"y has {y.shape[1]} columns; a Predictor learns one target — pass "
                            "one column (multilabel: one column of tag lists or 'a|b' strings)")
        y = y.iloc[:, 0]
    if not isinstance(y, pd.Series):
        values = np.asarray(y, dtype=object if isinstance(y, list) else None)
        if values.ndim == 2 and values.shape[1] == 1:
            from sklearn.utils.validation import column_or_1d

            values = column_or_1d(values, warn=True)
        if values.ndim != 1:
            raise DataError(f"y has shape {values.shape}; a Predictor learns one target — pass "
                            "a 1-D array or a Series")
        y = values
    if len(y) != n_rows:
        raise DataError(f"X has {n_rows} rows but y has {len(y)}; pass one target per row")
    values = np.asarray(y)
    if values.dtype.kind in "fiub":
        from sklearn.utils import assert_all_finite

        assert_all_finite(values, allow_nan=True, input_name="y")
        if len(values) and np.isnan(values.astype(np.float64)).all():
            raise DataError("Input y contains NaN in every row: no row has a target to learn")
        if classification:
            from sklearn.utils.multiclass import check_classification_targets

            check_classification_targets(values[~np.isnan(values.astype(np.float64))])
    return y


def training_table(X, y, label: str | None, problem_type: str, what: str
                   ) -> tuple[pd.DataFrame | str | Path, str, bool]:
    """``(table, label column, named)`` for ``fit(X, y)``: ``X`` with ``y`` joined as the
    label column (named ``label``, else ``y``'s name unless ``X`` has a column of that
    name, else :data:`DEFAULT_TARGET`), or
    ``X`` itself when ``y`` is None (it must hold the ``label`` column then). ``named``:
    ``X``'s columns carry names (they become ``feature_names_in_``)."""
    table, named = _frame(X, what)
    if y is None:
        if label is None:
            raise ConfigError(f"{what} requires y to be passed, but the target y is None: call "
                              f"fit(X, y), or name the table's label column with {what}"
                              "(label='COLUMN') and call fit(table)")
        if not isinstance(X, pd.DataFrame | str | Path):
            raise ConfigError(f"{what} requires y to be passed, but the target y is None; an "
                              f"array has no {label!r} column — call fit(X, y)")
        return table, label, named
    if not isinstance(table, pd.DataFrame):
        raise ConfigError(f"fit(X, y) takes X as a DataFrame or an array, not a path "
                          f"({X!r}); read it first, or call fit({str(X)!r}) with label=")
    name = label or (y.name if isinstance(y, pd.Series) and isinstance(y.name, str)
                     and y.name not in table.columns else DEFAULT_TARGET)
    if name in table.columns:
        raise ConfigError(f"X already has a column {name!r}, the name y would take; pass X "
                          f"without it, or choose another with label=")
    target = _target(y, len(table), problem_type in ("binary", "multiclass"))
    table = table.copy()
    table[name] = target.to_numpy() if isinstance(target, pd.Series) else target
    return table, name, named


def prediction_input(X, estimator):
    """``X`` for ``predict``: a table as it is; an array (or a DataFrame when ``fit`` saw an
    array) takes the training columns' names in order, after a check of its width."""
    if isinstance(X, str | Path):
        return X
    names = list(getattr(estimator, "feature_names_in_", ()))
    if isinstance(X, pd.DataFrame):
        if names or list(X.columns) == _array_names(X.shape[1]):
            return X
        if _named(X):
            warnings.warn(f"X has feature names, but {type(estimator).__name__} was fitted "
                          "without feature names; its columns are taken in order", UserWarning,
                          stacklevel=3)
        table = X
    else:
        if names:
            warnings.warn(f"X does not have valid feature names, but {type(estimator).__name__}"
                          " was fitted with feature names; its columns are taken in that order",
                          UserWarning, stacklevel=3)
        table, _ = _frame(X, type(estimator).__name__)
    n = estimator.n_features_in_
    if table.shape[1] != n:
        raise DataError(f"X has {table.shape[1]} features, but {type(estimator).__name__} is "
                        f"expecting {n} features as input")
    return table.set_axis(names or _array_names(n), axis=1)


def label_array(values, like: np.ndarray | None = None) -> np.ndarray:
    """``values`` as a 1-D array: the dtype of ``like`` (the classes), else numbers or
    strings as NumPy infers them; an object array for mixed values and tag lists."""
    if like is not None:
        return np.asarray(values, dtype=like.dtype)
    array = np.empty(len(values), dtype=object)
    array[:] = list(values)
    kinds = {type(v) for v in array}
    if len(kinds) == 1 and kinds <= {int, float, bool, str, np.int64, np.float64, np.bool_}:
        return np.asarray(list(values))
    return array


class Estimator(ParamsMixin, BaseEstimator):
    """What every polymodal estimator shares: scikit-learn's ``BaseEstimator`` (its HTML
    display, pickling with a version stamp), ``get_params(deep)`` and ``set_params`` as
    polymodal checks them (:class:`~polymodal.api.params.ParamsMixin`; ``clone`` works), ``__sklearn_is_fitted__``, one check of the
    arguments, and the console. A subclass names the attribute that ``fit`` sets last
    (``_fitted_attribute``), what to do when it is missing (``_not_fitted``) and what is
    wrong with its arguments (``_param_problems``, a function of ``get_params()``)."""

    _fitted_attribute: str
    _not_fitted: str

    @staticmethod
    def _param_problems(params: dict) -> list[str]:
        return []

    def _validate_params(self) -> None:
        """Check every argument once and report all problems in one ConfigError."""
        problems = self._param_problems(self.get_params())
        if problems:
            raise ConfigError(f"{type(self).__name__}: " + "; ".join(problems))

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, self._fitted_attribute)

    def _check_fitted(self) -> None:
        if not self.__sklearn_is_fitted__():
            from polymodal.errors import NotFittedError

            raise NotFittedError(self._not_fitted)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # A table: missing cells, strings and categories are what it expects.
        tags.input_tags.allow_nan = tags.input_tags.categorical = tags.input_tags.string = True
        return tags

    def _say(self, message: str) -> None:
        """``message`` to the log, and (rich markup) to stderr unless ``verbosity`` is 0."""
        logging.getLogger(type(self).__module__).info(message)
        if self.verbosity > 0:
            from rich.console import Console

            Console(stderr=True).print(message, highlight=False, soft_wrap=True)


class PredictorContract(Estimator):
    """The Predictor's side of the contract: a classifier or a regressor as its problem
    type says, with ``score``. It sets ``problem_type`` and, once fitted, ``problem_type_``."""

    def _problem_type(self) -> str:
        """The fitted problem type, or the one asked for (``"auto"`` before a fit)."""
        return getattr(self, "problem_type_", None) or self.problem_type

    @property
    def _estimator_type(self) -> str | None:
        problem = self._problem_type()
        if problem == "regression":
            return "regressor"
        return "classifier" if problem in CLASSIFICATION else None

    def __sklearn_tags__(self):
        from sklearn.utils import ClassifierTags, RegressorTags, TargetTags

        tags = super().__sklearn_tags__()
        tags.estimator_type = kind = self._estimator_type
        tags.target_tags = TargetTags(required=True, one_d_labels=True)
        tags.classifier_tags = ClassifierTags() if kind == "classifier" else None
        tags.regressor_tags = RegressorTags() if kind == "regressor" else None
        return tags

    def score(self, X, y=None, sample_weight=None) -> float:
        """Accuracy of ``predict(X)`` (multilabel: rows whose every tag is right), or R² for
        regression, as scikit-learn's classifiers and regressors score. ``y`` defaults to
        ``X``'s label column."""
        if y is None:
            table = X if isinstance(X, pd.DataFrame) else None
            label = self.schema_.label if self.__sklearn_is_fitted__() else self.label
            if table is None or label not in table.columns:
                raise ConfigError(f"score(X) without y needs X to be a DataFrame with the "
                                  f"label column {label!r}; or call score(X, y)")
            X, y = table.drop(columns=[label]), table[label]
        predicted = self.predict(X)
        if self.problem_type_ == "regression":
            from sklearn.metrics import r2_score

            return float(r2_score(np.asarray(y, dtype=np.float64), predicted,
                                  sample_weight=sample_weight))
        from sklearn.metrics import accuracy_score

        if self.problem_type_ == "multilabel":  # subset accuracy, as on indicator rows
            delimiter = self.schema_.columns[self.schema_.label].delimiter
            y = [" ".join(cell_tags(cell, delimiter)) for cell in y]
            predicted = [" ".join(cell_tags(tags)) for tags in predicted]
        return float(accuracy_score(category_keys(pd.Series(list(y), dtype=object)),
                                    category_keys(pd.Series(list(predicted), dtype=object)),
                                    sample_weight=sample_weight))
