"""The ``polymodal`` command: thin commands over the Python API.

User mistakes (any :class:`polymodal.errors.PolymodalError`) and usage errors (an unknown
option or command, a missing argument, a bad value) print one line to stderr (usage
errors with the usage hint) and exit with status 2; nothing a user can cause prints a
traceback. Every command takes ``-v/--verbose`` and ``-q/--quiet`` (only errors and the
final result) and ends its ``--help`` with an example. Heavy modules are imported inside
commands so ``polymodal --help`` stays fast.
"""

from __future__ import annotations

import contextlib
import enum
import functools
import inspect
import json
import logging
import os
import sys
import time
import warnings
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from polymodal.errors import ConfigError, PolymodalError

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


def _fail(message: str, code: int = 2) -> None:
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


def _device_option() -> typer.models.OptionInfo:
    return typer.Option(Device.auto, "--device",
                        help="auto (a GPU when there is one, else the CPU), cpu, cuda or mps.")


class _Verbosity:
    """This command's -q/-v: 0 quiet (errors and the final result), 1 normal, 2 verbose."""

    level = 1


class _StderrLog(logging.Handler):
    """With -v: polymodal's log records on stderr, except the API's INFO records, which
    repeat what its console lines already said."""

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno == logging.INFO and record.name.startswith("polymodal.api"):
            return
        err.print(f"[dim]{record.levelname.lower()}:[/] {record.getMessage()}",
                  highlight=False, soft_wrap=True)


_LOG_HANDLER = _StderrLog(logging.DEBUG)


def _set_verbosity(verbose: bool, quiet: bool) -> None:
    if verbose and quiet:
        _fail("pass -v/--verbose or -q/--quiet, not both")
    _Verbosity.level = 0 if quiet else 2 if verbose else 1
    log = logging.getLogger("polymodal")
    log.removeHandler(_LOG_HANDLER)
    log.setLevel(logging.DEBUG if verbose else logging.NOTSET)
    if verbose:
        log.addHandler(_LOG_HANDLER)


def _info(*objects, **kwargs) -> None:
    """Print what is not the command's final result (silenced by -q)."""
    if _Verbosity.level > 0:
        out.print(*objects, **kwargs)


_VERBOSITY_OPTIONS = (
    ("verbose", ("--verbose", "-v"), "Also print the library's debug messages."),
    ("quiet", ("--quiet", "-q"), "Print only errors and the final result (no progress bar)."),
)


def _command(group: typer.Typer, name: str, *, example: str):
    """Register the decorated function as command ``name`` of ``group``, with -v/-q added
    to its options and ``example`` at the end of its --help."""

    def register(func):
        signature = inspect.signature(func, eval_str=True)
        extra = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=bool,
                                   default=typer.Option(False, *flags, help=text))
                 for name, flags, text in _VERBOSITY_OPTIONS]

        @functools.wraps(func)
        def command(*args, verbose: bool = False, quiet: bool = False, **kwargs):
            _set_verbosity(verbose, quiet)
            return func(*args, **kwargs)

        command.__signature__ = signature.replace(
            parameters=[*signature.parameters.values(), *extra])
        command.__annotations__ = {**func.__annotations__, "verbose": bool, "quiet": bool}
        return group.command(name, epilog=f"Example: {example}")(command)

    return register


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


# ---------------------------------------------------------------------------- data


@_command(data_app, "inspect", example="polymodal data inspect train.csv --label price")
def data_inspect(
    table: str = typer.Argument(..., help="CSV/TSV/Parquet/JSONL file, image folder, or IDX file."),
    label: str | None = typer.Option(None, "--label", "-l", help="The column to predict."),
    column: list[str] = typer.Option(
        [], "--column", "-c", help="Override a column's modality: NAME=MODALITY (repeatable)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document instead."),
    check_files: bool = typer.Option(
        True, "--check-files/--no-check-files", help="Open every image/audio file to find unreadable ones."
    ),
) -> None:
    """Print the schema (each column's modality and why) and the cleaning report."""
    from polymodal.workflows.inspect import inspect_table, print_schema

    df, schema, report = inspect_table(table, label=label, columns=column, check_files=check_files)
    if as_json:
        doc = {
            "source": df.attrs.get("source", table),
            "rows": len(df),
            "read_notes": df.attrs.get("read_notes", []),
            "schema": schema.to_dict(),
            "cleaning": report.to_dict(),
        }
        sys.stdout.write(json.dumps(doc, indent=2, default=str) + "\n")
        return
    print_schema(out, df, schema, report, title=f"{table} — {len(df):,} rows × {df.shape[1]} columns")


