"""``Predictor.export``: a fitted predictor as ONNX graphs that score raw rows without torch.

The folder holds one graph per model the prediction uses (the chosen one, or the members
of the chosen ensemble with their weights): the fusion network as ``neural.onnx``, whose
inputs are the encoded row (numbers, category indices, tags, text embeddings, images,
presence masks) and whose output is the predictor's probabilities (or standardised
value), with the test-time mirroring of images in the graph when the network uses it;
each scikit-learn candidate through ``skl2onnx`` and the LightGBM booster through
``onnxmltools`` as ``<name>.onnx`` over the flat features.
``preprocess.json`` and ``runtime.py`` turn a raw row into those inputs
(:mod:`polymodal.api.export_onnx`, :mod:`polymodal.api.export_runtime`).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np
import torch

from polymodal.api.candidates import NEURAL
from polymodal.api.export_onnx import (
    BatchGraph,
    ExportError,
    batch_inputs,
    check_packages,
    example_inputs,
    export_graph,
    preprocess_spec,
    write_export,
    write_spec,
)
from polymodal.api.export_readme import predictor_readme
from polymodal.api.export_text import needs_minilm, write_minilm
from polymodal.api.neural import mirrored
from polymodal.models.classic import CLASSIC_KINDS, flat_layout
from polymodal.models.heads import predict_from_outputs


def _probabilities(network, batch, *, tta_hflip: bool) -> torch.Tensor:
    """The predictor's output convention inside the graph: (B, K) or (B,) regression."""

    def once(b):
        values = predict_from_outputs(network.problem_type, network(b))
        if network.problem_type == "binary":
            values = torch.stack([1.0 - values, values], dim=1)  # (B,) -> (B, 2)
        return values

    out = once(batch)
    if tta_hflip and batch.image:
        out = 0.5 * (out + once(mirrored(batch)))
    return out


def export_predictor(p, out: str | os.PathLike, *, force: bool = False) -> Path:
    """Write the fitted predictor ``p`` as an ONNX export folder ``out`` (see the module)."""
    names = [n for n, w in (p.ensemble_weights_ or {p.chosen_: 1.0}).items() if w > 0]
    weights = p.ensemble_weights_ or {p.chosen_: 1.0}
    boosters = any(n != NEURAL and p.models_[n].kind == "lightgbm" for n in names)
    check_packages("skl2onnx", *(("onnxmltools",) if boosters else ()))
    spec = p.transform_.feature_spec()
    columns = p.schema_.features()
    media_columns = [c for c in columns if p.schema_.modality(c) in ("text", "image")]
    inputs, media, masks = batch_inputs(spec, columns, media_columns)
    classic = [n for n in names if n != NEURAL]
    for name in classic:  # every refusal before any work
        _check_classic(name, p.models_[name])
    pre = preprocess_spec(p.transform_, columns, media, masks)
    label = p.transform_.label_
    pre.update({
        "kind": "predictor",
        "label": {"column": p.schema_.label, "problem_type": p.problem_type_,
                  "classes": p.transform_.classes_,
                  **({"mean": label["mean"], "std": label["std"]}
                     if p.problem_type_ == "regression" else {})},
        "weights": {n: float(weights[n]) for n in names},
        "models": {},
        "chosen": p.chosen_,
    })

    def write(folder: Path) -> None:
        if NEURAL in names:
            candidate = p.models_[NEURAL]
            graph = BatchGraph(candidate.model_, lambda net, batch: _probabilities(
                net, batch, tta_hflip=candidate.tta_hflip), inputs)
            export_graph(graph, example_inputs(spec, inputs), folder / "neural.onnx",
                         list(inputs), "outputs")
            pre["models"][NEURAL] = {"file": "neural.onnx", "input": "rows",
                                     "inputs": list(inputs)}
        width = flat_layout(spec, _numbers(p)).num_features
        for name in classic:
            pre["models"][name] = _write_classic(name, p.models_[name], width, folder)
        if needs_minilm(pre):
            write_minilm(folder)
        write_spec(folder, pre)
        (folder / "README.md").write_text(predictor_readme(p, pre), encoding="utf-8")

    return write_export(out, write, force=force)


def _numbers(p) -> dict:
    from polymodal.models.classic import category_numbers

    return category_numbers(p.transform_.vocab_)


def _refit_hint(name: str) -> str:
    others = ",".join(k for k in CLASSIC_KINDS if k != name)
    return f"refit without it: polymodal fit TABLE ... --set candidates.classic={others}"


def _check_classic(name: str, model) -> None:
    """Refuse, by name, a classic candidate skl2onnx cannot convert faithfully."""
    from sklearn.dummy import DummyClassifier

    if model.kind == "lightgbm":
        return  # onnxmltools converts its category-set splits and missing values
    if model.kind == "catboost":
        raise ExportError(f"candidate {name!r} is a CatBoost model, whose category "
                          "encodings (ordered target statistics) ONNX cannot express; "
                          f"{_refit_hint(name)}")
    estimator = model.estimator_
    if isinstance(estimator, list) or model.problem_type == "multilabel":
        raise ExportError(f"candidate {name!r} is a multilabel {model.kind} model, which "
                          f"cannot be exported to ONNX; {_refit_hint(name)}")
    if isinstance(estimator, DummyClassifier):
        raise ExportError(f"candidate {name!r} predicts the class prior (one class in its "
                          f"training rows), which cannot be exported; {_refit_hint(name)}")
    if _category_set_splits(estimator):
        raise ExportError(f"candidate {name!r} ({type(estimator).__name__}) splits on "
                          "category sets, which an ONNX tree cannot express; "
                          f"{_refit_hint(name)}")


