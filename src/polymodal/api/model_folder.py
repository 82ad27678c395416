"""A saved model folder: written whole or not at all, checked before it is read.

:func:`write_folder_atomically` builds the new folder as a hidden sibling, then swaps it
in with renames, so a reader (or a crash) sees the old complete folder or the new
complete one, never a mix. It refuses to replace a folder that is not a polymodal model
folder (one without ``format_version``), so a typo in ``--out`` cannot wipe a user's data.
:func:`check_folder` checks the version and the required files with one clear error.

Loading a folder never runs code from it: configuration is JSON, tensors are safetensors,
the classic candidates' skops files load only when every type they hold is one that
polymodal writes (:mod:`polymodal.models.classic_file`), and the boosters' own formats
(LightGBM's text model, CatBoost's binary model) are read by their libraries' parsers and
checked against ``model.json``. :func:`inspect_folder` lists a
folder's files, kinds and versions and says whether it would load, without loading it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from polymodal.data.cleaning import (
    ClassBalance,
    CleaningReport,
    ColumnReport,
    FileProblem,
    LeakageFinding,
)
from polymodal.errors import DiskFullError, ModelFolderError
from polymodal.files import read_json, write_folder
from polymodal.models.catboost_model import is_model_file
from polymodal.models.classic_file import file_types, refused_names

FORMAT_FILE = "format_version"
MAX_VERSION_BYTES = 32  # of format_version read and quoted back: a version is a number
KINDS = ("predictor", "generator")


def is_model_folder(path: Path) -> bool:
    return (path / FORMAT_FILE).is_file()


def write_folder_atomically(directory: str | os.PathLike, write: Callable[[Path], None], *,
                            format_version: int) -> Path:
    """Call ``write(tmp_folder)``, then make ``tmp_folder`` appear as ``directory`` at once.

    An existing ``directory`` is replaced only if it is empty or a polymodal model folder.
    On any error the temporary folder is removed and ``directory`` is untouched.
    """
    target = check_output_folder(directory)

    def write_marked(folder: Path) -> None:
        write(folder)
        # The version marker goes last: a folder without it was never finished.
        (folder / FORMAT_FILE).write_text(f"{format_version}\n")

    try:
        return write_folder(target, write_marked)
    except DiskFullError:
        raise DiskFullError(
            f"no space left on the device to save the model to {target}; nothing was written "
            "there (a model already there is unchanged). The fitted model is still in memory: "
            "free some space and save again, or save it to another disk (the command line: "
            "run again with --out on another disk)") from None


def check_output_folder(directory: str | os.PathLike) -> Path:
    """``directory`` as an absolute path, if a model may be saved there: a new or empty
    folder, or a model folder (which is replaced). Checked before any training, so that a
    typo in ``--out`` costs nothing and cannot wipe a user's data."""
    target = Path(directory).absolute()
    if target.exists() and not target.is_dir():
        raise ModelFolderError(f"output folder {target} is a file, not a folder; choose a new folder "
                               "for the model")
    if target.is_dir() and any(target.iterdir()) and not is_model_folder(target):
        raise ModelFolderError(
            f"output folder {target} exists and is not a polymodal model folder (no {FORMAT_FILE} "
            "file); refusing to overwrite it — choose an empty or new folder (an existing model "
            "folder is replaced)")
    _check_creatable(target)
    return target


def _check_creatable(target: Path) -> None:
    """ModelFolderError when ``target`` lies under a file (``data.csv/model``) or in a
    folder this user may not write: found by looking, writing nothing (a user error must
    leave no trace, on any rank)."""
    ancestor = target.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ModelFolderError(f"output folder {target}: {ancestor} is a file, not a folder; "
                               "choose a new folder for the model")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise ModelFolderError(f"output folder {target} cannot be made: {ancestor} is not "
                               "writable by this user; choose a folder you can write in")


