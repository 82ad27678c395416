"""``polymodal data inspect`` and ``polymodal datasets list|export``: looking at a table
before training on it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from rich.table import Table

from polymodal.cli.common import (
    command,
    data_app,
    datasets_app,
    out,
)


@command(data_app, "inspect", example="polymodal data inspect train.csv --label price")
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


@command(datasets_app, "list", example="polymodal datasets list")
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


@command(datasets_app, "export",
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
