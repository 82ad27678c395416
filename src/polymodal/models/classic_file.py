"""A classic candidate's estimator on disk: a skops file that loads as data, never as code.

skops writes an estimator as a zip of ``schema.json`` (each object's type and how to
rebuild it) and numpy arrays saved without pickle. Loading builds whatever types the
schema names, so a crafted file can name any importable function — for instance
``numpy.load(..., allow_pickle=True)`` wrapped in a ``FunctionTransformer`` — and the first
prediction would run it (skops' "Secure persistence" documentation describes the threat).

:func:`read_estimator` therefore reads the schema itself, lists every type, function and
loader it names, and refuses the file unless each one is on the exact lists below —
the classes polymodal's own candidates are made of, by full name, no prefixes — before
skops builds a single object. What it builds is then checked against the shape that the
candidate's kind writes (:func:`check_structure`) before any estimator method runs.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path

from polymodal.errors import ModelFolderError

# Every type a saved candidate is made of (random_forest, extra_trees, linear,
# hist_gradient_boosting; each problem type; a one-class target's DummyClassifier; the
# catboost candidate's constant target's DummyRegressor).
# tests/models/test_classic_file.py saves every kind and fails when this list misses one.
SAVED_TYPES = frozenset({
    # containers and scalars skops writes for attributes
    "builtins.dict", "builtins.list", "builtins.slice", "builtins.str", "builtins.tuple",
    "numpy.dtype", "numpy.ndarray", "numpy.float32", "numpy.float64", "numpy.int32",
    "numpy.int64", "numpy.uint8", "numpy.uint32", "numpy.uint64", "numpy.bool_",
    "numpy.random._generator.Generator",
    # the forests and their trees
    "sklearn.pipeline.Pipeline",
    "sklearn.preprocessing._data.StandardScaler",
    "sklearn.ensemble._forest.RandomForestClassifier",
    "sklearn.ensemble._forest.RandomForestRegressor",
    "sklearn.ensemble._forest.ExtraTreesClassifier",
    "sklearn.ensemble._forest.ExtraTreesRegressor",
    "sklearn.tree._classes.DecisionTreeClassifier",
    "sklearn.tree._classes.DecisionTreeRegressor",
    "sklearn.tree._classes.ExtraTreeClassifier",
    "sklearn.tree._classes.ExtraTreeRegressor",
    "sklearn.tree._tree.Tree",
    # the linear model and its column preprocessing
    "sklearn.compose._column_transformer.ColumnTransformer",
    "sklearn.impute._base.SimpleImputer",
    "sklearn.preprocessing._encoders.OneHotEncoder",
    "sklearn.linear_model._logistic.LogisticRegression",
    "sklearn.linear_model._ridge.Ridge",
    # gradient boosting, its bins, trees and losses
    "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingClassifier",
    "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingRegressor",
    "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.preprocessing._encoders.OrdinalEncoder",
    "sklearn.preprocessing._label.LabelEncoder",
    "sklearn._loss.loss.HalfBinomialLoss",
    "sklearn._loss.loss.HalfMultinomialLoss",
    "sklearn._loss.loss.HalfSquaredError",
    "sklearn._loss._loss.CyHalfBinomialLoss",
    "sklearn._loss._loss.CyHalfMultinomialLoss",
    "sklearn._loss._loss.CyHalfSquaredError",
    "sklearn._loss.link.IdentityLink",
    "sklearn._loss.link.LogitLink",
    "sklearn._loss.link.MultinomialLogit",
    "sklearn._loss.link.Interval",
    # HistGradientBoosting's own categorical preprocessing holds exactly this one
    # function, as FunctionTransformer(functools.partial(check_array, ...)).
    "sklearn.preprocessing._function_transformer.FunctionTransformer",
    "functools.partial",
    "sklearn.utils.validation.check_array",
    # a target with one class
    "sklearn.dummy.DummyClassifier",
    "sklearn.dummy.DummyRegressor",  # the catboost candidate's constant target
})

# How skops rebuilds each node; anything else (bound methods, operators, sparse
# matrices, ...) is nothing polymodal writes.
SAVED_LOADERS = frozenset({
    "DictNode", "ListNode", "TupleNode", "SliceNode", "JsonNode", "ObjectNode", "TypeNode",
    "DTypeNode", "NdArrayNode", "RandomGeneratorNode", "TreeNode", "LossNode", "PartialNode",
    "FunctionNode",
})


# A forest of thousands of deep trees writes a few MB of schema; a zip that unpacks to far
# more is refused before it is unpacked.
MAX_SCHEMA_BYTES = 256 << 20


def load_writer() -> None:
    """Import skops now: its first import takes seconds, which a time-limited fit should
    spend while it can still plan around them, not in the save after it."""
    import skops.io  # noqa: F401


def write_estimator(estimator, path: str | os.PathLike) -> None:
    """Write ``estimator`` (or a list of them) to ``path`` with skops (no pickle)."""
    import skops.io as sio

    sio.dump(estimator, Path(path))


def file_types(path: str | os.PathLike) -> tuple[set[str], set[str]]:
    """The full names of every type and function in a skops file, and its loaders.

    Reads ``schema.json`` only; builds nothing. A damaged file raises
    :class:`ModelFolderError` in one line.
    """
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            if archive.getinfo("schema.json").file_size > MAX_SCHEMA_BYTES:
                raise ModelFolderError(f"{path} declares a schema.json of "
                                       f"{archive.getinfo('schema.json').file_size:,} bytes, far "
                                       "more than any model polymodal writes; refusing to read it")
            schema = json.loads(archive.read("schema.json"))
    except ModelFolderError:
        raise
    except (OSError, zipfile.BadZipFile, KeyError, ValueError, EOFError) as exc:
        raise ModelFolderError(f"{path} is damaged or not a model file ({type(exc).__name__}: "
                               f"{exc}); save the predictor again or copy the folder whole") from None
    from skops.io._protocol import PROTOCOL

    # Older protocols name functions in fields this walk does not read: refuse them whole.
    if not isinstance(schema, dict) or schema.get("protocol") != PROTOCOL:
        found = schema.get("protocol") if isinstance(schema, dict) else None
        raise ModelFolderError(f"{path} was written with skops protocol {found!r}; this "
                               f"polymodal reads protocol {PROTOCOL} only — save the predictor "
                               "again")
    types, loaders = set(), set()
    for node in _nodes(schema):
        if "__loader__" in node:
            loaders.add(str(node["__loader__"]))
        if "__class__" in node or "__module__" in node:
            types.add(f"{node.get('__module__')}.{node.get('__class__')}")
    return types, loaders


def refused_names(path: str | os.PathLike) -> list[str]:
    """What a skops file names outside :data:`SAVED_TYPES` / :data:`SAVED_LOADERS`.

    Both this project's reading of the schema and skops' own list of the types it would
    not trust by default are checked, so neither can miss what the other sees.
    """
    import skops.io as sio

    types, loaders = file_types(path)
    refused = sorted(types - SAVED_TYPES) + sorted(f"loader {n}" for n in loaders - SAVED_LOADERS)
    if refused:
        return refused
    try:
        untrusted = set(sio.get_untrusted_types(file=Path(path)))
    except Exception as exc:  # noqa: BLE001 - skops cannot read it: damaged, not ours
        raise ModelFolderError(f"{path} is damaged or not a model file ({type(exc).__name__}); "
                               "save the predictor again or copy the folder whole") from None
    return sorted(untrusted - SAVED_TYPES)


def read_estimator(path: str | os.PathLike):
    """The estimator in a skops file written by :func:`write_estimator`.

    Refuses the file, naming the first types it holds beyond what polymodal writes,
    before anything in it is built.
    """
    import skops.io as sio

    path = Path(path)
    refused = refused_names(path)
    if refused:
        shown = ", ".join(refused[:5]) + (f" and {len(refused) - 5} more" if len(refused) > 5 else "")
        raise ModelFolderError(f"{path} holds {shown}, which polymodal never saves; refusing to "
                               "load it (loading must not run code). Only load model folders "
                               "that polymodal wrote; `polymodal inspect-model` lists a folder")
    try:
        # Every name the file holds is on polymodal's exact list, so trusting them is safe.
        return sio.load(path, trusted=sorted(sio.get_untrusted_types(file=path)))
    except Exception as exc:  # noqa: BLE001 - any failure means an unusable file
        raise ModelFolderError(f"{path} could not be loaded ({type(exc).__name__}: {exc}); it may "
                               "come from another scikit-learn version — save the predictor again"
                               ) from None


def check_structure(estimator, kind: str, problem_type: str, path: str | os.PathLike) -> None:
    """Raise :class:`ModelFolderError` unless ``estimator`` has the shape that a candidate
    of ``kind`` writes for ``problem_type`` (its top-level types; see ``ClassicModel._fit``)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.dummy import DummyClassifier, DummyRegressor
    from sklearn.ensemble import (
        ExtraTreesClassifier,
        ExtraTreesRegressor,
        HistGradientBoostingClassifier,
        HistGradientBoostingRegressor,
        RandomForestClassifier,
        RandomForestRegressor,
    )
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    regression = problem_type == "regression"
    head = {"random_forest": RandomForestRegressor if regression else RandomForestClassifier,
            "extra_trees": ExtraTreesRegressor if regression else ExtraTreesClassifier,
            "linear": Ridge if regression else LogisticRegression,
            "hist_gradient_boosting": (HistGradientBoostingRegressor if regression
                                       else HistGradientBoostingClassifier)}.get(kind)
    first = ColumnTransformer if kind == "linear" else StandardScaler

    def fits(model) -> bool:
        if isinstance(model, DummyClassifier):
            return not regression
        if kind == "catboost":  # its skops file holds only the one-class prior or a constant
            return regression and type(model) is DummyRegressor
        if kind == "hist_gradient_boosting":
            return type(model) is head
        return (type(model) is Pipeline and len(model.steps) == 2
                and type(model.steps[0][1]) is first and type(model.steps[1][1]) is head)

    per_tag = kind == "hist_gradient_boosting" and problem_type == "multilabel"
    ok = (isinstance(estimator, list) and bool(estimator) and all(map(fits, estimator))
          if per_tag else (head is not None or kind == "catboost") and fits(estimator))
    if not ok:
        raise ModelFolderError(f"{path} does not hold the {kind} model its model.json declares "
                               f"(found {type(estimator).__name__}); save the predictor again")
    # scikit-learn's compiled predict follows a tree's node and feature indices without
    # bounds checks (skops trusts no Tree by default for this reason): check them all.
    for model in estimator if isinstance(estimator, list) else [estimator]:
        problem = _tree_problem(model.steps[-1][1] if hasattr(model, "steps") else model)
        if problem:
            raise ModelFolderError(f"{path} holds a malformed tree ({problem}); refusing to "
                                   "load it — save the predictor again")


