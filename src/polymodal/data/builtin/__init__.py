"""Built-in datasets: a registry of tables that ship with polymodal or its system packages.

Each dataset is one module here exposing the same small surface: ``NAME``,
``DESCRIPTION``, ``SOURCE``, ``LICENSE``, ``NUM_ROWS`` (None when any ``n`` can be
generated, then ``DEFAULT_NUM_ROWS``), ``COLUMNS`` (column -> modality), ``LABEL``,
``OPTIONS`` (extra keyword options -> default), ``HOW_TO_INSTALL``, ``is_available()``
and ``load(*, split, n, seed, **options)``. This package adds the user-facing checks and
the table metadata (``df.attrs``) in one place.

Loaded tables hold images in memory as uint8 numpy arrays, (H, W) or (H, W, 3);
:func:`polymodal.data.builtin.export.export` writes them out as an ordinary CSV + PNG
table.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from types import ModuleType

import numpy as np
import pandas as pd

from polymodal.data.builtin import digits, fashion_mnist, shapes
from polymodal.errors import ConfigError, DataError

_MODULES: dict[str, ModuleType] = {m.NAME: m for m in (digits, fashion_mnist, shapes)}


@dataclass(frozen=True)
class DatasetInfo:
    """What a built-in dataset is, where it comes from, and whether it can be loaded here."""

    name: str
    description: str
    rows: int  # rows of the full dataset; for a generated one, the default n
    modalities: tuple[str, ...]  # distinct modalities of the feature columns
    columns: dict[str, str] = field(default_factory=dict)  # column -> modality, label included
    label: str = "label"
    source: str = ""
    license: str = ""
    available: bool = True
    how_to_install: str = ""  # empty when nothing needs installing
    generated: bool = False  # True when any n can be generated (rows is then the default)
    options: dict[str, object] = field(default_factory=dict)  # extra load() options -> default

    def to_dict(self) -> dict:
        """Plain JSON-ready fields."""
        return asdict(self)


def list_datasets() -> list[DatasetInfo]:
    """Every built-in dataset, available here or not, in name order."""
    return [describe(name) for name in sorted(_MODULES)]


def describe(name: str) -> DatasetInfo:
    """The :class:`DatasetInfo` of one dataset; DataError for an unknown name."""
    module = _module(name)
    generated = module.NUM_ROWS is None
    features = [c for c in module.COLUMNS if c != module.LABEL]
    modalities = tuple(dict.fromkeys(module.COLUMNS[c] for c in features))
    return DatasetInfo(
        name=module.NAME,
        description=module.DESCRIPTION,
        rows=module.DEFAULT_NUM_ROWS if generated else module.NUM_ROWS,
        modalities=modalities,
        columns=dict(module.COLUMNS),
        label=module.LABEL,
        source=module.SOURCE,
        license=module.LICENSE,
        available=module.is_available(),
        how_to_install=module.HOW_TO_INSTALL,
        generated=generated,
        options=dict(module.OPTIONS),
    )


def load(
    name: str,
    *,
    split: bool = False,
    n: int | None = None,
    seed: int = 0,
    **options,
) -> pd.DataFrame | tuple[pd.DataFrame, pd.DataFrame]:
    """Load a built-in dataset as a DataFrame, or a ``(train, test)`` pair with ``split=True``.

    ``n`` keeps a seeded random sample of that many rows (for a generated dataset such
    as ``shapes``, generates that many); ``options`` are the dataset's own (see
    ``describe(name).options``). Images are uint8 arrays in the ``image`` column. Each
    frame gets ``attrs["base_dir"]`` (the current folder, as for an in-memory table)
    and ``attrs["source"] = "polymodal:NAME"``.
    """
    module = _module(name)
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise ConfigError(f"seed={seed!r} must be a whole number")
    unknown = sorted(set(options) - set(module.OPTIONS))
    if unknown:
        accepted = ", ".join(module.OPTIONS) or "none"
        raise ConfigError(
            f"dataset {module.NAME!r} has no option {', '.join(map(repr, unknown))}; "
            f"accepted options: {accepted}"
        )
    if not module.is_available():
        raise DataError(
            f"dataset {module.NAME!r} is not installed on this machine; install it with "
            f"`{module.HOW_TO_INSTALL}`"
        )
    result = module.load(split=bool(split), n=n, seed=int(seed), **options)
    frames = result if isinstance(result, tuple) else (result,)
    for frame in frames:
        frame.attrs["base_dir"] = os.getcwd()
        frame.attrs["source"] = f"polymodal:{module.NAME}"
    return result


def _module(name: str) -> ModuleType:
    """The dataset module for a name; case, '_' and '-' do not matter."""
    key = str(name).strip().lower().replace("_", "-")
    if key not in _MODULES:
        raise DataError(
            f"unknown dataset {name!r}; known datasets: {', '.join(sorted(_MODULES))} "
            "(see polymodal.datasets.list_datasets())"
        )
    return _MODULES[key]


__all__ = ["DatasetInfo", "describe", "list_datasets", "load"]