def _category_set_splits(estimator) -> bool:
    """Whether a HistGradientBoosting model has a split on a set of categories (its
    ``categorical_features``): ONNX's trees compare one threshold per node."""
    return any(tree.nodes["is_categorical"][~tree.nodes["is_leaf"].astype(bool)].any()
               for trees in getattr(estimator, "_predictors", []) for tree in trees)


@contextlib.contextmanager
def _integer_leaf_flags():
    """skl2onnx 1.20 writes a HistGradientBoosting leaf's missing-value flag as ``False``,
    which onnx's integer attribute refuses; it goes in as the integer it stands for."""
    from skl2onnx.common import tree_ensemble

    add_node = tree_ensemble.add_node

    def integer_flags(*args, nodes_missing_value_tracks_true=0, **kwargs):
        return add_node(*args, nodes_missing_value_tracks_true=int(
            nodes_missing_value_tracks_true), **kwargs)

    tree_ensemble.add_node = integer_flags
    try:
        yield
    finally:
        tree_ensemble.add_node = add_node


def _write_classic(name: str, model, width: int, folder: Path) -> dict:
    """``<name>.onnx`` from skl2onnx: flat features (B, F) float32 -> outputs."""
    if model.kind == "lightgbm":
        return _write_booster(name, model, width, folder)
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType

    estimator, scaler = model.estimator_, None
    if model.kind in ("random_forest", "extra_trees") and hasattr(estimator, "steps"):
        # The runtime standardises as scikit-learn does (float32, dividing by the scale);
        # ONNX's Scaler multiplies by the reciprocal, and that ulp of difference sends
        # rows to the other side of a split.
        scaler, estimator = estimator.steps[0][1], estimator.steps[-1][1]
    regression = model.problem_type == "regression"
    options = None if regression else {"zipmap": False}
    try:
        with _integer_leaf_flags():
            onnx_model = to_onnx(estimator,
                                 initial_types=[("flat", FloatTensorType([None, width]))],
                                 options=options, target_opset={"": 18, "ai.onnx.ml": 4})
    except Exception:  # noqa: BLE001 - any converter failure is the same refusal
        from importlib.metadata import version

        raise ExportError(f"candidate {name!r} ({type(estimator).__name__}) cannot be "
                          f"converted to ONNX by skl2onnx {version('skl2onnx')} with "
                          f"scikit-learn {version('scikit-learn')}; {_refit_hint(name)}"
                          ) from None
    if hasattr(estimator, "estimators_"):
        _route_missing_values(onnx_model, estimator)
    if not regression:  # keep only the probabilities output
        outputs = [o.name for o in onnx_model.graph.output]
        probability = next(o for o in outputs if "prob" in o.lower())
        keep = [o for o in onnx_model.graph.output if o.name == probability]
        del onnx_model.graph.output[:]
        onnx_model.graph.output.extend(keep)
    path = folder / f"{name}.onnx"
    path.write_bytes(onnx_model.SerializeToString())
    entry = {"file": path.name, "input": "flat", "n_outputs": model.n_outputs}
    if scaler is not None:
        entry["standardise"] = {"mean": scaler.mean_.tolist(), "scale": scaler.scale_.tolist()}
    if not regression:
        entry["class_index"] = np.asarray(estimator.classes_, dtype=np.int64).tolist()
    return entry


def _write_booster(name: str, model, width: int, folder: Path) -> dict:
    """``<name>.onnx`` from onnxmltools' LightGBM converter: flat features (B, F) float32 ->
    (B, K) probabilities over every class, or (B, 1) standardised values."""
    from onnxmltools import convert_lightgbm
    from onnxmltools.convert.common.data_types import FloatTensorType

    regression = model.problem_type == "regression"
    try:
        onnx_model = convert_lightgbm(model.estimator_, name=name, zipmap=False,
                                      initial_types=[("flat", FloatTensorType([None, width]))])
    except Exception:  # noqa: BLE001 - any converter failure is the same refusal
        from importlib.metadata import version

        raise ExportError(f"candidate {name!r} (a LightGBM booster) cannot be converted to "
                          f"ONNX by onnxmltools {version('onnxmltools')} with lightgbm "
                          f"{version('lightgbm')}; {_refit_hint(name)}") from None
    if not regression:  # keep only the probabilities output
        keep = [o for o in onnx_model.graph.output if "prob" in o.name.lower()]
        del onnx_model.graph.output[:]
        onnx_model.graph.output.extend(keep)
    path = folder / f"{name}.onnx"
    path.write_bytes(onnx_model.SerializeToString())
    return {"file": path.name, "input": "flat", "n_outputs": model.n_outputs}


def _route_missing_values(onnx_model, forest) -> None:
    """Send a missing value (NaN; e.g. the number of an unseen category) down the branch
    scikit-learn sends it: its trees learn that per split, or take the larger child when
    training saw none, where an ONNX tree would take the ``false`` branch everywhere."""
    from onnx import helper

    for node in onnx_model.graph.node:
        if not node.op_type.startswith("TreeEnsemble"):
            continue
        attributes = {a.name: a for a in node.attribute}
        trees, ids = attributes["nodes_treeids"].ints, attributes["nodes_nodeids"].ints
        left = [forest.estimators_[t].tree_.missing_go_to_left for t in range(len(forest.estimators_))]
        tracks = [int(left[t][n]) for t, n in zip(trees, ids, strict=True)]
        kept = [a for a in node.attribute if a.name != "nodes_missing_value_tracks_true"]
        del node.attribute[:]
        node.attribute.extend([*kept, helper.make_attribute("nodes_missing_value_tracks_true",
                                                            tracks)])
