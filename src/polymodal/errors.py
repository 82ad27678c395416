"""Errors a user can cause, and nothing else.

Every user-facing mistake raises a subclass of :class:`PolymodalError` whose message
names the file/column/parameter, the value received, and the fix. The CLI prints the
message as one line and exits non-zero; the service answers 4xx with it. Internal
invariants use ``assert``; bugs raise whatever they raise.
"""

from __future__ import annotations


class PolymodalError(ValueError):
    """A mistake in the user's input, with a message that says how to fix it."""


class DataError(PolymodalError):
    """A table, file or cell cannot be read or makes no sense as given."""


class SchemaError(PolymodalError):
    """A column override, label or modality that does not fit the table."""


class ConfigError(PolymodalError):
    """An unknown or out-of-range configuration value."""


def _not_fitted_error() -> type:
    from sklearn.exceptions import NotFittedError as SklearnNotFittedError

    class NotFittedError(PolymodalError, SklearnNotFittedError):
        """A model was used before ``fit`` (or ``load``); scikit-learn's ``NotFittedError``
        too (a ``ValueError`` and an ``AttributeError``), so its tools recognise it."""

    NotFittedError.__module__, NotFittedError.__qualname__ = __name__, "NotFittedError"
    return NotFittedError


def __getattr__(name: str):
    # Built on first use: importing scikit-learn takes most of a second, which the CLI's
    # usage errors and --help should not pay.
    if name == "NotFittedError":
        globals()[name] = cls = _not_fitted_error()
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class ModelFolderError(PolymodalError):
    """A saved model folder is incomplete, corrupt or from an incompatible version."""


class DiskFullError(PolymodalError):
    """The disk filled up while polymodal wrote a file or folder; nothing half-written was
    left behind, and what was there before is unchanged."""
