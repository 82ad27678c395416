"""The models a server holds: loaded once from their folders, described for ``GET /models``.

A folder's kind is read from its ``config.json``: a ``"kind"`` field when the writer put
one there, otherwise the files only a Predictor writes (``ensemble.json``) tell them
apart. Each model is served under its folder's name unless the user names it.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from polymodal.api.model_folder import KINDS, folder_kind
from polymodal.errors import ConfigError
from polymodal.files import json_safe
from polymodal.serve.rows import column_info

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")  # safe in a URL path segment


@dataclass
class ServedModel:
    """One loaded model and what the service says about it."""

    name: str
    kind: str  # "predictor" or "generator"
    model: object
    path: str | None = None
    versions: dict = field(default_factory=dict)  # the versions the model was saved with

    def __post_init__(self) -> None:
        assert self.kind in KINDS, self.kind


def load_models(directories: list[str | os.PathLike], names: list[str] | None = None, *,
                device: str = "auto") -> dict[str, ServedModel]:
    """Load every model folder once, to run on ``device``; ``names`` (same length)
    overrides the folder names."""
    if not directories:
        raise ConfigError("serve needs at least one model folder; pass DIR [DIR ...]")
    names = list(names or [])
    if names and len(names) != len(directories):
        raise ConfigError(f"--name was given {len(names)} time(s) for {len(directories)} model "
                          "folder(s); give one name per folder, in the same order, or none")
    served: dict[str, ServedModel] = {}
    for i, directory in enumerate(directories):
        path = Path(directory)
        name = names[i] if names else path.absolute().name
        if not _NAME.match(name):
            raise ConfigError(f"model name {name!r} (for {path}) must be letters, digits, '_', "
                              "'-' or '.', starting with a letter or digit; pass --name")
        if name in served:
            raise ConfigError(f"two models are named {name!r} ({served[name].path} and {path}); "
                              "give each a distinct --name")
        served[name] = load_model(path, name, device=device)
    return served


def load_model(path: Path, name: str, *, device: str = "auto") -> ServedModel:
    """Load one folder as whatever kind it is, to run on ``device``."""
    kind = folder_kind(path)
    if kind == "predictor":
        from polymodal.api import Predictor

        model = Predictor.load(path, device=device)
    else:
        from polymodal.api import Generator

        model = Generator.load(path, device=device)
    versions_path = path / "versions.json"
    try:
        versions = json.loads(versions_path.read_text()) if versions_path.is_file() else {}
    except (OSError, ValueError):
        versions = {}
    return ServedModel(name=name, kind=kind, model=model, path=str(path), versions=versions)


def describe(served: ServedModel) -> dict:
    """The public description of one model (an entry of ``GET /models``)."""
    info: dict = {"name": served.name, "kind": served.kind, "versions": served.versions}
    model = served.model
    if served.kind == "predictor":
        schema = model.schema_
        classes = model.classes_
        info.update({
            "label": schema.label,
            "problem_type": model.problem_type_,
            "classes": None if classes is None else [json_safe(c) for c in classes],
            "columns": column_info(schema),
        })
    else:
        conditions = getattr(model, "conditions_", {}) or {}
        # Each entry: modality, and classes (categorical), min/max/mean (numeric) or tags.
        info["conditions"] = {column: {k: json_safe(v) for k, v in spec.items()}
                              for column, spec in conditions.items()}
        shape = getattr(model, "image_shape_", None)
        info["image_shape"] = None if shape is None else [int(v) for v in shape]
    return info