# ------------------------------------------------------------------------ datasets


@_command(datasets_app, "list", example="polymodal datasets list")
def datasets_list() -> None:
    """List the built-in datasets and whether each is available here."""
    from polymodal import datasets

    table = Table(title="built-in datasets", title_justify="left")
    for col in ("name", "rows", "modalities", "available", "description"):
        table.add_column(col)
    for info in datasets.list_datasets():
        avail = "yes" if info.available else f"no — {info.how_to_install}"
        table.add_row(info.name, f"{info.rows:,}" if info.rows else "any",
                      ", ".join(info.modalities), avail, info.description)
    out.print(table)


@_command(datasets_app, "export",
          example="polymodal datasets export shapes data/shapes --n 500")
def datasets_export(
    name: str = typer.Argument(..., help="A built-in dataset (see `polymodal datasets list`)."),
    directory: Path = typer.Argument(..., help="Folder to write train.csv, test.csv and images/ into."),
    n: int | None = typer.Option(None, "--n", help="Number of rows (default: the whole dataset)."),
    seed: int = typer.Option(0, "--seed"),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a non-empty folder."),
) -> None:
    """Write a built-in dataset as CSV + image files, exactly like a user's own table."""
    from polymodal import datasets

    path = datasets.export(name, directory, n=n, seed=seed, overwrite=overwrite)
    out.print(f"wrote {path / 'train.csv'} and {path / 'test.csv'} (images under {path / 'images'})")


# ----------------------------------------------------------------------- predictor


def _print_frame(frame, *, title: str) -> None:
    table = Table(title=title, title_justify="left")
    for column in frame.columns:
        table.add_column(str(column))
    for row in frame.itertuples(index=False):
        table.add_row(*(f"{v:.4g}" if isinstance(v, float) else str(v) for v in row))
    out.print(table)


def _print_metrics(metrics: dict, *, title: str) -> None:
    import pandas as pd

    _print_frame(pd.DataFrame({"metric": list(metrics), "value": list(metrics.values())}), title=title)


@_command(app, "fit",
          example="polymodal fit train.csv --label price --out runs/price --time-limit 120")
def fit(
    table: str = typer.Argument(..., help="Training table: CSV/TSV/Parquet/JSONL file or image folder."),
    label: str = typer.Option(..., "--label", "-l", help="The column to predict."),
    out_dir: Path = typer.Option(..., "--out", "-o", help="Folder to save the fitted predictor in."),
    time_limit: float | None = typer.Option(None, "--time-limit", help="Seconds for the whole fit."),
    preset: str = typer.Option("fast", "--preset", help="fast or best."),
    column: list[str] = typer.Option(
        [], "--column", "-c", help="Override a column's modality: NAME=MODALITY (repeatable)."
    ),
    seed: int = typer.Option(0, "--seed"),
    problem_type: str = typer.Option("auto", "--problem-type", help="auto, binary, multiclass, regression or multilabel."),
    text_encoder: str = typer.Option("auto", "--text-encoder", help="auto, minilm, hashed or minilm+hashed."),
    image_augment: str = typer.Option(
        "none", "--image-augment",
        help="none, hflip (mirror training images: only when a mirrored image keeps its label) "
             'or JSON like \'{"hflip": true, "shift_px": 2}\'.'),
    set_: list[str] = typer.Option(
        [], "--set", help="Override a recipe field: KEY=VALUE, e.g. network.width=96 (repeatable; "
                          "the resolved recipe is in OUT/config.json)."),
    device: Device = _device_option(),
) -> None:
    """Train a predictor on TABLE and save it; prints the leaderboard and the chosen model."""
    budget = _budget(time_limit)  # counts from the command's start: imports, reading the table
    from polymodal.api import Predictor
    from polymodal.api.model_folder import check_output_folder
    from polymodal.api.params import parse_overrides

    check_output_folder(out_dir)  # before training, not after
    predictor = Predictor(
        label, problem_type=problem_type, time_limit=time_limit, preset=preset, seed=seed,
        columns=parse_overrides(column) or None, text_encoder=text_encoder,
        image_augment=_image_augment_option(image_augment),
        recipe=_set_options(set_) or None, verbosity=_Verbosity.level, device=device.value,
    )
    with _interrupted(out_dir, "training"):
        predictor.fit(table, budget=budget)
    path = _save(predictor, out_dir, "predictor")
    if _Verbosity.level > 0:
        _print_frame(predictor.leaderboard(), title="leaderboard (validation split)")
    out.print(f"chosen model: [bold]{predictor.chosen_}[/]; saved to {path}")


