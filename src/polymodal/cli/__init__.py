"""The ``polymodal`` command: thin commands over the Python API and the workflows.

One module per group of commands (data, predictor, generator, deploy), sharing
:mod:`polymodal.cli.common`. User mistakes (any :class:`polymodal.errors.PolymodalError`)
and usage errors (an unknown option or command, a missing argument, a bad value) print one
line to stderr (usage errors with the usage hint) and exit with status 2; nothing a user
can cause prints a traceback. Heavy modules are imported inside commands so
``polymodal --help`` stays fast.
"""

from __future__ import annotations

import errno
import os
import sys
import warnings

import typer

# Importing the command modules registers their commands on ``app``.
from polymodal.cli import data_commands, deploy_commands, generator_commands, predictor_commands  # noqa: F401
from polymodal.cli.common import Device, app, err, start_clock
from polymodal.errors import PolymodalError

__all__ = ["Device", "app", "main"]


def _usage_errors() -> tuple[type, ...]:
    """Click's usage-error class, and typer's own copy of it (typer 0.2x vendors click)."""
    import click

    vendored = [c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException"]
    return (click.exceptions.ClickException, *vendored)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A warning (rows skipped, cells read as missing, ...) as one line on stderr."""
    err.print(f"[yellow]warning:[/] {message}", highlight=False, soft_wrap=True)


# What to do about the operating system's refusals a user meets most.
_OS_FIXES = {
    errno.EEXIST: "a file of that name is where a folder is to be written; pass a new path",
    errno.ENOTDIR: "a file of that name is where a folder is to be written; pass a new path",
    errno.EISDIR: "it is a folder; pass a file path",
    errno.EACCES: "no permission; pick a path you may use, or change its permissions",
    errno.EPERM: "no permission; pick a path you may use, or change its permissions",
    errno.EROFS: "the file system is read-only; write somewhere else",
    errno.ENOSPC: "the disk is full; free some space or write somewhere else",
    errno.ENOENT: "check the path",
}


def _os_error_line(exc: OSError) -> str:
    """An operating-system error as one line: the path, what went wrong and the fix
    (``[Errno 17] File exists: 'x'`` names no fix)."""
    if exc.strerror is None:
        return str(exc)
    where = f"{exc.filename}: " if exc.filename is not None else ""
    fix = _OS_FIXES.get(exc.errno)
    return f"{where}{exc.strerror.lower()}" + (f"; {fix}" if fix else "")


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app, turning user errors into one line and a non-zero exit."""
    # The console script (no argv): the whole process counts against --time-limit.
    start_clock(console_script=argv is None)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    warnings.showwarning = _show_warning
    try:
        code = app(args=argv, standalone_mode=False)
    except PolymodalError as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        err.print("aborted")
        sys.exit(130)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except Exception as exc:  # click usage errors arrive here under standalone_mode=False
        if isinstance(exc, _usage_errors()):
            exc.show()
            sys.exit(exc.exit_code)
        if isinstance(exc, OSError):  # a path, a disk, a permission: the user's to fix
            err.print(f"[bold red]error:[/] {_os_error_line(exc)}", highlight=False,
                      soft_wrap=True)
            sys.exit(2)
        raise
    sys.exit(code if isinstance(code, int) else 0)
