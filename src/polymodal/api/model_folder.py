"""A saved model folder: written whole or not at all, checked before it is read.

:func:`write_folder_atomically` builds the new folder as a hidden sibling, then swaps it
in with renames, so a reader (or a crash) sees the old complete folder or the new
complete one, never a mix. It refuses to replace a folder that is not a polymodal model
folder (one without ``format_version``), so a typo in ``--out`` cannot wipe a user's data.
:func:`check_folder` checks the version and the required files with one clear error.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

from polymodal.data.cleaning import (
    ClassBalance,
    CleaningReport,
    ColumnReport,
    FileProblem,
    LeakageFinding,
)
from polymodal.errors import ModelFolderError

FORMAT_FILE = "format_version"


def is_model_folder(path: Path) -> bool:
    return (path / FORMAT_FILE).is_file()


def write_folder_atomically(directory: str | os.PathLike, write: Callable[[Path], None], *,
                            format_version: int) -> Path:
    """Call ``write(tmp_folder)``, then make ``tmp_folder`` appear as ``directory`` at once.

    An existing ``directory`` is replaced only if it is empty or a polymodal model folder.
    On any error the temporary folder is removed and ``directory`` is untouched.
    """
    target = Path(directory).absolute()
    if target.exists() and not target.is_dir():
        raise ModelFolderError(f"{target} is a file, not a folder; choose another output folder")
    if target.is_dir() and any(target.iterdir()) and not is_model_folder(target):
        raise ModelFolderError(
            f"{target} exists and is not a polymodal model folder (no {FORMAT_FILE} file); "
            "refusing to overwrite it — choose an empty or new folder"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.new-", dir=target.parent))
    try:
        write(tmp)
        # The version marker goes last: a folder without it was never finished.
        (tmp / FORMAT_FILE).write_text(f"{format_version}\n")
        if target.is_dir():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
            old.rmdir()
            os.rename(target, old)  # both renames are atomic within one filesystem
            try:
                os.rename(tmp, target)
            except BaseException:
                os.rename(old, target)
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def check_folder(directory: str | os.PathLike, *, format_version: int,
                 required: Iterable[str], kind: str = "predictor") -> Path:
    """The folder's path, after checking that it is a saved ``kind`` model ("predictor" or
    "generator") of ``format_version`` with every ``required`` file; one clear error if not."""
    saver = f"{kind.capitalize()}.save"
    path = Path(directory)
    if not path.is_dir():
        raise ModelFolderError(f"{path} is not a folder; pass the folder written by {saver}")
    marker = path / FORMAT_FILE
    if not marker.is_file():
        raise ModelFolderError(f"{path} has no {FORMAT_FILE} file, so it is not a (complete) polymodal "
                               f"model folder; save the {kind} again")
    text = marker.read_text().strip()
    if text != str(format_version):
        raise ModelFolderError(f"{path} has format_version {text!r}, but this polymodal reads "
                               f"{kind} version {format_version}; load it with the polymodal version "
                               "that wrote it (see versions.json) or train it again")
    found = _config_kind(path / "config.json")
    if found is not None and found != kind:
        raise ModelFolderError(f"{path} holds a {found} model, not a {kind}; load it with "
                               f"polymodal.{found.capitalize()}.load")
    missing = [name for name in required if not (path / name).exists()]
    if missing:
        raise ModelFolderError(f"{path} is incomplete: {', '.join(missing)} missing; "
                               f"save the {kind} again")
    return path


def _config_kind(config_path: Path) -> str | None:
    """The ``kind`` a model's config.json declares (predictors written before it existed
    declare none); None when the file is missing or unreadable (reported elsewhere)."""
    try:
        config = json.loads(config_path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(config, dict):
        return None
    return str(config.get("kind", "predictor"))


def cleaning_report_from_dict(d: dict) -> CleaningReport:
    """Rebuild a :class:`CleaningReport` from its ``to_dict()`` form (as read from JSON)."""
    columns = {}
    for c in d["columns"]:
        problems = [FileProblem(**p) for p in c.get("file_problems", [])]
        columns[c["name"]] = ColumnReport(**{**c, "file_problems": problems})
    balance = d.get("class_balance")
    return CleaningReport(**{
        **d,
        "columns": columns,
        "duplicate_of": {int(k): v for k, v in d["duplicate_of"].items()},
        "leakage": [LeakageFinding(**f) for f in d["leakage"]],
        "class_balance": None if balance is None else ClassBalance(**balance),
    })
