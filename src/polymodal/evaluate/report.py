"""Reports as Markdown and self-contained HTML, from one list of sections.

:class:`Document` is a tiny document model: headings, paragraphs, warnings, bullet
lists, code blocks, tables (DataFrames) and images (PNG bytes with a caption). It
renders to Markdown, with the images written as PNG files beside it, and to one HTML
file that needs nothing else: images are embedded as base64 ``data:`` URIs, the CSS is
inline, there are no scripts and no network references, so the file can be mailed or
opened offline. In HTML, a table of contents links to every section, and each section
(a level-2 heading and what follows it) is a ``<details>`` element that folds away. The
predictor report (:func:`write_predictor_report`), the generator's report and the demo
report are all built from it.

Every file is written atomically (:mod:`polymodal.files`).
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import html
import json
import math
import numbers
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from polymodal.evaluate import plots
from polymodal.evaluate.explain import (
    as_table,
    label_targets,
    modality_ablation,
    permutation_importance,
    predictor_outputs,
    primary_metric,
)
from polymodal.files import write_bytes, write_text

# Tables longer than this show their first rows and say how many were left out.
DEFAULT_MAX_TABLE_ROWS = 50
# Metrics scored on fewer rows carry a warning: below 100 one row moves accuracy by more
# than a point, and the standard error of an accuracy near 0.9 is 3 points or more.
MIN_ROWS_FOR_METRICS = 100
_SAFE_FILENAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*\.png$")

# --------------------------------------------------------------------------- document model


@dataclass
class Heading:
    """A section title; level 2 for sections, 3-4 below (level 1 is the document title).

    In HTML a level-2 heading opens a section that folds away; ``collapsed`` ones start
    folded (for reference material such as a full config)."""

    text: str
    level: int = 2
    collapsed: bool = False


@dataclass
class Paragraph:
    """Plain text; nothing in it is read as markup."""

    text: str


@dataclass
class Caution:
    """A warning the reader must not miss (e.g. metrics on too few rows to trust)."""

    text: str


@dataclass
class BulletList:
    """Plain-text items."""

    items: list[str]


@dataclass
class CodeBlock:
    """Preformatted text (a command, a JSON config), shown verbatim."""

    text: str
    language: str = ""


@dataclass
class Table:
    """A DataFrame's columns and first ``max_rows`` rows (its index is not shown)."""

    frame: pd.DataFrame
    caption: str | None = None
    max_rows: int = DEFAULT_MAX_TABLE_ROWS


@dataclass
class Figure:
    """A PNG with a caption; ``filename`` is the file the Markdown links to."""

    png: bytes
    caption: str
    filename: str


Section = Heading | Paragraph | Caution | BulletList | CodeBlock | Table | Figure


def format_cell(value) -> str:
    """One table cell as text: floats to 4 significant digits, missing values as an en dash."""
    if value is None:
        return "–"
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        value = float(value)
        if math.isnan(value):
            return "–"
        return f"{value:.4g}"
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, default=str)
    return str(value)


def _md_cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


