"""Reports as Markdown and self-contained HTML, from one list of sections.

:class:`Document` is a tiny document model: headings, paragraphs, warnings, bullet
lists, code blocks, tables (DataFrames) and images (PNG bytes with a caption). It
renders to Markdown, with the images written as PNG files beside it, and to one HTML
file that needs nothing else: images are embedded as base64 ``data:`` URIs, the CSS is
inline, there are no scripts and no network references, so the file can be mailed or
opened offline. In HTML, a table of contents links to every section, and each section
(a level-2 heading and what follows it) is a ``<details>`` element that folds away. The
predictor report (:mod:`polymodal.evaluate.predictor_report`), the generator's report and the demo
report are all built from it.

Every file is written atomically (:mod:`polymodal.files`).
"""

from __future__ import annotations

import base64
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
