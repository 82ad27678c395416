"""Atomic writes: a reader sees the old file or folder or the new one, never half of one.

Every file polymodal writes for a user (models, reports, exported tables, images) goes
through here: write to a temporary file in the same folder, flush and fsync, then
``os.replace`` — atomic on POSIX and Windows within one filesystem. A folder is built
whole as a hidden sibling and renamed into place (:func:`write_folder`).
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

# JSON polymodal reads back from its own folders (configs, schemas, transforms, logs) is
# refused above this size before it is parsed: a crafted folder cannot exhaust memory.
MAX_JSON_BYTES = 256 << 20
_DISK_FULL = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))  # EDQUOT: not on Windows


def disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` (or an error it was raised from) says the disk or quota is full;
    libraries that write files themselves (safetensors) wrap the OS error in their own."""
    while exc is not None:
        if isinstance(exc, OSError) and exc.errno in _DISK_FULL:
            return True
        if "No space left on device" in str(exc) or "StorageFull" in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def disk_full_error(path: Path):
    """A :class:`~polymodal.errors.DiskFullError` for writing ``path``."""
    from polymodal.errors import DiskFullError

    return DiskFullError(f"no space left on the device to write {path}; nothing "
                         "was written there (what was there before is unchanged): free some "
                         "space or write to another disk")


def read_json(path: str | os.PathLike, *, lines: bool = False, max_bytes: int | None = None):
    """A JSON file (``lines=True``: a JSON Lines file, as a list) polymodal wrote;
    :class:`~polymodal.errors.DataError` naming the file when it is over ``max_bytes``
    (default MAX_JSON_BYTES; a ValueError, like a parse error)."""
    from polymodal.errors import DataError

    path, max_bytes = Path(path), MAX_JSON_BYTES if max_bytes is None else max_bytes
    size = path.stat().st_size
    if size > max_bytes:
        raise DataError(f"{path} is {size:,} bytes, over the {max_bytes:,} polymodal reads "
                        "back from a JSON file it wrote; the folder was not written by "
                        "polymodal (or was edited)")
    text = path.read_text(encoding="utf-8")
    if lines:
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    return json.loads(text)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` atomically.

    On any exception the temporary file is removed and ``path`` is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    # mkstemp makes owner-only files; give the result the permissions open() would.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, path)
    except BaseException as exc:
        tmp_path.unlink(missing_ok=True)
        if disk_full(exc) and not _is_disk_full_error(exc):
            raise disk_full_error(path) from exc
        raise


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | os.PathLike, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


def json_safe(value):
    """``value`` as plain JSON values: containers recursed (keys as strings), numpy scalars
    unwrapped, NaN and infinities as null, paths as strings."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value


def write_json(path: str | os.PathLike, obj) -> Path:
    return write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def write_folder(directory: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call ``write(staging)`` on a new hidden sibling of ``directory``, then make it appear
    as ``directory`` at once, replacing what was there.

    Whether an existing folder may be replaced is the caller's to check first. The old
    folder is moved aside, the new one renamed in, then the old one removed: a reader sees
    the old folder or the new one (a crash between the two renames leaves the old one aside
    as ``.NAME.old-*``); on any error the staging folder is removed and the old folder put back.
    """
    target = Path(directory).absolute()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.new-", dir=target.parent))
    except OSError as exc:  # else the message names the hidden staging folder
        from polymodal.errors import ConfigError

        raise ConfigError(f"{target} cannot be written: no folder can be made in "
                          f"{target.parent} ({exc.strerror}); choose a folder you can write "
                          "in") from None
    # mkdtemp makes owner-only folders; give the result the permissions mkdir() would.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(staging, 0o777 & ~umask)
    try:
        write(staging)
        if target.is_dir() and not any(target.iterdir()):
            target.rmdir()
        if not target.exists():
            os.replace(staging, target)
            return target
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
        old.rmdir()
        os.replace(target, old)  # both renames are atomic within one filesystem
        try:
            os.replace(staging, target)
        except BaseException:
            os.replace(old, target)
            raise
        shutil.rmtree(old, ignore_errors=True)
    except BaseException as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if disk_full(exc) and not _is_disk_full_error(exc):
            raise disk_full_error(target) from exc
        raise
    return target


def _is_disk_full_error(exc: BaseException) -> bool:
    from polymodal.errors import DiskFullError

    return isinstance(exc, DiskFullError)
