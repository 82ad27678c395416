"""scikit-learn's parameter contract for the estimators: ``get_params`` returns the
constructor's arguments as stored, ``set_params`` sets them (so ``sklearn.base.clone``
works), and an unknown name is an error naming the parameters there are;
:func:`saved_params`, the ones a model folder keeps; and :func:`parse_overrides`, the ``columns=`` parameter from ``NAME=MODALITY`` strings (the
CLI's ``--column``)."""

from __future__ import annotations

import inspect

from polymodal.data.schema import parse_overrides
from polymodal.errors import ConfigError

__all__ = [
    "RUNTIME_PARAMS", "ParamsMixin", "get_params", "parse_overrides", "saved_params", "set_params",
]

# Choices about the machine a model runs on, not the model: a saved folder does not keep
# them, and ``load(..., device=)`` sets them for the machine that loads it.
RUNTIME_PARAMS = ("device",)


def get_params(estimator) -> dict:
    """``{name: value}`` for every argument of ``type(estimator).__init__``, as stored."""
    names = [p for p in inspect.signature(type(estimator).__init__).parameters if p != "self"]
    return {name: getattr(estimator, name) for name in names}


def saved_params(estimator) -> dict:
    """:func:`get_params` without the :data:`RUNTIME_PARAMS`: what ``config.json`` keeps."""
    return {k: v for k, v in get_params(estimator).items() if k not in RUNTIME_PARAMS}


def set_params(estimator, params: dict):
    """Set constructor arguments on ``estimator`` (learned state is left as it is); returns it."""
    valid = get_params(estimator)
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise ConfigError(f"{type(estimator).__name__}.set_params: unknown parameter(s) "
                          f"{unknown}; the parameters are {sorted(valid)}")
    for name, value in params.items():
        setattr(estimator, name, value)
    return estimator


class ParamsMixin:
    """``get_params`` / ``set_params`` for an estimator whose ``__init__`` stores its
    arguments unchanged, as scikit-learn's contract asks."""

    def get_params(self, deep: bool = True) -> dict:
        """The constructor arguments, as stored (scikit-learn's contract; JSON-able)."""
        return get_params(self)

    def set_params(self, **params):
        """Set constructor arguments (scikit-learn's contract); refit to apply them."""
        return set_params(self, params)
