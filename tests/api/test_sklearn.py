"""The Predictor as a scikit-learn estimator, tested with scikit-learn's own tools.

scikit-learn's estimator checks (``parametrize_with_checks``) run over a classifier and a
regressor; then ``clone``, ``Pipeline`` (after a ``ColumnTransformer`` and a
``FunctionTransformer``), ``cross_val_score`` and ``GridSearchCV`` over the predictor's
parameters, ``fit(X, y)`` with DataFrames, Series and arrays, ``score``, ``classes_``,
``n_features_in_``/``feature_names_in_`` and ``NotFittedError``; and the Generator's share
of the contract. Every fit is bounded by epochs and the candidates the recipe lists
(a linear model and a two-epoch network), never by seconds.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone, is_classifier, is_regressor
from sklearn.compose import ColumnTransformer
from sklearn.exceptions import NotFittedError as SklearnNotFittedError
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from sklearn.utils.estimator_checks import (
    check_dataframe_column_names_consistency,
    parametrize_with_checks,
)
from sklearn.utils.validation import check_is_fitted

from polymodal.api import Generator, Predictor
from polymodal.errors import ConfigError, DataError, NotFittedError

pytestmark = pytest.mark.usefixtures("one_thread")

# A linear model and a network trained for two epochs: every part of the fit runs (schema,
# cleaning, transforms, both candidate kinds, the ensemble, the refit) in a fraction of a
# second, so that scikit-learn's checks (some hundred fits) stay fast.
RECIPE = {"candidates.classic": ["linear"], "candidates.neural": True,
          "training.max_epochs": 2}
SMALL = {"recipe": RECIPE, "text_encoder": "hashed", "verbosity": 0}


def classifier(**params) -> Predictor:
    return Predictor(problem_type="multiclass", **{**SMALL, **params})


def regressor(**params) -> Predictor:
    return Predictor(problem_type="regression", **{**SMALL, **params})


def features(n: int = 90, seed: int = 0) -> tuple[pd.DataFrame, pd.Series]:
    """A number that decides the class, a noise column, a colour and a short text."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    X = pd.DataFrame({"x": x, "noise": rng.normal(size=n),
                      "color": rng.choice(["red", "green"], size=n),
                      "note": rng.choice(["fine", "so so", "bad luck"], size=n)})
    y = pd.Series(np.where(x > 0.5, "high", np.where(x < -0.5, "low", "mid")), name="level")
    return X, y


# --------------------------------------------------------------------------- sklearn's checks


@parametrize_with_checks([classifier(), regressor()])
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


@pytest.mark.xfail(strict=True, reason="a table estimator matches columns by name: columns "
                   "in another order, or extra columns, are accepted (see the next test)")
def test_sklearn_column_order_check():
    check_dataframe_column_names_consistency("Predictor", classifier())


def test_columns_are_matched_by_name_not_position():
    X, y = features()
    p = classifier().fit(X, y)
    shuffled = X[["note", "x", "color", "noise"]].assign(extra=1.0)
    with pytest.warns(UserWarning, match="'extra'.* ignored"):
        np.testing.assert_array_equal(p.predict_proba(shuffled), p.predict_proba(X))


# --------------------------------------------------------------------------- the contract


def test_fit_X_y_is_fit_on_the_table_with_the_label():
    X, y = features()
    from_xy = classifier().fit(X, y)
    from_table = classifier(label="level").fit(X.assign(level=y))
    np.testing.assert_array_equal(from_xy.predict_proba(X), from_table.predict_proba(X))
    assert from_xy.schema_.label == "level"  # y's name; label= stays as given (None)
    assert from_xy.get_params()["label"] is None
    assert from_xy.n_features_in_ == 4
    assert from_xy.feature_names_in_.tolist() == ["x", "noise", "color", "note"]
    # y as an array or a list: the label column is "target".
    p = classifier().fit(X, y.to_numpy())
    assert p.schema_.label == "target"
    np.testing.assert_array_equal(p.predict(X), from_xy.predict(X))
    # y taken from a column of X keeps X whole: its name goes to the column X has.
    assert classifier().fit(X, X["color"]).schema_.label == "target"


def test_multilabel_predicts_tag_lists_and_scores_subset_accuracy():
    X, _ = features()
    tags = np.where(X["x"] > 0, "up", "down") + np.where(X["color"] == "red", "|red", "")
    recipe = {**RECIPE, "candidates.classic": ["random_forest"]}  # linear does no multilabel
    p = Predictor(problem_type="multilabel", **{**SMALL, "recipe": recipe}).fit(X, tags)
    assert is_classifier(p) and p.classes_.tolist() == ["down", "red", "up"]
    predicted = p.predict(X)
    assert predicted.dtype == object and all(isinstance(row, list) for row in predicted)
    assert p.predict_proba(X).shape == (len(X), 3)
    exact = np.mean([set(row) == set(cell.split("|"))
                     for row, cell in zip(predicted, tags, strict=True)])
    assert p.score(X, tags) == pytest.approx(exact) and exact > 0.8


def test_outputs_are_arrays_in_classes_order_and_score_is_accuracy():
    X, y = features()
    test_X, test_y = features(60, seed=1)
    p = classifier().fit(X, y)
    assert isinstance(p.classes_, np.ndarray) and p.classes_.tolist() == ["high", "low", "mid"]
    proba, predicted = p.predict_proba(test_X), p.predict(test_X)
    assert proba.shape == (60, 3) and isinstance(predicted, np.ndarray)
    np.testing.assert_array_equal(predicted, p.classes_[proba.argmax(axis=1)])
    assert p.score(test_X, test_y) == accuracy_score(test_y, predicted) > 0.8
    assert p.score(test_X.assign(level=test_y)) == p.score(test_X, test_y)  # y from the table


