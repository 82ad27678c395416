"""What every ``polymodal`` command shares: the typer apps, the consoles, -v/-q, --device,
the command's time budget, saving a model, and the one-line failure.

User mistakes (any :class:`polymodal.errors.PolymodalError`) and usage errors (an unknown
option or command, a missing argument, a bad value) print one line to stderr (usage
errors with the usage hint) and exit with status 2 (:func:`polymodal.cli.main`). Every
command takes ``-v/--verbose`` and ``-q/--quiet`` (only errors and the final result) and
ends its ``--help`` with an example (:func:`command`).
"""

from __future__ import annotations

import contextlib
import enum
import functools
import inspect
import json
import logging
import sys
import time
import warnings
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from polymodal.errors import ConfigError

app = typer.Typer(
    name="polymodal",
    help="Multimodal learning and conditional image generation from one table, CPU first.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
data_app = typer.Typer(help="Look at a table before training on it.", no_args_is_help=True)
datasets_app = typer.Typer(help="Built-in datasets.", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(datasets_app, name="datasets")

out = Console()
err = Console(stderr=True)


def fail(message: str, code: int = 2) -> None:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


# ------------------------------------------------------------------ common options


class Device(enum.StrEnum):
    """``--device``: where training, prediction and sampling run (the API's ``device=``;
    the same names as :data:`polymodal.train.devices.DEVICES`)."""

    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"
    mps = "mps"


def device_option() -> typer.models.OptionInfo:
    return typer.Option(Device.auto, "--device",
                        help="auto (a GPU when there is one, else the CPU), cpu, cuda or mps.")


class Verbosity:
    """This command's -q/-v: 0 quiet (errors and the final result), 1 normal, 2 verbose."""

    level = 1


class StderrLog(logging.Handler):
    """With -v: polymodal's log records on stderr, except the API's INFO records, which
    repeat what its console lines already said."""

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno == logging.INFO and record.name.startswith("polymodal.api"):
            return
        err.print(f"[dim]{record.levelname.lower()}:[/] {record.getMessage()}",
                  highlight=False, soft_wrap=True)


LOG_HANDLER = StderrLog(logging.DEBUG)


def set_verbosity(verbose: bool, quiet: bool) -> None:
    if verbose and quiet:
        fail("pass -v/--verbose or -q/--quiet, not both")
    Verbosity.level = 0 if quiet else 2 if verbose else 1
    log = logging.getLogger("polymodal")
    log.removeHandler(LOG_HANDLER)
    log.setLevel(logging.DEBUG if verbose else logging.NOTSET)
    if verbose:
        log.addHandler(LOG_HANDLER)


def info(*objects, **kwargs) -> None:
    """Print what is not the command's final result (silenced by -q)."""
    if Verbosity.level > 0:
        out.print(*objects, **kwargs)


VERBOSITY_OPTIONS = (
    ("verbose", ("--verbose", "-v"), "Also print the library's debug messages."),
    ("quiet", ("--quiet", "-q"), "Print only errors and the final result (no progress bar)."),
)


def command(group: typer.Typer, name: str, *, example: str, distributed: bool = False):
    """Register the decorated function as command ``name`` of ``group``, with -v/-q added
    to its options and ``example`` at the end of its --help. Under ``torchrun`` with more
    than one process only ``distributed`` commands run (the training ones); any other
    refuses in one line rather than doing the same work and writing the same files in
    every process."""

    def register(func):
        signature = inspect.signature(func, eval_str=True)
        extra = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=bool,
                                   default=typer.Option(False, *flags, help=text))
                 for name, flags, text in VERBOSITY_OPTIONS]

        @functools.wraps(func)
        def run(*args, verbose: bool = False, quiet: bool = False, **kwargs):
            set_verbosity(verbose, quiet)
            if _launched_rank() is not None and not distributed:
                fail(f"`{name}` runs in one process: run it without torchrun (WORLD_SIZE "
                     "is set); under torchrun only `fit` and `generate fit` run, training "
                     "together in every process")
            return func(*args, **kwargs)

        run.__signature__ = signature.replace(
            parameters=[*signature.parameters.values(), *extra])
        run.__annotations__ = {**func.__annotations__, "verbose": bool, "quiet": bool}
        return group.command(name, epilog=f"Example: {example}")(run)

    return register


def _launched_rank() -> int | None:
    from polymodal.api.ranks import launched_rank

    return launched_rank()