def _tree_problem(model) -> str | None:
    """What is wrong with the trees of a forest or a HistGradientBoosting model, or None."""
    import numpy as np

    n_features = getattr(model, "n_features_in_", None)
    for tree in getattr(model, "estimators_", []):
        t = tree.tree_
        n = int(t.node_count)
        left, right, feature = (np.asarray(a) for a in (t.children_left, t.children_right,
                                                          t.feature))
        inner = left != -1
        nodes = np.arange(n)
        if (getattr(tree, "n_features_in_", n_features) != n_features or t.n_features != n_features
                or not len(left) == len(right) == len(feature) == n
                or np.asarray(t.value).shape[0] != n):
            return "its arrays do not match its node or feature counts"
        # Children always come after their parent: indices in range, and no cycles.
        if (np.any((right != -1) != inner) or np.any(left[inner] <= nodes[inner])
                or np.any(right[inner] <= nodes[inner]) or np.any(left[inner] >= n)
                or np.any(right[inner] >= n) or np.any(feature[inner] < 0)
                or np.any(feature[inner] >= n_features)):
            return "a node points outside the tree or at a feature the model does not have"
    for predictors in getattr(model, "_predictors", []):
        for predictor in predictors:
            nodes = predictor.nodes
            n = len(nodes)
            inner = ~nodes["is_leaf"].astype(bool)
            index = np.arange(n)
            left, right = nodes["left"].astype(np.int64), nodes["right"].astype(np.int64)
            categorical = inner & nodes["is_categorical"].astype(bool)
            bitsets = min(len(predictor.binned_left_cat_bitsets),
                          len(predictor.raw_left_cat_bitsets))
            if (np.any(left[inner] <= index[inner]) or np.any(right[inner] <= index[inner])
                    or np.any(left[inner] >= n) or np.any(right[inner] >= n)
                    or np.any(nodes["feature_idx"][inner] >= n_features)
                    or np.any(nodes["bitset_idx"][categorical] >= bitsets)):
                return "a node points outside the tree or at a feature the model does not have"
    mapper = getattr(model, "_bin_mapper", None)
    categorical = None if mapper is None else getattr(mapper, "is_categorical_", None)
    if categorical is not None and len(categorical) != n_features:
        return "its bin mapper does not match its feature count"
    return None


def _nodes(value) -> Iterator[dict]:
    """Every dict in a parsed JSON document, depth first."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            yield item
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
