"""The scikit-learn-like API: :class:`Predictor` (and :class:`Generator`, when installed).

``Generator`` lives in ``polymodal.api.generator`` and is imported on first use, so the
predictor works even where that module is absent.
"""

from __future__ import annotations

import importlib

from polymodal.api.predictor import Predictor
from polymodal.train.budget import TimeBudget  # the clock a command hands to fit(budget=)

__all__ = ["Generator", "Predictor", "TimeBudget"]


def __getattr__(name: str):
    if name == "Generator":
        try:
            module = importlib.import_module("polymodal.api.generator")
        except ModuleNotFoundError as exc:
            if exc.name != "polymodal.api.generator":
                raise
            raise AttributeError(
                "polymodal.api.Generator is not available in this installation "
                "(polymodal/api/generator.py is missing)"
            ) from None
        return module.Generator
    raise AttributeError(f"module 'polymodal.api' has no attribute {name!r}")