def test_regressor_on_arrays_scores_r2_and_has_no_predict_proba():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 3))
    y = 3 * X[:, 0] - X[:, 1] + 0.1 * rng.normal(size=120)
    p = regressor().fit(X, y)
    assert is_regressor(p) and not is_classifier(p) and not hasattr(p, "predict_proba")
    predicted = p.predict(X[:20])
    assert predicted.dtype == np.float64 and predicted.shape == (20,)
    assert p.score(X, y) == pytest.approx(r2_score(y, p.predict(X))) and p.score(X, y) > 0.9
    assert p.n_features_in_ == 3 and not hasattr(p, "feature_names_in_")
    with pytest.raises(DataError, match="X has 2 features, but Predictor is expecting 3"):
        p.predict(X[:, :2])


def test_classifier_or_regressor_as_problem_type_says():
    assert is_classifier(classifier()) and is_regressor(regressor())
    auto = Predictor(**SMALL)
    assert not is_classifier(auto) and not is_regressor(auto)  # not known before fit
    X, y = features()
    assert is_classifier(auto.fit(X, y)) and not is_classifier(clone(auto))


def test_not_fitted_is_scikit_learns_error():
    p = classifier()
    with pytest.raises(SklearnNotFittedError):
        check_is_fitted(p)
    with pytest.raises(NotFittedError) as error:
        p.predict(np.zeros((2, 4)))
    assert isinstance(error.value, SklearnNotFittedError)
    check_is_fitted(classifier().fit(*features()))


def test_y_is_checked_as_scikit_learn_checks_it():
    X, y = features()
    with pytest.raises(ConfigError, match="requires y to be passed"):
        classifier().fit(X)
    with pytest.raises(ConfigError, match="already has a column 'level'"):
        classifier(label="level").fit(X.assign(level=y), y)
    with pytest.raises(DataError, match="X has 90 rows but y has 89"):
        classifier().fit(X, y[:89])
    with pytest.raises(ValueError, match="Unknown label type"):
        classifier().fit(X, np.linspace(0, 1, len(X)))  # a classifier given a continuous y


def test_fitted_attributes_survive_save_and_load(tmp_path):
    X, y = features()
    p = classifier().fit(X, y)
    loaded = Predictor.load(p.save(tmp_path / "m"))
    assert loaded.n_features_in_ == 4
    assert loaded.feature_names_in_.tolist() == p.feature_names_in_.tolist()
    assert loaded.classes_.tolist() == p.classes_.tolist() and is_classifier(loaded)
    np.testing.assert_array_equal(loaded.predict_proba(X), p.predict_proba(X))


# --------------------------------------------------------------------------- sklearn's tools


def test_clone_gives_an_unfitted_copy_with_equal_params():
    p = classifier(seed=3, columns={"color": "categorical"})
    copy = clone(p.fit(*features()))
    assert copy.get_params() == p.get_params() and copy.get_params(deep=False) == p.get_params()
    assert copy.get_params()["columns"] is not p.columns  # clone copies what it is given
    with pytest.raises(NotFittedError):
        copy.predict(features()[0])


def test_pipeline_after_a_column_transformer_and_a_function_transformer():
    X, y = features()
    test_X, test_y = features(60, seed=1)
    # A ColumnTransformer hands on an array: the predictor names its columns x0, x1, ...
    scaled = make_pipeline(ColumnTransformer([("numbers", StandardScaler(), ["x", "noise"]),
                                              ("rest", "passthrough", ["color", "note"])]),
                           classifier()).fit(X, y)
    assert scaled[-1].n_features_in_ == 4 and scaled.score(test_X, test_y) > 0.8
    # A FunctionTransformer hands on a DataFrame: the columns keep their names.
    dropped = make_pipeline(FunctionTransformer(lambda df: df.drop(columns="note")),
                            classifier()).fit(X, y)
    assert dropped[-1].feature_names_in_.tolist() == ["x", "noise", "color"]
    assert dropped.predict_proba(test_X).shape == (60, 3)


def test_cross_val_score_stratifies_and_scores_accuracy():
    X, y = features(120)
    scores = cross_val_score(classifier(), X, y, cv=3)
    assert scores.shape == (3,) and scores.min() > 0.7
    # A classifier gets stratified folds: the same scores as asking for them.
    np.testing.assert_array_equal(scores, cross_val_score(classifier(), X, y,
                                                          cv=StratifiedKFold(3)))


def test_grid_search_over_the_predictors_parameters():
    X, y = features(120)
    grid = {"validation_fraction": [0.2, 0.3],
            "recipe": [RECIPE, {**RECIPE, "candidates.neural": False}]}
    search = GridSearchCV(classifier(), grid, cv=2).fit(X, y)
    assert len(search.cv_results_["params"]) == 4
    assert search.best_estimator_.get_params()["validation_fraction"] in (0.2, 0.3)
    assert search.best_score_ > 0.7 and search.score(*features(60, seed=1)) > 0.7


# --------------------------------------------------------------------------- the Generator


def test_generator_params_clone_and_not_fitted():
    g = Generator(image="image", condition=["label"], time_limit=None, seed=2, verbosity=0)
    copy = clone(g)
    assert copy.get_params(deep=True) == g.get_params() and copy is not g
    assert copy.set_params(seed=5) is copy and copy.seed == 5 and g.seed == 2
    with pytest.raises(ConfigError, match="unknown parameter"):
        g.set_params(nosuch=1)
    with pytest.raises(SklearnNotFittedError):
        check_is_fitted(g)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(NotFittedError):
            g.sample(2)