class Document:
    """An ordered list of sections that renders to Markdown and to self-contained HTML.

    Example::

        doc = Document("Digits predictor")
        doc.add_heading("Metrics")
        doc.add_table(metrics_frame, caption="Test rows")
        doc.add_image(png_bytes, "Confusion matrix", filename="confusion_matrix.png")
        md_path, html_path = doc.write("runs/digits/report")
    """

    def __init__(self, title: str):
        self.title = str(title)
        self.sections: list[Section] = []

    # ------------------------------------------------------------------ building

    def add_heading(self, text: str, *, level: int = 2, collapsed: bool = False) -> Document:
        """A section heading; level 2 for sections, 3 for subsections (level 1 is the title).

        ``collapsed``: in HTML, the level-2 section starts folded."""
        if level not in (2, 3, 4):
            raise ValueError(f"heading level must be 2, 3 or 4 (1 is the title); got {level!r}")
        self.sections.append(Heading(str(text), level, collapsed))
        return self

    def add_text(self, text: str) -> Document:
        """A paragraph of plain text (no markup is interpreted)."""
        self.sections.append(Paragraph(str(text)))
        return self

    def add_warning(self, text: str) -> Document:
        """A caution shown so that it stands out (plain text, as a paragraph)."""
        self.sections.append(Caution(str(text)))
        return self

    def add_list(self, items) -> Document:
        """A bullet list of plain-text items."""
        self.sections.append(BulletList([str(i) for i in items]))
        return self

    def add_code(self, text: str, *, language: str = "") -> Document:
        """A preformatted block (a command, a JSON config)."""
        self.sections.append(CodeBlock(str(text), language))
        return self

    def add_table(
        self,
        frame: pd.DataFrame,
        *,
        caption: str | None = None,
        max_rows: int = DEFAULT_MAX_TABLE_ROWS,
    ) -> Document:
        """A table of the frame's columns (the index is not shown; reset it to keep it)."""
        self.sections.append(Table(frame, caption, max_rows))
        return self

    def add_image(self, png: bytes, caption: str, *, filename: str | None = None) -> Document:
        """A PNG figure with a caption; ``filename`` is the file Markdown links to."""
        if not png.startswith(b"\x89PNG\r\n\x1a\n"):
            raise ValueError(f"add_image needs PNG bytes; got {png[:8]!r}... for {caption!r}")
        taken = {s.filename for s in self.sections if isinstance(s, Figure)}
        if filename is None:
            filename = f"figure_{len(taken) + 1}.png"
        if not _SAFE_FILENAME.match(filename):
            raise ValueError(
                f"image filename {filename!r} must be a plain name like 'calibration.png' "
                "(letters, digits, '.', '_', '-'; no folders)"
            )
        if filename in taken:
            raise ValueError(f"image filename {filename!r} is used twice in {self.title!r}")
        self.sections.append(Figure(png, str(caption), filename))
        return self

    # ------------------------------------------------------------------ markdown

    def to_markdown(self, out_dir: str | os.PathLike | None = None) -> str:
        """The document as Markdown; images are linked by file name.

        With ``out_dir``, each image is also written there (atomically), so the links of a
        ``report.md`` saved in ``out_dir`` resolve.
        """
        lines = [f"# {self.title}", ""]
        for section in self.sections:
            lines += _section_markdown(section)
            lines.append("")
            if out_dir is not None and isinstance(section, Figure):
                write_bytes(Path(out_dir) / section.filename, section.png)
        return "\n".join(lines).rstrip() + "\n"

    # ------------------------------------------------------------------ html

    def to_html(self) -> str:
        """The document as one self-contained HTML page (inline CSS, data-URI images, no
        scripts): a table of contents, then each section in a ``<details>`` element."""
        anchors = _anchors([s.text for s in self.sections
                            if isinstance(s, Heading) and s.level == 2])
        parts, toc, open_section = [], [], False
        for section in self.sections:
            if isinstance(section, Heading) and section.level == 2:
                anchor = anchors.pop(0)
                toc.append(f'<li><a href="#{anchor}">{html.escape(section.text)}</a></li>')
                if open_section:
                    parts.append("</details>")
                state = "" if section.collapsed else " open"
                parts.append(f'<details id="{anchor}"{state}><summary>'
                             f"{_section_html(section)}</summary>")
                open_section = True
            else:
                parts.append(_section_html(section))
        if open_section:
            parts.append("</details>")
        contents = (f'<nav class="toc" aria-label="Contents"><h2>Contents</h2><ol>{"".join(toc)}'
                    "</ol></nav>") if len(toc) > 1 else ""
        return _HTML_PAGE.format(title=html.escape(self.title), css=_CSS, contents=contents,
                                 body="\n".join(parts))

    def write(self, out_dir: str | os.PathLike, *, stem: str = "report") -> tuple[Path, Path]:
        """Write ``<stem>.md`` (+ its PNGs) and ``<stem>.html`` into ``out_dir``; return both paths."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        md_path = write_text(out_dir / f"{stem}.md", self.to_markdown(out_dir))
        html_path = write_text(out_dir / f"{stem}.html", self.to_html())
        return md_path, html_path


def _anchors(titles: list[str]) -> list[str]:
    """A distinct HTML id per section title: ``"1. The data"`` -> ``"the-data"``."""
    anchors: list[str] = []
    for title in titles:
        words = re.sub(r"^[\d\s.]+", "", title.lower())  # "1. The data" -> "the data"
        slug = candidate = re.sub(r"[^a-z0-9]+", "-", words).strip("-") or "section"
        repeat = 1
        while candidate in anchors:
            repeat += 1
            candidate = f"{slug}-{repeat}"
        anchors.append(candidate)
    return anchors


def config_table(config: dict) -> pd.DataFrame:
    """A nested config as ``setting`` (dotted path) / ``value`` rows, for a report to show
    instead of a JSON dump."""
    rows = []

    def walk(prefix: str, value) -> None:
        if isinstance(value, dict) and value:
            for key, inner in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), inner)
        else:
            rows.append({"setting": prefix, "value": format_cell(value)})

    walk("", config)
    return pd.DataFrame(rows, columns=["setting", "value"])


def small_sample_warning(n: int, minimum: int, *, unit: str, what: str) -> str | None:
    """A warning when ``what`` was measured on ``n`` < ``minimum`` ``unit``; else None."""
    if n >= minimum:
        return None
    return (f"{what} rest on only {n:,} {unit} (fewer than {minimum:,}): at this size they "
            "move with the draw of the data as much as with the model, so they are "
            "unreliable; score more to compare models.")


def _visible_rows(table: Table) -> tuple[pd.DataFrame, int]:
    frame = table.frame
    hidden = max(0, len(frame) - table.max_rows)
    return frame.iloc[: table.max_rows], hidden


def _section_markdown(section: Section) -> list[str]:
    if isinstance(section, Heading):
        return ["#" * section.level + " " + section.text]
    if isinstance(section, Paragraph):
        return [section.text]
    if isinstance(section, Caution):
        return [f"> **Warning:** {section.text}"]
    if isinstance(section, BulletList):
        return [f"- {item}" for item in section.items] or ["- (none)"]
    if isinstance(section, CodeBlock):
        fence = "````" if "```" in section.text else "```"
        return [fence + section.language, section.text.rstrip("\n"), fence]
    if isinstance(section, Table):
        frame, hidden = _visible_rows(section)
        lines = [f"*{section.caption}*", ""] if section.caption else []
        lines.append("| " + " | ".join(_md_cell(str(c)) for c in frame.columns) + " |")
        lines.append("|" + "---|" * len(frame.columns))
        for row in frame.itertuples(index=False):
            lines.append("| " + " | ".join(_md_cell(format_cell(v)) for v in row) + " |")
        if hidden:
            lines += ["", f"... and {hidden:,} more rows"]
        return lines
    if isinstance(section, Figure):
        alt = section.caption.replace("]", ")").replace("[", "(")
        return [f"![{alt}]({section.filename})", "", f"*{section.caption}*"]
    raise TypeError(f"unknown section {section!r}")


_INLINE_CODE = re.compile(r"`([^`]+)`")
_BOLD = re.compile(r"\*\*([^*]+)\*\*")


def _inline_html(text: str) -> str:
    """Escape text, then render the two Markdown inlines paragraphs use: `code` and **bold**."""
    escaped = html.escape(str(text))
    escaped = _INLINE_CODE.sub(r"<code>\1</code>", escaped)
    return _BOLD.sub(r"<strong>\1</strong>", escaped)


def _section_html(section: Section) -> str:
    esc = html.escape
    if isinstance(section, Heading):
        return f"<h{section.level}>{esc(section.text)}</h{section.level}>"
    if isinstance(section, Paragraph):
        return f"<p>{_inline_html(section.text)}</p>"
    if isinstance(section, Caution):
        return (f'<p class="warning" role="note"><strong>Warning:</strong> '
                f"{_inline_html(section.text)}</p>")
    if isinstance(section, BulletList):
        items = "".join(f"<li>{_inline_html(i)}</li>" for i in section.items) or "<li>(none)</li>"
        return f"<ul>{items}</ul>"
    if isinstance(section, CodeBlock):
        return f"<pre><code>{esc(section.text)}</code></pre>"
    if isinstance(section, Table):
        frame, hidden = _visible_rows(section)
        caption = f"<caption>{esc(section.caption)}</caption>" if section.caption else ""
        head = "".join(f"<th>{esc(str(c))}</th>" for c in frame.columns)
        numeric = [
            pd.api.types.is_numeric_dtype(frame[c].dtype)
            and not pd.api.types.is_bool_dtype(frame[c].dtype)
            for c in frame.columns
        ]
        rows = "".join(
            "<tr>"
            + "".join(
                f'<td class="num">{esc(format_cell(v))}</td>'
                if is_num
                else f"<td>{esc(format_cell(v))}</td>"
                for v, is_num in zip(row, numeric, strict=True)
            )
            + "</tr>"
            for row in frame.itertuples(index=False)
        )
        more = f'<p class="note">... and {hidden:,} more rows</p>' if hidden else ""
        table = f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
        return f'<div class="table">{table}{more}</div>'
    if isinstance(section, Figure):
        data = base64.b64encode(section.png).decode("ascii")
        return (
            f'<figure><img src="data:image/png;base64,{data}" alt="{esc(section.caption)}">'
            f"<figcaption>{esc(section.caption)}</figcaption></figure>"
        )
    raise TypeError(f"unknown section {section!r}")


_CSS = """
body { font-family: -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       color: #222; background: #fafafa; margin: 0; line-height: 1.5; }
main { max-width: 960px; margin: 0 auto; padding: 24px 32px 48px; background: #fff;
       box-shadow: 0 0 12px rgba(0,0,0,0.06); min-height: 100vh; }
h1 { font-size: 1.7em; border-bottom: 2px solid #3b6ea8; padding-bottom: 6px; }
h2 { font-size: 1.3em; margin-top: 1.8em; color: #2c4f7a; border-bottom: 1px solid #e3e7ec; }
h3 { font-size: 1.1em; margin-top: 1.3em; }
.table { overflow-x: auto; margin: 12px 0; }
table { border-collapse: collapse; font-size: 0.9em; }
caption { text-align: left; font-style: italic; color: #555; padding-bottom: 4px; }
th, td { border: 1px solid #dde2e8; padding: 4px 10px; text-align: left; vertical-align: top; }
th { background: #f0f4f8; }
tbody tr:nth-child(even) { background: #fafbfc; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 16px 0; display: inline-block; vertical-align: top; max-width: 100%; }
figure img { max-width: 100%; border: 1px solid #e3e7ec; }
figcaption { font-size: 0.88em; color: #555; margin-top: 4px; }
p code, li code { background: #f0f2f5; padding: 0 3px; border-radius: 3px; font-size: 90%; }
pre { background: #f5f7f9; border: 1px solid #e3e7ec; padding: 10px; overflow-x: auto;
      font-size: 0.85em; }
.note { color: #666; font-size: 0.88em; }
.warning { background: #fff8e6; border-left: 4px solid #d99a00; padding: 8px 12px; }
nav.toc { background: #f5f7f9; border: 1px solid #e3e7ec; padding: 4px 16px; margin: 16px 0; }
nav.toc h2 { font-size: 1.05em; margin: 8px 0 4px; border: 0; }
nav.toc ol { margin: 4px 0 8px; }
details > summary { cursor: pointer; }
details > summary > h2 { display: inline-block; margin-bottom: 0.4em; }
"""

_HTML_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{css}</style>
</head>
<body>
<main>
<h1>{title}</h1>
{contents}
{body}
</main>
</body>
</html>
"""


# --------------------------------------------------------------------------- predictor report


def _scalar_metrics(metrics: dict) -> tuple[dict[str, float], dict[str, float]]:
    """Split ``evaluate()``'s dict into headline numbers and per-label F1.

    Per-label F1 comes as ``f1[tag]`` keys (:func:`~polymodal.evaluate.metrics.multilabel_metrics`)
    or as one dict-valued entry; anything else that is not a number is left out.
    """
    headline, per_label = {}, {}
    for key, value in metrics.items():
        if isinstance(value, dict) and "f1" in str(key):  # {"per_label_f1": {tag: f1}}
            per_label.update(
                {str(k): float(v) for k, v in value.items() if isinstance(v, numbers.Real)}
            )
            continue
        if not isinstance(value, numbers.Real) or isinstance(value, bool):
            continue
        match = re.fullmatch(r"f1\[(.*)\]", str(key))
        if match:
            per_label[match.group(1)] = float(value)
        else:
            headline[str(key)] = float(value)
    return headline, per_label


def _predictor_config(predictor) -> dict | None:
    """The settings that reproduce the predictor, as plain JSON: the resolved
    ``config_dict()`` when there is one, else ``get_params()`` / ``get_config()`` / ``config_``."""
    for getter in ("config_dict", "get_params", "get_config"):
        if callable(getattr(predictor, getter, None)):
            return _as_json_dict(getattr(predictor, getter)())
    for attribute in ("config_", "config"):
        value = getattr(predictor, attribute, None)
        if value is not None:
            return _as_json_dict(value)
    return None


def _as_json_dict(value) -> dict:
    """A config object (dict or dataclass) as a JSON-ready dict."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    return json.loads(json.dumps(value, default=str))


def _schema_frame(schema) -> pd.DataFrame:
    rows = []
    for column, modality, reason in schema.summary_rows():
        role = (
            "label"
            if column == schema.label
            else ("ignored" if modality == "ignored" else "feature")
        )
        rows.append({"column": column, "modality": modality, "role": role, "reason": reason})
    return pd.DataFrame(rows, columns=["column", "modality", "role", "reason"])


def _add_cleaning(doc: Document, report) -> None:
    """The cleaning findings: the one-line issues, then the per-column actions."""
    issues = list(getattr(report, "issues", []) or [])
    doc.add_list(issues or ["no issues found"])
    columns = getattr(report, "columns", None)
    if isinstance(columns, dict) and columns:
        frame = pd.DataFrame(
            [
                {
                    "column": c.name,
                    "modality": c.modality,
                    "missing": c.missing_count,
                    "missing_share": c.missing_fraction,
                    "action": c.action,
                }
                for c in columns.values()
            ]
        )
        doc.add_table(frame, caption="What the transforms do with each column")
    elif not issues and callable(getattr(report, "to_markdown", None)):
        doc.add_code(report.to_markdown(), language="markdown")


def write_predictor_report(
    predictor,
    df,
    out_dir: str | os.PathLike,
    *,
    title: str | None = None,
    command: str | None = None,
    n_repeats: int = 3,
    seed: int = 0,
    max_rows: int = 2000,
) -> dict:
    """Evaluate a fitted predictor on ``df`` and write ``report.md`` + ``report.html`` into ``out_dir``.

    ``df`` is a DataFrame with the label column, or a path to a table (read with
    :func:`~polymodal.data.readers.read_table`, so relative media paths resolve).

    The report holds the metrics, the figures for the problem type (confusion matrix
    and calibration, predicted-vs-true, or F1 per label), the leaderboard, the
    per-modality ablation and permutation importance (``n_repeats``, ``seed`` and
    ``max_rows`` go to :func:`~polymodal.evaluate.explain.permutation_importance`), the
    training curve when there is a history, the schema with its reasons, the
    cleaning findings, and the command (when given) and config that reproduce the model.

    Returns ``{"metrics": dict, "ablation": DataFrame, "importance": DataFrame,
    "report_md": Path, "report_html": Path, "figures": [Path, ...]}``.
    """
    out_dir = Path(out_dir)
    df = as_table(df)  # read once: every step below re-scores the same rows
    schema = predictor.schema_
    problem = predictor.problem_type_
    metric_name, direction = primary_metric(predictor)

    # 1. Numbers: the predictor's own metrics, then the two explanations.
    metrics = predictor.evaluate(df)
    headline, per_label = _scalar_metrics(metrics)
    ablation = modality_ablation(predictor, df)
    importance = permutation_importance(
        predictor, df, n_repeats=n_repeats, seed=seed, max_rows=max_rows
    )
    y_true, scored = label_targets(predictor, df)
    outputs = predictor_outputs(predictor, df)
    y_true, outputs = y_true[scored], outputs[scored]

    doc = Document(title or f"Predictor report: {schema.label}")
    better = "higher" if direction == "max" else "lower"
    doc.add_text(
        f"Label {schema.label!r}, problem type {problem}, {int(scored.sum()):,} of {len(df):,} rows "
        f"scored (rows without a known label are left out). Primary metric: {metric_name} "
        f"({better} is better). Written {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC."
    )

    # 2. Metrics and the figures that go with them.
    doc.add_heading("Metrics")
    warning = small_sample_warning(int(scored.sum()), MIN_ROWS_FOR_METRICS, unit="rows",
                                   what="These metrics (and the explanations below)")
    if warning:
        doc.add_warning(warning)
    doc.add_table(pd.DataFrame({"metric": list(headline), "value": list(headline.values())}))
    if problem in ("binary", "multiclass"):
        class_names = [str(c) for c in predictor.classes_]
        confusion = plots.confusion_matrix_png(y_true, outputs.argmax(axis=1), class_names)
        if confusion is not None:
            doc.add_image(
                confusion,
                "Confusion matrix, normalised per true class (cell: share, count)",
                filename="confusion_matrix.png",
            )
        else:
            doc.add_text(
                f"Confusion matrix skipped: {len(class_names)} classes is more than "
                f"{plots.MAX_CONFUSION_CLASSES}."
            )
        doc.add_image(
            plots.calibration_png(y_true, outputs),
            "Reliability diagram: accuracy vs confidence of the top class",
            filename="calibration.png",
        )
    elif problem == "regression":
        doc.add_image(
            plots.regression_scatter_png(y_true, outputs, label=schema.label),
            "Predicted vs true values; the dashed line is a perfect prediction",
            filename="predicted_vs_true.png",
        )
    elif problem == "multilabel" and per_label:
        doc.add_image(
            plots.per_label_f1_png(per_label), "F1 per label", filename="per_label_f1.png"
        )

    # 3. Model selection.
    leaderboard = (
        predictor.leaderboard() if callable(getattr(predictor, "leaderboard", None)) else None
    )
    if leaderboard is not None and len(leaderboard):
        doc.add_heading("Leaderboard")
        doc.add_text(
            "Candidate models scored on the validation split; the chosen one makes the predictions."
        )
        doc.add_table(leaderboard.reset_index(drop=True))

    # 4. Explanations.
    doc.add_heading("What each modality contributes")
    doc.add_text(
        f"The primary metric ({metric_name}) with every modality, then with each modality's "
        "columns masked out as if missing. 'contribution' is how much worse the predictor does "
        "without the modality (positive = it helps)."
    )
    doc.add_table(ablation)
    if len(ablation) > 1:
        doc.add_image(
            plots.ablation_png(ablation),
            f"How much {metric_name} is lost when each modality is masked",
            filename="ablation.png",
        )
    doc.add_heading("Permutation importance")
    doc.add_text(
        f"How much {metric_name} is lost when one column's cells are shuffled across rows "
        f"(mean ± std over {n_repeats} shuffles, "
        f"{importance.attrs.get('num_rows_scored', 0):,} rows, seed {seed})."
    )
    doc.add_table(importance)
    if len(importance):
        doc.add_image(
            plots.importance_png(importance),
            "Permutation importance per column",
            filename="importance.png",
        )

    # 5. Training.
    history = list(getattr(predictor, "training_history_", None) or [])
    curve = plots.training_curve_png(history, metric=metric_name)
    if curve is not None:
        doc.add_heading("Training")
        doc.add_image(
            curve,
            "Training of the neural candidate: loss and validation metric vs step",
            filename="training_curve.png",
        )

    # 6. Data: what each column was taken for, and what cleaning found.
    doc.add_heading("Schema")
    if schema.problem_reason:
        doc.add_text(f"Problem type: {schema.problem_reason}")
    doc.add_table(_schema_frame(schema), max_rows=200)
    cleaning = getattr(predictor, "cleaning_report_", None)
    if cleaning is not None:
        doc.add_heading("Cleaning findings")
        _add_cleaning(doc, cleaning)

    # 7. How to get the same model again.
    config = _predictor_config(predictor)
    if command or config:
        doc.add_heading("Reproduce")
        if command:
            doc.add_text("Command:")
            doc.add_code(command, language="bash")
        if config:
            doc.add_table(config_table(config), caption="Resolved config", max_rows=500)

    md_path, html_path = doc.write(out_dir)
    figures = [out_dir / s.filename for s in doc.sections if isinstance(s, Figure)]
    return {
        "metrics": metrics,
        "ablation": ablation,
        "importance": importance,
        "report_md": md_path,
        "report_html": html_path,
        "figures": figures,
    }