def follower_rank() -> bool:
    """True on a ``torchrun`` rank other than 0, which trains the network with rank 0 and
    prints nothing but errors (rank 0 prints, and saves the model): silenced here."""
    rank = _launched_rank()
    if rank in (None, 0):
        return False
    Verbosity.level = 0
    logging.getLogger("polymodal").removeHandler(LOG_HANDLER)  # -v: rank 0's to print
    warnings.simplefilter("ignore")
    return True


def _show_version(value: bool) -> None:
    if value:
        from polymodal import __version__

        out.print(f"polymodal {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def _top_level(
    version: bool = typer.Option(False, "--version", is_eager=True, callback=_show_version,
                                 help="Print polymodal's version and exit."),
) -> None:
    """Multimodal learning and conditional image generation from one table, CPU first."""




# ------------------------------------------------------------------ output


def print_frame(frame, *, title: str) -> None:
    table = Table(title=title, title_justify="left")
    for column in frame.columns:
        table.add_column(str(column))
    for row in frame.itertuples(index=False):
        table.add_row(*(f"{v:.4g}" if isinstance(v, float) else str(v) for v in row))
    out.print(table)


def print_metrics(metrics: dict, *, title: str) -> None:
    import pandas as pd

    print_frame(pd.DataFrame({"metric": list(metrics), "value": list(metrics.values())}), title=title)



# ------------------------------------------------------------ budget and saving


_command_start: float | None = None  # time.perf_counter() when the command began


def start_clock(console_script: bool) -> None:
    """Start the command's clock: at the process's start for the console script (the
    interpreter and imports count against --time-limit), else now."""
    global _command_start
    _command_start = _process_start() if console_script else time.perf_counter()


def command_budget(time_limit: float | None):
    """The command's time budget, counted from when the command began: the console
    script's process start (interpreter, imports), else the call of :func:`main`."""
    from polymodal.api import TimeBudget

    return TimeBudget(time_limit, start=_command_start)


def _process_start() -> float:
    """``time.perf_counter()`` at this process's start (now, where it cannot be read)."""
    try:
        import psutil

        age_s = time.time() - psutil.Process().create_time()
    except Exception:  # noqa: BLE001 - an unreadable process table: count from now
        age_s = 0.0
    return time.perf_counter() - max(0.0, age_s)


@contextlib.contextmanager
def interrupted(out_dir: Path, doing: str):
    """Ctrl-C while ``doing``: say what was saved (nothing: ``out_dir`` is as it was) and
    exit 130, the shell's status for SIGINT."""
    try:
        yield
    except KeyboardInterrupt:
        before = "what was there is unchanged" if out_dir.exists() else "it was not created"
        err.print(f"interrupted during {doing}: nothing was saved to {out_dir} ({before})",
                  highlight=False, soft_wrap=True)
        raise typer.Exit(130) from None


def save_model(model, out_dir: Path, what: str) -> Path:
    """``model.save(out_dir)``; when the disk is full and someone is at the terminal, the
    fitted model stays in memory while they free space or name another folder."""
    from polymodal.api.model_folder import check_output_folder
    from polymodal.errors import DiskFullError

    while True:
        try:
            with interrupted(out_dir, f"saving the {what}"):
                return model.save(out_dir)
        except DiskFullError as exc:
            if not (sys.stdin.isatty() and sys.stderr.isatty()):
                raise
            err.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            answer = typer.prompt(f"the {what} is still in memory: free some space and press "
                                  "Enter to save again, or type another folder (Ctrl-C gives up)",
                                  default="", show_default=False, err=True)
            if answer.strip():
                out_dir = check_output_folder(Path(answer.strip()))


def set_options(items: list[str]) -> dict[str, str]:
    """``--set network.width=64 ...`` as ``{"network.width": "64"}`` (parsed by field type
    when the recipe is resolved)."""
    changes = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r} must be KEY=VALUE, e.g. --set network.width=64")
        changes[key.strip()] = value.strip()
    return changes


def image_augment_option(value: str):
    """``--image-augment``: a name (none, hflip) or a JSON object of augment settings."""
    if not value.lstrip().startswith("{"):
        return value
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"--image-augment {value!r} is not valid JSON ({exc.msg}); write e.g. "
                          '\'{"hflip": true, "shift_px": 2}\' or a name: none, hflip') from None
    if not isinstance(parsed, dict):
        raise ConfigError(f"--image-augment {value!r} must be a JSON object")
    return parsed