def check_folder(directory: str | os.PathLike, *, format_version: int | tuple[int, ...],
                 required: Iterable[str], kind: str = "predictor") -> Path:
    """The folder's path, after checking that it is a saved ``kind`` model ("predictor" or
    "generator") of a ``format_version`` this polymodal reads (one, or a tuple of them) with
    every ``required`` file; one clear error if not."""
    saver = f"{kind.capitalize()}.save"
    path = Path(directory)
    if not path.is_dir():
        raise ModelFolderError(f"{path} is not a folder; pass the folder written by {saver}")
    marker = path / FORMAT_FILE
    if not marker.is_file():
        raise ModelFolderError(f"{path} has no {FORMAT_FILE} file, so it is not a (complete) polymodal "
                               f"model folder; save the {kind} again")
    try:
        with open(marker, "rb") as handle:  # a version is a few bytes; the file may not be
            text = handle.read(MAX_VERSION_BYTES + 1).decode().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelFolderError(f"{marker} is unreadable ({type(exc).__name__}); save the {kind} "
                               "again") from None
    if len(text) > MAX_VERSION_BYTES:
        text = text[:MAX_VERSION_BYTES] + "..."
    found = _config_kind(path / "config.json")
    if found is not None and found != kind:
        raise ModelFolderError(wrong_kind_message(path, found, kind))
    readable = format_version if isinstance(format_version, tuple) else (format_version,)
    if text not in {str(v) for v in readable}:
        raise ModelFolderError(f"{path} has format_version {text!r}, but this polymodal reads "
                               f"{kind} version(s) {', '.join(map(str, readable))}; load it with "
                               "the polymodal version that wrote it (see versions.json) or train "
                               "it again")
    missing = [name for name in required if not (path / name).exists()]
    if missing:
        raise ModelFolderError(f"{path} is incomplete: {', '.join(missing)} missing; "
                               f"save the {kind} again")
    return path


# The commands that use each kind of model folder, for a folder given to the wrong one.
COMMANDS = {"predictor": "polymodal predict / evaluate / serve (Python: Predictor.load)",
            "generator": "polymodal generate sample / edit / evaluate / serve "
                         "(Python: Generator.load)"}


def wrong_kind_message(path: Path, found: str, wanted: str) -> str:
    """What to say when a ``found`` folder is given where a ``wanted`` one was expected."""
    made_by = "polymodal fit" if found == "predictor" else "polymodal generate fit"
    return (f"{path} holds a {found} (written by `{made_by}`), not a {wanted}; use it with "
            f"{COMMANDS[found]}")


def _config_kind(config_path: Path) -> str | None:
    """The ``kind`` a model's config.json declares (predictors written before it existed
    declare none); None when the file is missing or unreadable (reported elsewhere)."""
    try:
        config = read_json(config_path)
    except (OSError, ValueError):
        return None
    if not isinstance(config, dict):
        return None
    return str(config.get("kind", "predictor"))


def folder_kind(path: Path) -> str:
    """``"predictor"`` or ``"generator"`` for a saved model folder.

    Read from ``config.json``'s ``"kind"``; older predictors wrote none, and only a
    Predictor writes ``ensemble.json``.
    """
    config_path = path / "config.json"
    if not path.is_dir():
        raise ModelFolderError(f"model folder {path} does not exist or is not a folder; pass a "
                               "folder written by Predictor.save or Generator.save")
    if not config_path.is_file():
        raise ModelFolderError(f"{path} has no config.json, so it is not a saved polymodal model; "
                               "pass a folder written by Predictor.save or Generator.save")
    try:
        config = read_json(config_path)
    except (OSError, ValueError) as exc:
        raise ModelFolderError(f"{config_path} is not valid JSON ({exc}); save the model again"
                               ) from None
    kind = config.get("kind") if isinstance(config, dict) else None
    if kind in KINDS:
        return kind
    return "predictor" if (path / "ensemble.json").is_file() else "generator"


@dataclass
class FolderFile:
    """One file of a model folder, as :func:`inspect_folder` found it."""

    path: str  # relative to the folder
    size_bytes: int
    kind: str  # json, text, safetensors, skops, lightgbm, catboost, or other (never read)
    detail: str = ""
    problem: str | None = None  # why loading would refuse the folder


