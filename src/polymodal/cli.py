"""The ``polymodal`` command: thin commands over the Python API.

User mistakes (any :class:`polymodal.errors.PolymodalError`) print one line to stderr
and exit with status 2; nothing a user can cause prints a traceback. Heavy modules are
imported inside commands so ``polymodal --help`` stays fast.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from polymodal.errors import PolymodalError

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


# ---------------------------------------------------------------------------- data


def _inspect(source, *, label: str | None, columns: list[str], check_files: bool):
    """Read, infer and clean-check one table; shared by `data inspect` and `demo`."""
    from polymodal.data.cleaning import clean_report
    from polymodal.data.readers import read_table
    from polymodal.data.schema import infer_schema, parse_overrides

    df = source if not isinstance(source, str | Path) else read_table(source)
    schema = infer_schema(df, label=label, overrides=parse_overrides(columns))
    report = clean_report(df, schema, check_files=check_files)
    return df, schema, report


def _print_schema(df, schema, report, *, title: str) -> None:
    table = Table(title=title, title_justify="left", show_lines=False)
    table.add_column("column", style="bold")
    table.add_column("modality", style="cyan")
    table.add_column("why")
    for name, modality, reason in schema.summary_rows():
        mark = " (label)" if name == schema.label else ""
        table.add_row(name + mark, modality, reason)
    out.print(table)
    if schema.label is not None:
        out.print(f"[bold]problem:[/] {schema.problem_type} — {schema.problem_reason}")
    for note in df.attrs.get("read_notes", []):
        out.print(f"[yellow]read:[/] {note}")
    issues = report.issues
    if issues:
        out.print(f"[bold]cleaning report[/] ({len(issues)} finding{'s' if len(issues) != 1 else ''}):")
        for line in issues:
            out.print(f"  • {line}", highlight=False)
    else:
        out.print("[bold]cleaning report:[/] nothing to report")


@data_app.command("inspect")
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
    df, schema, report = _inspect(table, label=label, columns=column, check_files=check_files)
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
    _print_schema(df, schema, report, title=f"{table} — {len(df):,} rows × {df.shape[1]} columns")


# ------------------------------------------------------------------------ datasets


@datasets_app.command("list")
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


@datasets_app.command("export")
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


@app.command("fit")
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
    text_encoder: str = typer.Option("auto", "--text-encoder", help="auto, minilm or hashed."),
) -> None:
    """Train a predictor on TABLE and save it; prints the leaderboard and the chosen model."""
    from polymodal.api import Predictor
    from polymodal.data.schema import parse_overrides

    predictor = Predictor(
        label, problem_type=problem_type, time_limit=time_limit, preset=preset, seed=seed,
        columns=parse_overrides(column) or None, text_encoder=text_encoder,
    ).fit(table)
    path = predictor.save(out_dir)
    _print_frame(predictor.leaderboard(), title="leaderboard (validation split)")
    out.print(f"chosen model: [bold]{predictor.chosen_}[/]; saved to {path}")


def _prediction_frame(predictor, df):
    """ID-like columns of the input, the prediction, and one probability column per class."""
    import pandas as pd

    schema = predictor.schema_
    ids = [c for c, col in schema.columns.items()
           if col.modality == "ignored" and "ID-like" in col.reason and c in df.columns]
    frame = df[ids].reset_index(drop=True).copy()
    predictions = predictor.predict(df).reset_index(drop=True)
    if predictor.problem_type_ == "multilabel":
        delimiter = schema.columns[schema.label].delimiter or "|"
        predictions = predictions.map(lambda tags: delimiter.join(map(str, tags)))
    frame["prediction"] = predictions
    if predictor.problem_type_ != "regression":
        proba = predictor.predict_proba(df).reset_index(drop=True)
        frame = pd.concat([frame, proba.add_prefix("proba_")], axis=1)
    return frame


@app.command("predict")
def predict(
    model_dir: Path = typer.Argument(..., help="Folder written by `polymodal fit`."),
    table: str = typer.Argument(..., help="Table to predict on (same columns as for training)."),
    out_file: Path = typer.Option(..., "--out", "-o", help="CSV to write the predictions to."),
) -> None:
    """Predict every row of TABLE; keeps the row order and any ID column."""
    from polymodal.api import Predictor
    from polymodal.data.readers import read_table
    from polymodal.files import write_text

    predictor = Predictor.load(model_dir)
    frame = _prediction_frame(predictor, read_table(table))
    write_text(out_file, frame.to_csv(index=False))
    out.print(f"wrote {len(frame):,} predictions to {out_file}")


@app.command("evaluate")
def evaluate(
    model_dir: Path = typer.Argument(..., help="Folder written by `polymodal fit`."),
    table: str = typer.Argument(..., help="Labelled table to score the predictor on."),
    out_dir: Path | None = typer.Option(
        None, "--out", "-o", help="Folder for report.md/report.html (default: MODEL_DIR/report)."
    ),
) -> None:
    """Score a saved predictor on TABLE and write the evaluation report."""
    from polymodal.api import Predictor
    from polymodal.data.readers import read_table

    predictor = Predictor.load(model_dir)
    df = read_table(table)
    try:
        from polymodal.evaluate.report import write_predictor_report
    except ImportError:  # the report module is optional; the metrics are not
        write_predictor_report = None
    if write_predictor_report is None:
        _print_metrics(predictor.evaluate(df), title=f"metrics on {table}")
        return
    report_dir = out_dir or model_dir / "report"
    command = f"polymodal evaluate {model_dir} {table} --out {report_dir}"
    report = write_predictor_report(predictor, df, report_dir, command=command)
    _print_metrics(report["metrics"], title=f"metrics on {table}")
    out.print(f"report: {report['report_md']} and {report['report_html']}")


# ---------------------------------------------------------------------------- demo


@app.command("demo")
def demo(
    out_dir: Path = typer.Option(Path("demo-out"), "--out", help="Where the demo writes its files."),
    n_shapes: int = typer.Option(400, "--n-shapes", help="Rows of the rendered `shapes` table."),
) -> None:
    """The main job on built-in data: inspect each dataset and show decoded samples."""
    from polymodal.demo import run_demo

    run_demo(out_dir=out_dir, n_shapes=n_shapes, console=out)


@app.command("version")
def version() -> None:
    """Print polymodal's version and its main dependencies'."""
    from polymodal import versions

    for k, v in versions().items():
        out.print(f"{k} {v}")


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app, turning user errors into one line and a non-zero exit."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
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
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        if isinstance(exc, FileNotFoundError | PermissionError | IsADirectoryError):
            err.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            sys.exit(2)
        raise
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