_command_start: float | None = None  # time.perf_counter() when the command began (main)


def _budget(time_limit: float | None):
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
def _interrupted(out_dir: Path, doing: str):
    """Ctrl-C while ``doing``: say what was saved (nothing: ``out_dir`` is as it was) and
    exit 130, the shell's status for SIGINT."""
    try:
        yield
    except KeyboardInterrupt:
        before = "what was there is unchanged" if out_dir.exists() else "it was not created"
        err.print(f"interrupted during {doing}: nothing was saved to {out_dir} ({before})",
                  highlight=False, soft_wrap=True)
        raise typer.Exit(130) from None


def _save(model, out_dir: Path, what: str) -> Path:
    """``model.save(out_dir)``; when the disk is full and someone is at the terminal, the
    fitted model stays in memory while they free space or name another folder."""
    from polymodal.api.model_folder import check_output_folder
    from polymodal.errors import DiskFullError

    while True:
        try:
            with _interrupted(out_dir, f"saving the {what}"):
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


def _set_options(items: list[str]) -> dict[str, str]:
    """``--set network.width=64 ...`` as ``{"network.width": "64"}`` (parsed by field type
    when the recipe is resolved)."""
    changes = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r} must be KEY=VALUE, e.g. --set network.width=64")
        changes[key.strip()] = value.strip()
    return changes


def _image_augment_option(value: str):
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


@_command(app, "predict", example="polymodal predict runs/price test.csv --out predictions.csv")
def predict(
    model_dir: Path = typer.Argument(..., help="Folder written by `polymodal fit`."),
    table: str = typer.Argument(..., help="Table to predict on (same columns as for training)."),
    out_file: Path = typer.Option(..., "--out", "-o", help="CSV to write the predictions to."),
    device: Device = _device_option(),
) -> None:
    """Predict every row of TABLE; keeps the row order and any ID column."""
    from polymodal.api import Predictor
    from polymodal.files import write_text
    from polymodal.workflows.outputs import check_output_file, prediction_frame

    check_output_file(out_file, table)
    frame = prediction_frame(Predictor.load(model_dir, device=device.value), table)
    write_text(out_file, frame.to_csv(index=False))
    out.print(f"wrote {len(frame):,} predictions to {out_file}")


@_command(app, "evaluate",
          example="polymodal evaluate runs/price test.csv --out runs/price/report")
def evaluate(
    model_dir: Path = typer.Argument(..., help="Folder written by `polymodal fit`."),
    table: str = typer.Argument(..., help="Labelled table to score the predictor on."),
    out_dir: Path | None = typer.Option(
        None, "--out", "-o", help="Folder for report.md/report.html (default: MODEL_DIR/report)."
    ),
    device: Device = _device_option(),
) -> None:
    """Score a saved predictor on TABLE and write the evaluation report."""
    from polymodal.api import Predictor
    from polymodal.workflows.outputs import evaluate_to_report

    report_dir = out_dir or model_dir / "report"
    command = f"polymodal evaluate {model_dir} {table} --out {report_dir}"
    report = evaluate_to_report(Predictor.load(model_dir, device=device.value), table, report_dir,
                                command=command)
    _print_metrics(report["metrics"], title=f"metrics on {table}")
    if "report_md" in report:
        out.print(f"report: {report['report_md']} and {report['report_html']}")


