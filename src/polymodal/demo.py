"""`polymodal demo`: the main job on built-in data, with visible progress throughout.

Today it runs stage 1 (preprocessing) the way a user would on their own files:
export the rendered ``shapes`` table to CSV + PNGs, read it back, infer the schema with
reasons, write the cleaning report, fit the transforms on the training rows, decode a
batch lazily through the Dataset, and save grids of decoded samples; then it does the
same for ``digits`` (and ``fashion-mnist`` when installed) in memory.
"""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console

from polymodal.files import write_json, write_text


def _decoded_grid(df, schema, out_png: Path, *, n: int = 32) -> tuple[int, ...]:
    """Decode the first ``n`` rows through the real transform + Dataset path; save a grid."""
    from polymodal.data.dataset import TableDataset, make_loader
    from polymodal.data.transforms import TableTransform, tensor_to_uint8
    from polymodal.evaluate.images import make_grid, save_png

    image_cols = schema.by_modality("image")
    if not image_cols:
        return ()
    transform = TableTransform(schema, text_encoder="hashed").fit(df)
    dataset = TableDataset(df.iloc[:n], transform)
    batch = next(iter(make_loader(dataset, batch_size=n, shuffle=False, seed=0)))
    pixels = batch.image[image_cols[0]]  # (B, C, H, W) in [-1, 1]
    images = tensor_to_uint8(pixels)
    scale = max(1, 64 // images.shape[1])
    save_png(make_grid(images, ncols=8, scale=scale), out_png)
    return tuple(pixels.shape)


def run_demo(*, out_dir: Path, n_shapes: int = 400, console: Console | None = None) -> dict:
    """Run the demo, writing into ``out_dir``; returns the headline facts it printed."""
    from polymodal import datasets
    from polymodal.cli import _inspect, _print_schema

    console = console or Console()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    summary: dict = {"datasets": {}}
    md = ["# polymodal demo", "", "Stage 1 — preprocessing, on built-in data.", ""]

    # 1. shapes, exported to files and read back exactly like a user's own table.
    console.rule("[bold]shapes[/] — a rendered multimodal table (image, caption, attributes)")
    with console.status(f"rendering {n_shapes} rows and exporting them as CSV + PNG…"):
        export_dir = datasets.export("shapes", out_dir / "shapes", n=n_shapes, seed=0, overwrite=True)
    table_path = export_dir / "train.csv"
    with console.status("reading the table, inferring the schema, opening every image…"):
        df, schema, report = _inspect(str(table_path), label="label", columns=[], check_files=True)
    _print_schema(df, schema, report, title=f"{table_path} — {len(df):,} rows")
    targets = [("shapes", df, schema, report, str(table_path))]

    # 2. the image datasets, in memory.
    for info in datasets.list_datasets():
        if info.name == "shapes":
            continue
        if not info.available:
            console.print(f"[dim]{info.name}: not installed here — {info.how_to_install}[/]")
            continue
        console.rule(f"[bold]{info.name}[/] — {info.description}")
        with console.status(f"loading {info.name}…"):
            frame = datasets.load(info.name)
            if len(frame) > 5000:
                frame = frame.sample(n=5000, random_state=0).reset_index(drop=True)
            _, schema_i, report_i = _inspect(frame, label="label", columns=[], check_files=False)
        _print_schema(frame, schema_i, report_i, title=f"{info.name} — {len(frame):,} rows")
        targets.append((info.name, frame, schema_i, report_i, f"polymodal:{info.name}"))

    # 3. decode samples through the transforms and the lazy Dataset; save grids.
    for name, frame, schema_i, report_i, source in targets:
        png = out_dir / f"{name}_samples.png"
        with console.status(f"{name}: fitting transforms and decoding a batch…"):
            shape = _decoded_grid(frame, schema_i, png)
        console.print(f"{name}: decoded batch of shape {tuple(shape)} → [bold]{png}[/]")
        summary["datasets"][name] = {
            "source": source,
            "rows": len(frame),
            "problem_type": schema_i.problem_type,
            "modalities": {c: schema_i.modality(c) for c in schema_i.columns},
            "findings": report_i.issues,
            "samples_png": str(png),
        }
        md += [f"## {name}", "", f"Source: `{source}` — {len(frame):,} rows, "
               f"problem: {schema_i.problem_type} ({schema_i.problem_reason})", "",
               "| column | modality | why |", "|---|---|---|"]
        md += [f"| {c} | {m} | {r} |" for c, m, r in schema_i.summary_rows()]
        md += ["", "Cleaning findings:", ""] + [f"- {x}" for x in report_i.issues or ["none"]]
        md += ["", f"![decoded samples]({png.name})", ""]

    summary["elapsed_s"] = round(time.perf_counter() - t0, 1)
    write_json(out_dir / "summary.json", summary)
    write_text(out_dir / "report.md", "\n".join(md) + "\n")
    console.rule("[bold]done")
    console.print(f"{len(targets)} datasets inspected in {summary['elapsed_s']} s; "
                  f"report: [bold]{out_dir / 'report.md'}[/]")
    return summary

