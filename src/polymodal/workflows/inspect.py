"""Look at a table before training on it: the schema with reasons and the cleaning report.

Shared by ``polymodal data inspect`` and the demo.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from polymodal.data.cleaning import CleaningReport, clean_report
from polymodal.data.readers import read_table
from polymodal.data.schema import Schema, infer_schema, parse_overrides


def inspect_table(source, *, label: str | None, columns: list[str] | None = None,
                  check_files: bool = True):
    """``(table, schema, cleaning report)`` for a path or DataFrame; ``columns`` are
    ``NAME=MODALITY`` overrides."""
    df = source if not isinstance(source, str | Path) else read_table(source)
    schema = infer_schema(df, label=label, overrides=parse_overrides(list(columns or [])))
    report = clean_report(df, schema, check_files=check_files)
    return df, schema, report


def print_schema(console: Console, df, schema: Schema, report: CleaningReport, *,
                 title: str) -> None:
    """Each column's modality and why, the problem type, read notes and cleaning findings."""
    table = Table(title=title, title_justify="left", show_lines=False)
    table.add_column("column", style="bold")
    table.add_column("modality", style="cyan")
    table.add_column("why")
    for name, modality, reason in schema.summary_rows():
        mark = " (label)" if name == schema.label else ""
        table.add_row(name + mark, modality, reason)
    console.print(table)
    if schema.label is not None:
        console.print(f"[bold]problem:[/] {schema.problem_type} — {schema.problem_reason}")
    for note in df.attrs.get("read_notes", []):
        console.print(f"[yellow]read:[/] {note}")
    issues = report.issues
    if issues:
        console.print(f"[bold]cleaning report[/] ({len(issues)} finding"
                      f"{'s' if len(issues) != 1 else ''}):")
        for line in issues:
            console.print(f"  • {line}", highlight=False)
    else:
        console.print("[bold]cleaning report:[/] nothing to report")
