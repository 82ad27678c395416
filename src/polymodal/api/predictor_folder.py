"""A fitted Predictor's model folder: written atomically, read back to predict identically.

The folder holds ``config.json`` (the parameters, the resolved recipe, what was chosen),
``schema.json``, ``cleaning.json``, the fitted transform, one folder per kept model
(:mod:`polymodal.models.classic_file` for the scikit-learn ones, safetensors for the
network), ``ensemble.json``, ``leaderboard.csv``, ``versions.json``, the training log and
``MODEL_CARD.md`` (:mod:`polymodal.api.model_card`; written for people, never read back).
Folders saved before recipes existed load with ``recipe_`` None.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from polymodal.api.candidates import NEURAL
from polymodal.api.model_card import CARD_FILE, predictor_card
from polymodal.api.model_folder import (
    check_folder,
    cleaning_report_from_dict,
    write_folder_atomically,
)
from polymodal.api.neural import NeuralCandidate
from polymodal.api.params import saved_params
from polymodal.data.schema import Schema
from polymodal.data.transforms import TableTransform
from polymodal.errors import ModelFolderError
from polymodal.files import json_safe, read_json, write_json, write_text
from polymodal.models.classic import ClassicModel, category_numbers, flat_layout
from polymodal.recipes.base import from_dict, to_dict
from polymodal.recipes.predictor import PredictorRecipe
from polymodal.train import resolve_device

# 2: flat features gained category numbers and image edge statistics; 3: config.json holds
# the resolved recipe instead of the preset's settings (2 still loads, with recipe_ None).
FORMAT_VERSION = 3
READS = (2, 3)
REQUIRED_FILES = ("config.json", "schema.json", "cleaning.json", "transform/transform.json",
                  "ensemble.json", "leaderboard.csv", "versions.json")


def predictor_config(p) -> dict:
    """The resolved configuration of a fitted predictor, as ``config.json`` holds it."""
    return {"params": saved_params(p),
            "recipe": None if p.recipe_ is None else to_dict(p.recipe_),
            "problem_type": p.problem_type_, "label": p.schema_.label,
            "chosen": p.chosen_, "val_metric": p.val_metric_,
            "models": sorted(p.models_),
            "refit_on_all_rows": list(getattr(p, "refit_models_", [])),
            "neural": json_safe(getattr(p, "neural_config_", None)),
            "augmentation": json_safe(getattr(p, "augmentation_", None)),
            "unlabelled": json_safe(getattr(p, "unlabelled_", None)),
            "data": getattr(p, "data_fingerprint_", None),
            "n_features_in": p.n_features_in_,
            "feature_names_in": (None if not hasattr(p, "feature_names_in_")
                                 else p.feature_names_in_.tolist())}


def write_predictor(p, directory: str | os.PathLike) -> Path:
    """Write the fitted predictor ``p`` to ``directory`` (see ``Predictor.save``)."""
    from polymodal import versions

    def write(folder: Path) -> None:
        write_json(folder / "config.json", predictor_config(p))
        write_json(folder / "schema.json", p.schema_.to_dict())
        write_json(folder / "cleaning.json", p.cleaning_report_.to_dict())
        p.transform_.save(folder / "transform")
        for name, model in p.models_.items():
            model.save(folder / "models" / name)
        write_json(folder / "ensemble.json", {"chosen": p.chosen_,
                                              "weights": p.ensemble_weights_,
                                              "models": sorted(p.models_)})
        write_text(folder / "leaderboard.csv", p.leaderboard_.to_csv(index=False))
        write_json(folder / "versions.json", versions())
        lines = [json.dumps(json_safe(r)) for r in p.train_log_]
        write_text(folder / "train_log.jsonl", "\n".join(lines) + "\n")
        write_text(folder / CARD_FILE, predictor_card(p, versions()))

    return write_folder_atomically(directory, write, format_version=FORMAT_VERSION)


def read_predictor(cls, directory: str | os.PathLike, device: str = "auto"):
    """The predictor (an instance of ``cls``) saved in ``directory`` by :func:`write_predictor`,
    predicting on ``device``; its models load on the CPU and move there to predict."""
    resolve_device(device)  # an absent GPU is one line before any reading
    path = check_folder(directory, format_version=READS, required=REQUIRED_FILES)
    entry = "config.json"  # the file being read, for the error
    try:
        config = read_json(path / entry)
        predictor = cls(**{**config["params"], "device": device})
        entry = "ensemble.json"
        ensemble = read_json(path / entry)
        names = list(ensemble["models"])
        entry = "schema.json"
        schema = Schema.from_dict(read_json(path / entry))
        entry = "cleaning.json"
        cleaning = cleaning_report_from_dict(read_json(path / entry))
        entry = "leaderboard.csv"
        leaderboard = pd.read_csv(path / entry, dtype={"note": str})
        if "note" in leaderboard:  # an empty note reads back as NaN
            leaderboard["note"] = leaderboard["note"].fillna("")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelFolderError(f"{path / entry} is missing or malformed ({exc}); save the "
                               "predictor again") from None
    missing = [f"models/{n}" for n in names if not (path / "models" / n).is_dir()]
    if missing:
        raise ModelFolderError(f"{path} is incomplete: {', '.join(missing)} missing; save the "
                               "predictor again")
    predictor.schema_ = schema
    predictor.problem_type_ = config["problem_type"]
    # Folders written before recipes existed hold the preset's settings instead.
    predictor.recipe_ = (from_dict(PredictorRecipe, config["recipe"])
                         if config.get("recipe") is not None else None)
    predictor.cleaning_report_ = cleaning
    predictor.transform_ = TableTransform.load(path / "transform")
    predictor.models_ = {
        name: (NeuralCandidate.load(path / "models" / name) if name == NEURAL
               else ClassicModel.load(path / "models" / name))
        for name in names
    }
    _check_classic_width(path, predictor.models_, predictor.transform_)
    predictor.ensemble_weights_ = ensemble["weights"]
    predictor.chosen_ = ensemble["chosen"]
    predictor.val_metric_ = config["val_metric"]
    predictor.refit_models_ = list(config.get("refit_on_all_rows", []))
    if config.get("neural") is not None:
        predictor.neural_config_ = config["neural"]
    predictor.augmentation_ = config.get("augmentation")
    predictor.unlabelled_ = config.get("unlabelled")
    predictor.data_fingerprint_ = config.get("data")  # None in folders saved before cards
    predictor.leaderboard_ = leaderboard
    # Folders saved before the scikit-learn attributes: every column but the label.
    features = [c for c in schema.columns if c != schema.label]
    predictor.n_features_in_ = config.get("n_features_in", len(features))
    names = config.get("feature_names_in", features)
    if names is not None:
        predictor.feature_names_in_ = np.asarray(names, dtype=object)
    log_path = path / "train_log.jsonl"
    try:
        predictor.train_log_ = read_json(log_path, lines=True) if log_path.is_file() else []
    except (OSError, ValueError) as exc:
        raise ModelFolderError(f"{log_path} is unreadable ({exc}); save the predictor again") from None
    predictor.training_history_ = [
        {k: v for k, v in r.items() if k != "model"} for r in predictor.train_log_
        if r.get("model") == NEURAL and r.get("event") in ("train", "eval")
    ]
    return predictor


def _check_classic_width(path: Path, models: dict, transform: TableTransform) -> None:
    """Refuse, in one line, a scikit-learn candidate that expects another number of
    features than this polymodal makes from the table (the audio features grew, for one)."""
    width = None
    for name, model in models.items():
        expected = getattr(model, "features_in_", None)
        if expected is None:
            continue
        if width is None:
            width = flat_layout(transform.feature_spec(),
                                category_numbers(transform.vocab_)).num_features
        if int(expected) != width:
            raise ModelFolderError(
                f"{path / 'models' / name} expects {int(expected)} features but this polymodal "
                f"makes {width} from the table (the features changed since it was saved); "
                "retrain it with polymodal fit")