@dataclass
class FolderInspection:
    """What a model folder holds and whether polymodal would load it."""

    path: str
    kind: str | None
    format_version: str | None
    versions: dict
    files: list[FolderFile] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # worth a look; loading is unaffected

    @property
    def problems(self) -> list[str]:
        return [f"{f.path}: {f.problem}" for f in self.files if f.problem]

    @property
    def loadable(self) -> bool:
        return self.kind is not None and self.format_version is not None and not self.problems

    def to_dict(self) -> dict:
        return {**asdict(self), "problems": self.problems, "loadable": self.loadable}


# Files polymodal reads, by how it reads them; anything else in a folder is never opened.
# MODEL_CARD.md is written for people and never parsed: plain text like the CSVs.
_TEXT_FILES = (FORMAT_FILE, ".csv", ".md")


def inspect_folder(directory: str | os.PathLike) -> FolderInspection:
    """List a model folder's files with their kinds, and what would stop it loading.

    Reads headers and schemas only: no estimator, network or transform is built.
    """
    path = Path(directory)
    if not path.is_dir():
        raise ModelFolderError(f"{path} is not a folder; pass a folder written by "
                               "Predictor.save or Generator.save")
    try:
        kind = folder_kind(path)
    except ModelFolderError:
        kind = None
    marker = path / FORMAT_FILE
    try:
        version = marker.read_text().strip() if marker.is_file() else None
    except (OSError, UnicodeDecodeError):
        version = None
    try:
        versions = read_json(path / "versions.json")
    except (OSError, ValueError):
        versions = {}
    report = FolderInspection(str(path), kind, version, versions if isinstance(versions, dict) else {})
    if kind is None:
        report.notes.append("no readable config.json: not a polymodal model folder")
    if version is None:
        report.notes.append(f"no {FORMAT_FILE} file: the folder was never finished")
    for file in sorted(p for p in path.rglob("*") if p.is_file() or p.is_symlink()):
        relative = file.relative_to(path).as_posix()
        if file.is_symlink():
            report.notes.append(f"{relative} is a link to {os.readlink(file)}")
        report.files.append(_inspect_file(file, relative))
    return report


def _inspect_file(file: Path, relative: str) -> FolderFile:
    size = file.stat().st_size if file.exists() else 0
    entry = FolderFile(relative, size, "other", "never read by polymodal")
    name = file.name
    if name.endswith((".json", ".jsonl")):
        entry.kind, entry.detail = "json", "configuration or log"
        try:
            read_json(file, lines=name.endswith(".jsonl"))
        except (OSError, ValueError) as exc:
            entry.problem = f"not valid JSON ({exc})"
    elif name == "model.txt":
        entry.kind, entry.detail = "lightgbm", "LightGBM text model (data only)"
    elif name == "model.cbm":
        entry.kind, entry.detail = "catboost", "CatBoost binary model (data only)"
        if not is_model_file(file):
            entry.problem = "not a CatBoost binary model"
    elif name.endswith(_TEXT_FILES):
        entry.kind, entry.detail = "text", "plain text"
    elif name.endswith(".safetensors"):
        entry.kind = "safetensors"
        try:
            from safetensors import safe_open

            with safe_open(str(file), framework="pt") as handle:
                keys = list(handle.keys())
            entry.detail = f"{len(keys)} tensors (weights; data only)"
        except Exception as exc:  # noqa: BLE001 - any failure means an unreadable file
            entry.problem = f"not a readable safetensors file ({type(exc).__name__})"
    elif name.endswith(".skops"):
        entry.kind = "skops"
        try:
            refused = refused_names(file)
            types, _ = file_types(file)
        except ModelFolderError:
            entry.problem = "damaged or not a skops file"
            return entry
        names = sorted({t.rsplit(".", 1)[1] for t in types if t.startswith("sklearn.")})
        estimators = [n for n in names if n[0].isupper() and not n.startswith(("Cy", "Half"))]
        entry.detail = f"scikit-learn estimator of {len(types)} types ({', '.join(estimators)})"
        if refused:
            entry.problem = ("holds types polymodal never saves, so loading refuses it: "
                             + ", ".join(refused))
    return entry


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