# ----------------------------------------------------------------------- generator

generate_app = typer.Typer(
    help="Train a conditional image generator on a table; sample and edit images.",
    no_args_is_help=True,
)
app.add_typer(generate_app, name="generate")


def _parse_conditions(items: list[str], prompts: list[str], n: int) -> tuple[dict, list | None, int]:
    """``col=value`` options and prompts -> (conditions, prompts, groups), each list
    expanded to ``n`` values: k values for a column (or k prompts) give k groups of n/k."""
    values: dict[str, list[str]] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            _fail(f"--condition {item!r} must look like COLUMN=VALUE, e.g. label=7")
        values.setdefault(name.strip(), []).append(value.strip())
    lists = [v for v in values.values()] + ([prompts] if prompts else [])
    groups = max((len(v) for v in lists), default=1)
    for v in lists:
        if len(v) not in (1, groups):
            _fail(f"give each condition 1 or {groups} values (got {len(v)}): one group of "
                  "images per value")
    if n % groups:
        _fail(f"-n {n} is not a multiple of the {groups} conditions/prompts given; pass -n "
              f"{groups * max(1, n // groups)}")

    def expand(v: list) -> list:
        return [x for x in v for _ in range(n // len(v))] if len(v) > 1 else v

    conditions = {k: expand(v) for k, v in values.items()}
    return conditions, (expand(prompts) if prompts else None), groups


@_command(generate_app, "fit",
          example="polymodal generate fit train.csv --image photo --condition label --out runs/gen --time-limit 300")
def generate_fit(
    table: str = typer.Argument(..., help="Training table: CSV/TSV/Parquet/JSONL file or image folder."),
    image: str = typer.Option("image", "--image", help="The image column to generate."),
    condition: list[str] = typer.Option(
        [], "--condition", help="A column to condition on (repeatable); none = unconditional."
    ),
    out_dir: Path = typer.Option(..., "--out", "-o", help="Folder to save the generator in."),
    time_limit: float | None = typer.Option(None, "--time-limit", help="Seconds for the whole fit."),
    preset: str = typer.Option("fast", "--preset", help="fast or best."),
    seed: int = typer.Option(0, "--seed"),
    column: list[str] = typer.Option(
        [], "--column", "-c", help="Override a column's modality: NAME=MODALITY (repeatable)."
    ),
    text_encoder: str = typer.Option("auto", "--text-encoder", help="auto, minilm, hashed or minilm+hashed."),
    image_size: int | None = typer.Option(None, "--image-size", help="Side of generated images."),
    steps: int | None = typer.Option(
        None, "--steps", min=1,
        help="Optimiser steps to train: the same --seed then gives the same generator, which "
             "--time-limit cannot promise (how many steps fit in it depends on the machine's "
             "load); with both, the time limit may stop it sooner."),
    set_: list[str] = typer.Option(
        [], "--set", help="Override a recipe field: KEY=VALUE, e.g. training.lr=1e-3 (repeatable; "
                          "the resolved recipe is in OUT/config.json)."),
    device: Device = _device_option(),
) -> None:
    """Train a generator on TABLE; OUT is replaced whole when it finishes (sample grids
    appear in a hidden .OUT.train-* folder beside it while it trains)."""
    import shutil

    from polymodal.api.generator import Generator

    budget = _budget(time_limit)  # counts from the command's start: imports, reading the table
    from polymodal.api.generator_folder import training_folder
    from polymodal.api.model_folder import check_output_folder
    from polymodal.api.params import parse_overrides

    check_output_folder(out_dir)  # before training, not after
    recipe = _set_options(set_)
    if steps is not None:
        recipe["training.max_steps"] = str(steps)
    generator = Generator(
        image, condition or None, time_limit=time_limit, preset=preset, seed=seed,
        columns=parse_overrides(column) or None, text_encoder=text_encoder, image_size=image_size,
        recipe=recipe or None, verbosity=_Verbosity.level, device=device.value,
    )
    # Checkpoints, log and grids go to a fresh hidden sibling while it trains; the fitted
    # generator then replaces --out whole, so a killed fit leaves the old folder as it was.
    train_dir = training_folder(out_dir)
    out.print(f"training in {train_dir} (sample grids in its samples/ folder)", highlight=False)
    try:
        with _interrupted(out_dir, "training"):
            generator.fit(table, out_dir=train_dir, budget=budget)
        path = _save(generator, out_dir, "generator")
    finally:
        shutil.rmtree(train_dir, ignore_errors=True)
    for name, info in generator.conditions_.items():
        classes = info.get("classes")
        shown = f": {', '.join(map(str, classes[:20]))}" if classes else ""
        _info(f"condition [bold]{name}[/] ({info['modality']}){shown}", highlight=False)
    out.print(f"saved to {path} (samples: {path / 'samples' / 'latest.png'})")


@_command(generate_app, "sample",
          example="polymodal generate sample runs/gen --condition label=7 -n 16 --out grid.png")
def generate_sample(
    model_dir: Path = typer.Argument(..., help="Folder written by `polymodal generate fit`."),
    out_path: Path = typer.Option(..., "--out", "-o", help="grid.png for one grid, or a folder for one PNG per image."),
    condition: list[str] = typer.Option(
        [], "--condition", help="COLUMN=VALUE (repeatable; several values of one column give one group each)."
    ),
    prompt: list[str] = typer.Option([], "--prompt", help="Text for the text condition (repeatable)."),
    n: int = typer.Option(16, "-n", "--n", help="Number of images."),
    steps: int | None = typer.Option(None, "--steps", help="Sampler steps (default: the model's)."),
    guidance: float | None = typer.Option(None, "--guidance", help="Guidance scale (1 = none)."),
    seed: int = typer.Option(0, "--seed"),
    device: Device = _device_option(),
) -> None:
    """Generate N images, optionally for given conditions or prompts."""
    from polymodal.api.generator import Generator
    from polymodal.workflows.media import write_images

    conditions, prompts, groups = _parse_conditions(condition, prompt, n)
    generator = Generator.load(model_dir, device=device.value)
    images = generator.sample(n, conditions=conditions or None, prompts=prompts,
                              num_steps=steps, guidance=guidance, seed=seed)
    out.print(f"wrote {write_images(images, out_path, ncols=n // groups if groups > 1 else None)}")


@_command(generate_app, "edit",
          example="polymodal generate edit runs/gen --image in.png --mask keep.png --out out.png")
def generate_edit(
    model_dir: Path = typer.Argument(..., help="Folder written by `polymodal generate fit`."),
    image: Path = typer.Option(..., "--image", help="The image to edit."),
    out_path: Path = typer.Option(..., "--out", "-o", help="PNG file to write."),
    mask: Path | None = typer.Option(
        None, "--mask", help="Inpainting mask: white = keep the pixel, black = fill it in."
    ),
    strength: float = typer.Option(0.5, "--strength", help="0 keeps the image, 1 redraws it."),
    condition: list[str] = typer.Option([], "--condition", help="COLUMN=VALUE (repeatable)."),
    prompt: list[str] = typer.Option([], "--prompt", help="Text for the text condition."),
    steps: int | None = typer.Option(None, "--steps"),
    guidance: float | None = typer.Option(None, "--guidance"),
    seed: int = typer.Option(0, "--seed"),
    device: Device = _device_option(),
) -> None:
    """Edit one image (SDEdit), or fill in the black part of --mask (inpainting)."""
    from polymodal.api.generator import Generator
    from polymodal.workflows.media import write_image

    conditions, prompts, _ = _parse_conditions(condition, prompt, 1)
    generator = Generator.load(model_dir, device=device.value)
    edited = generator.edit(str(image), strength=strength, conditions=conditions or None,
                            prompts=prompts, mask=None if mask is None else str(mask),
                            num_steps=steps, guidance=guidance, seed=seed)
    write_image(edited[0], out_path)
    out.print(f"wrote {out_path}")


@_command(generate_app, "evaluate",
          example="polymodal generate evaluate runs/gen test.csv --n-samples 500")
def generate_evaluate(
    model_dir: Path = typer.Argument(..., help="Folder written by `polymodal generate fit`."),
    table: str = typer.Argument(..., help="Real rows the generator was not trained on."),
    out_dir: Path | None = typer.Option(
        None, "--out", "-o", help="Folder for report.md/report.html (default: MODEL_DIR/evaluation)."
    ),
    judge: str | None = typer.Option(
        None, "--judge", help="A saved judge folder, or 'pixels' (default: train one on half of TABLE)."
    ),
    train_table: str | None = typer.Option(
        None, "--train-table", help="The training rows, for the memorisation check."
    ),
    n_samples: int = typer.Option(1000, "--n-samples", help="Images to generate and score."),
    steps: int | None = typer.Option(None, "--steps"),
    guidance: float | None = typer.Option(None, "--guidance"),
    seed: int = typer.Option(0, "--seed"),
    device: Device = _device_option(),
) -> None:
    """Score a saved generator against real images (FD, KID, precision/recall, accuracy, CAS)."""
    from polymodal.api.generator import Generator
    from polymodal.workflows.generator_eval import evaluate_generator

    generator = Generator.load(model_dir, device=device.value)
    report_dir = out_dir or model_dir / "evaluation"
    metrics = evaluate_generator(generator, table, judge=judge, n_samples=n_samples,
                                 num_steps=steps, guidance=guidance, seed=seed,
                                 train_table=train_table, out_dir=report_dir)
    numbers = {k: v for k, v in metrics.items()
               if isinstance(v, int | float) and not isinstance(v, bool)}
    _print_metrics(numbers, title=f"generator metrics on {table}")
    if metrics.get("skipped"):
        _info(f"skipped: {metrics['skipped']}", highlight=False)
    if "report_md" in metrics:
        out.print(f"report: {metrics['report_md']} and {metrics['report_html']}")


# ------------------------------------------------------------------------ augment


@_command(app, "augment",
          example="polymodal augment train.csv --label label --out augmented --per-class 50")
def augment(
    table: str = typer.Argument(..., help="Training table: CSV/TSV/Parquet/JSONL file or image folder."),
    label: str = typer.Option(..., "--label", "-l", help="The class column to generate images for."),
    out_dir: Path = typer.Option(..., "--out", "-o", help="New folder for augmented.csv, images/ and the summary."),
    image: str | None = typer.Option(None, "--image", help="The image column (default: the table's only one)."),
    per_class: int | None = typer.Option(None, "--per-class", help="Synthetic images per class (rarest classes first)."),
    ratio: float | None = typer.Option(None, "--ratio", help="Synthetic images per real row (default 1.0)."),
    generator: Path | None = typer.Option(None, "--generator", help="A saved generator folder to reuse."),
    time_limit: float | None = typer.Option(
        None, "--time-limit", help="Seconds for the whole command: training the generator, "
                                   "sampling, writing (--compare's predictors have "
                                   "--fit-time-limit each)."),
    filter_: bool = typer.Option(False, "--filter/--no-filter", help="Drop samples a real-data judge does not recognise as their class."),
    compare: bool = typer.Option(False, "--compare", help="Hold out real rows; score a real-only vs an augmented predictor on them."),
    fit_time_limit: float = typer.Option(60.0, "--fit-time-limit", help="Seconds for each predictor with --compare."),
    set_: list[str] = typer.Option(
        [], "--set", help="With --compare: override a recipe field of both predictors, KEY=VALUE "
                          "as in `polymodal fit --set` (repeatable)."),
    marker: str = typer.Option("is_synthetic", "--marker", help="Boolean column that marks synthetic rows."),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Add generated images of each class to TABLE (balancing rare classes first)."""
    budget = _budget(time_limit)
    from polymodal.workflows.augment_folder import augment_to_folder

    if per_class is not None and ratio is not None:
        _fail("pass --per-class or --ratio, not both")
    summary = augment_to_folder(
        table, out_dir, label=label, compare=compare, fit_time_limit=fit_time_limit,
        fit_recipe=_set_options(set_) or None,
        image=image, per_class=per_class, ratio=ratio,
        generator=None if generator is None else str(generator), time_limit=time_limit,
        filter=filter_, marker=marker, seed=seed, verbosity=min(_Verbosity.level, 1),
        budget=budget,
    )
    if _Verbosity.level > 0:
        _print_frame(_per_class_frame(summary["per_class"]), title=f"synthetic rows per class of {label!r}")
    if summary.get("compare"):
        c = summary["compare"]
        metric = c["metric"]
        out.print(f"held-out {metric}: real-only {c['real_only']['metrics'][metric]:.4f}, "
                  f"real + synthetic {c['augmented']['metrics'][metric]:.4f} "
                  f"(lift {c['lift']:+.4f}, {c['num_test_rows']} held-out rows)")
    out.print(f"wrote {summary['out_dir']}/augmented.csv ({summary['num_real']:,} real + "
              f"{summary['num_synthetic']:,} synthetic rows) and augment_summary.json")


def _per_class_frame(per_class: dict):
    """The summary's per-class counts as a table, one row per class."""
    import pandas as pd

    return pd.DataFrame([{"class": c, **counts} for c, counts in per_class.items()])


# --------------------------------------------------------------------------- serve


@_command(app, "serve", example="polymodal serve runs/price runs/gen --port 8000")
def serve(
    model_dirs: list[Path] = typer.Argument(..., help="Model folders (Predictor or Generator) to serve."),
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to bind; 0.0.0.0 exposes the models to the network."),
    port: int = typer.Option(8000, "--port", help="TCP port."),
    name: list[str] = typer.Option([], "--name", help="A model's name in URLs, one per folder in order (default: folder names)."),
    workers: int = typer.Option(1, "--workers", help="Inference threads."),
    max_queue: int = typer.Option(8, "--max-queue", help="Requests that may wait for a worker before others get 503."),
    device: Device = _device_option(),
    allow_host: list[str] = typer.Option([], "--allow-host", help="Another name clients reach the server by (Host header), beyond localhost and --host; '*' allows any."),
    cors_origin: list[str] = typer.Option([], "--cors-origin", help="An origin whose web pages may call the API, e.g. http://localhost:3000 (default: none)."),
) -> None:
    """Serve models over HTTP with a web page at /, until Ctrl+C (which lets running requests finish)."""
    from polymodal.serve import ServeLimits, run_server

    def ready(models) -> None:
        for served in models.values():
            _info(f"serving {served.kind} [bold]{served.name}[/] from {served.path}")
        shown = f"[{host}]" if ":" in host else host
        out.print(f"web page and API on http://{shown}:{port}/ (API docs at /docs)")
        if host in ("0.0.0.0", "::") and not allow_host:
            out.print("note: requests that name this machine by another name or address get "
                      "400; add --allow-host NAME for each name clients use")

    limits = ServeLimits(max_workers=workers, max_queue=max_queue)
    log_level = ("warning", "info", "debug")[_Verbosity.level]
    run_server(model_dirs, host=host, port=port, names=name or None, limits=limits,
               allow_hosts=allow_host, cors_origins=cors_origin, on_ready=ready,
               device=device.value, log_level=log_level)


@_command(app, "export", example="polymodal export runs/price --format onnx --out deploy/price")
def export(
    model_dir: Path = typer.Argument(..., help="A model folder (Predictor or Generator)."),
    out_dir: Path = typer.Option(..., "--out", "-o", help="Folder to write the export to."),
    format: str = typer.Option("onnx", "--format", help="onnx (the only format so far)."),
    force: bool = typer.Option(False, "--force", help="Replace an earlier export in --out."),
) -> None:
    """Export a saved model as ONNX graphs with a numpy runtime.py that needs no torch:
    a predictor scores raw rows, a generator samples images (see OUT/README.md)."""
    from polymodal.workflows.export import export_model

    kind, path = export_model(model_dir, out_dir, format=format, force=force)
    out.print(f"exported the {kind} to {path} (usage in {path / 'README.md'})", soft_wrap=True)


@_command(app, "inspect-model", example="polymodal inspect-model runs/price")
def inspect_model(
    model_dir: Path = typer.Argument(..., help="A model folder (Predictor or Generator)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document instead."),
) -> None:
    """List a model folder's files, kinds and versions, and whether it would load — without
    loading it. Loading a folder never runs code from it; exit 2 when it would be refused."""
    from polymodal.api.model_folder import inspect_folder

    report = inspect_folder(model_dir)
    if as_json:
        out.print_json(json.dumps(report.to_dict()))
    else:
        out.print(f"[bold]{report.path}[/]: {report.kind or 'unknown'} model, format_version "
                  f"{report.format_version or 'missing'}")
        if report.versions:
            out.print("written with " + ", ".join(f"{k} {v}" for k, v in report.versions.items()),
                      highlight=False)
        width = max((len(f.path) for f in report.files), default=0)
        for f in report.files:
            out.print(f"  {f.path:<{width}}  {f.size_bytes:>11,} B  {f.kind:<11}  {f.detail}",
                      highlight=False, soft_wrap=True)
            if f.problem:
                out.print(f"  [bold red]refused:[/] {f.problem}", highlight=False, soft_wrap=True)
        for note in report.notes:
            out.print(f"note: {note}", highlight=False)
        out.print("loads as data, runs no code: " + ("yes" if report.loadable else "[bold red]no[/]"))
    if not report.loadable:
        raise typer.Exit(2)


# ---------------------------------------------------------------------------- demo


@_command(app, "demo", example="polymodal demo --time-limit 300 --out demo-out")
def demo(
    out_dir: Path = typer.Option(Path("demo-out"), "--out", help="Where the demo writes its files."),
    dataset: str = typer.Option("shapes", "--dataset", help="shapes (text-to-image) or fashion-mnist."),
    time_limit: float = typer.Option(
        200.0, "--time-limit", help="Seconds for the whole demo; the predictor, generator and "
                                    "augmentation each train in a share of the time left."
    ),
    n_rows: int | None = typer.Option(None, "--n-rows", help="Rows of the table (default: 1,500 shapes / 12,000 Fashion-MNIST)."),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """The main job on built-in data: inspect, predict, generate, edit, evaluate, augment, report."""
    from polymodal.workflows.demo import run_demo

    console = out if _Verbosity.level > 0 else Console(quiet=True)
    result = run_demo(out_dir=out_dir, dataset=dataset, time_limit_s=time_limit, n_rows=n_rows,
                      seed=seed, console=console)
    if _Verbosity.level == 0:
        out.print(f"report: {result.out_dir / 'report.html'}", highlight=False)


@_command(app, "version", example="polymodal version")
def version() -> None:
    """Print polymodal's version and its main dependencies'."""
    from polymodal import versions

    for k, v in versions().items():
        out.print(f"{k} {v}")


def _usage_errors() -> tuple[type, ...]:
    """Click's usage-error class, and typer's own copy of it (typer 0.2x vendors click)."""
    import click

    vendored = [c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException"]
    return (click.exceptions.ClickException, *vendored)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A warning (rows skipped, cells read as missing, ...) as one line on stderr."""
    err.print(f"[yellow]warning:[/] {message}", highlight=False, soft_wrap=True)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app, turning user errors into one line and a non-zero exit."""
    global _command_start
    # The console script (no argv): the whole process counts against --time-limit.
    _command_start = _process_start() if argv is None else time.perf_counter()
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
            err.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            sys.exit(2)
        raise
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
