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
