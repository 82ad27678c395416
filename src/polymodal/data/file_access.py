"""Getting at the files and folders a table reader is pointed to.

Every reader (text tables, IDX files, image folders) meets the same problems before it
parses anything: a path that does not exist, a file it may not read, a compressed file
to unpack (whole, or as a stream for pyarrow's readers), a ``base_dir`` that must be a
folder. They are answered here once, so that
each problem reads the same whichever reader met it.
"""

from __future__ import annotations

import bz2
import difflib
import gzip
import io
import lzma
import os
import stat
import zipfile
from pathlib import Path

from polymodal.errors import DataError

# A table file above this size is refused before it is opened: text tables are read whole
# into memory; a larger table belongs in a folder of Parquet shards.
MAX_TABLE_FILE_BYTES = 16 << 30
# An image or audio file above this size is refused before it is opened (the largest image
# polymodal decodes, 64 megapixels, is far smaller even as an uncompressed bitmap).
MAX_MEDIA_FILE_BYTES = 512 << 20

_SPECIAL_FILES = ((stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISCHR, "a character device"),
                  (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"),
                  (stat.S_ISDIR, "a folder"))


def checked_base_dir(base_dir: str | os.PathLike) -> str:
    """``base_dir`` as an absolute path, refused unless it is an existing folder."""
    folder = Path(os.path.expanduser(os.fspath(base_dir))).absolute()
    if not folder.is_dir():
        raise DataError(
            f"base_dir={os.fspath(base_dir)!r}: not an existing folder ({folder}); pass the "
            "folder that relative image/audio paths in the table are relative to"
        )
    return str(folder)


def missing_path_error(path: Path) -> DataError:
    """A "not found" error that suggests the likely intended file when one is nearby."""
    parent = path.parent
    if not parent.is_dir():
        return DataError(
            f"file not found: {path} (its folder {parent} does not exist either); check the path"
        )
    names = [p.name for p in parent.iterdir()]
    same_but_case = [n for n in names if n.lower() == path.name.lower()]
    close = same_but_case or difflib.get_close_matches(path.name, names, n=1, cutoff=0.6)
    if close:
        return DataError(f"file not found: {path}; did you mean {parent / close[0]}?")
    return DataError(f"file not found: {path}; check the path (the folder {parent} exists)")


def file_problem(info: os.stat_result, max_bytes: int) -> str | None:
    """Why a file with this ``stat`` must not be read (a FIFO would block forever, a device
    such as /dev/zero never ends), or None for a regular file of at most ``max_bytes``."""
    for test, what in _SPECIAL_FILES:
        if test(info.st_mode):
            return f"is {what}, not a regular file"
    if not stat.S_ISREG(info.st_mode):
        return "is not a regular file"
    if info.st_size > max_bytes:
        return f"is {info.st_size:,} bytes, over the limit of {max_bytes:,}"
    return None


def check_regular_file(path: str | os.PathLike, max_bytes: int, *, error: type[DataError] = DataError) -> None:
    """Refuse ``path`` before opening it unless it is a regular file of at most
    ``max_bytes`` (symlinks are followed); an OSError from ``stat`` passes through."""
    problem = file_problem(os.stat(path), max_bytes)
    if problem:
        raise error(f"{path} {problem}; pass a regular file")


def read_checked_bytes(path: str | os.PathLike, max_bytes: int, *, error: type[DataError] = DataError) -> bytes:
    """The bytes of ``path``, refused (``error`` naming it) unless it is a regular file of at
    most ``max_bytes``, checked before opening and again on the opened file (it may have been
    swapped in between); OSErrors pass through for the caller to phrase."""
    check_regular_file(path, max_bytes, error=error)
    # O_NONBLOCK: should a FIFO be swapped in after the check, opening it does not wait.
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(fd)
        problem = file_problem(info, max_bytes)
        if problem:
            raise error(f"{path} {problem}; pass a regular file")
        # Ask for the size fstat gave, plus one byte to see growth: a read of max_bytes
        # would allocate that much for every small file.
        data = handle.read(info.st_size + 1)
        if len(data) > info.st_size:  # it grew since fstat: read on, up to the limit
            data += handle.read(max_bytes + 1 - len(data))
    if len(data) > max_bytes:
        raise error(f"{path} grew past the limit of {max_bytes:,} bytes while it was read")
    return data


def read_bytes(path: Path, max_bytes: int = MAX_TABLE_FILE_BYTES) -> bytes:
    try:
        return read_checked_bytes(path, max_bytes)
    except PermissionError:
        raise DataError(
            f"{path}: permission denied; make the file readable (chmod +r) or copy it"
        ) from None
    except OSError as exc:
        raise DataError(
            f"{path}: cannot read the file ({exc.strerror or exc}); check the disk/path"
        ) from None


# Codecs Arrow decompresses itself while streaming; .xz and .zip go through Python's modules.
_ARROW_CODECS = {".gz": "gzip", ".bz2": "bz2", ".zst": "zstd"}
# What a corrupt or truncated compressed stream raises, from Arrow or from Python's modules.
STREAM_ERRORS = (OSError, EOFError, ValueError, lzma.LZMAError, zipfile.BadZipFile)


def open_stream(path: Path, compression: str | None):
    """A readable binary stream of the file's (decompressed) content, for pyarrow's readers.

    Uncompressed files are memory-mapped; the caller closes the stream.
    """
    import pyarrow as pa

    try:
        if compression is None:
            return pa.memory_map(str(path), "r")
        if compression in _ARROW_CODECS:
            return pa.CompressedInputStream(pa.OSFile(str(path)), _ARROW_CODECS[compression])
        if compression == ".xz":
            return lzma.open(path, "rb")
        archive = zipfile.ZipFile(path)
        members = [m for m in archive.infolist() if not m.is_dir()]
        if len(members) != 1:
            raise DataError(
                f"{path}: a zipped table must hold exactly one file, found {len(members)} "
                f"{[m.filename for m in members]}; extract the one you mean and pass it"
            )
        return archive.open(members[0])
    except PermissionError:
        raise DataError(
            f"{path}: permission denied; make the file readable (chmod +r) or copy it"
        ) from None
    except DataError:
        raise
    except STREAM_ERRORS as exc:
        raise corrupt_stream_error(path, compression, exc) from None


def corrupt_stream_error(path: Path, compression: str | None, exc: BaseException) -> DataError:
    what = f"{compression} file" if compression else "file"
    first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return DataError(
        f"{path}: not a valid {what} (corrupt or truncated: {first_line}); "
        "download or compress it again"
    )


def read_head(path: Path, compression: str | None, num_bytes: int) -> bytes:
    """The first ``num_bytes`` of the file's decompressed content (fewer if it is shorter)."""
    stream = open_stream(path, compression)
    try:
        return stream.read(num_bytes)
    except STREAM_ERRORS as exc:
        raise corrupt_stream_error(path, compression, exc) from None
    finally:
        stream.close()


def decompress(raw: bytes, compression: str | None, path: Path) -> bytes:
    if compression is None:
        return raw
    try:
        if compression == ".gz":
            return gzip.decompress(raw)
        if compression == ".bz2":
            return bz2.decompress(raw)
        if compression == ".xz":
            return lzma.decompress(raw)
        if compression == ".zst":
            import pyarrow as pa

            return pa.input_stream(pa.py_buffer(raw), compression="zstd").read()
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            members = [m for m in archive.infolist() if not m.is_dir()]
            if len(members) != 1:
                names = [m.filename for m in members]
                raise DataError(
                    f"{path}: a zipped table must hold exactly one file, found {len(members)} "
                    f"{names}; extract the one you mean and pass it"
                )
            return archive.read(members[0])
    except DataError:
        raise
    except (OSError, EOFError, ValueError, lzma.LZMAError, zipfile.BadZipFile) as exc:
        raise DataError(
            f"{path}: not a valid {compression} file (corrupt or truncated: {exc}); "
            "download or compress it again"
        ) from None
