"""``polymodal fit``, ``predict``, ``evaluate`` and ``augment``: the predictor's commands."""

from __future__ import annotations

import warnings
from pathlib import Path

import typer

from polymodal.cli.common import (
    Device,
    Verbosity,
    app,
    command,
    command_budget,
    device_option,
    fail,
    follower_rank,
    image_augment_option,
    interrupted,
    out,
    print_frame,
    print_metrics,
    save_model,
    set_options,
)


@command(app, "fit", distributed=True,
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
        "auto", "--image-augment",
        help="auto (hflip when a check on the training images finds a mirrored image keeps "
             "its label), none, hflip (mirror training images) "
             'or JSON like \'{"hflip": true, "shift_px": 2}\'.'),
    audio_augment: str = typer.Option(
        "auto", "--audio-augment",
        help="auto (speech on audio tables), speech, none, or JSON like "
             '\'{"speed": 0.1, "noise_prob": 0.5}\' (speed/pitch, shift, noise, masks).'),
    unlabelled: str = typer.Option(
        "auto", "--unlabelled",
        help="Rows with an empty label: auto (classification: the network self-trains on "
             "them, kept only if validation improves), self_training, or ignore."),
    set_: list[str] = typer.Option(
        [], "--set", help="Override a recipe field: KEY=VALUE, e.g. network.width=96 (repeatable; "
                          "the resolved recipe is in OUT/config.json)."),
    device: Device = device_option(),
) -> None:
    """Train a predictor on TABLE and save it; prints the leaderboard and the chosen model.

    A Parquet/Feather file or shard folder too large for memory streams (set
    POLYMODAL_STREAM_BYTES, e.g. 2G, for the threshold; default 1/64 of available memory)."""
    budget = command_budget(time_limit)  # counts from the command's start: imports, reading the table
    from polymodal.api import Predictor
    from polymodal.api.model_folder import check_output_folder
    from polymodal.api.params import parse_overrides

    check_output_folder(out_dir)  # before training, not after
    follower = follower_rank()  # under torchrun: trains with rank 0, which saves and prints
    predictor = Predictor(
        label, problem_type=problem_type, time_limit=time_limit, preset=preset, seed=seed,
        columns=parse_overrides(column) or None, text_encoder=text_encoder,
        image_augment=image_augment_option(image_augment),
        audio_augment=image_augment_option(audio_augment, "--audio-augment"),
        unlabelled=unlabelled,
        recipe=set_options(set_) or None, verbosity=Verbosity.level, device=device.value,
    )
    with interrupted(out_dir, "training"):
        predictor.fit(table, budget=budget)
    if follower:
        return
    path = save_model(predictor, out_dir, "predictor")
    if Verbosity.level > 0:
        print_frame(predictor.leaderboard(), title="leaderboard (validation split)")
    out.print(f"chosen model: [bold]{predictor.chosen_}[/]; saved to {path}")



@command(app, "predict", example="polymodal predict runs/price test.csv --out predictions.csv")
def predict(
    model_dir: Path = typer.Argument(..., help="Folder written by `polymodal fit`."),
    table: str = typer.Argument(..., help="Table to predict on (same columns as for training)."),
    out_file: Path = typer.Option(..., "--out", "-o",
                                  help="CSV (or .tsv, .parquet) file to write the predictions to."),
    device: Device = device_option(),
) -> None:
    """Predict every row of TABLE; keeps the row order and any ID column. A table too large
    for memory is read and written in chunks."""
    from polymodal.api import Predictor
    from polymodal.workflows.outputs import check_output_file, unseen_lines, write_predictions

    check_output_file(out_file, table, model_dir=model_dir)
    written = write_predictions(Predictor.load(model_dir, device=device.value), table, out_file)
    for line in unseen_lines(written["unseen"]):
        warnings.warn(line, UserWarning, stacklevel=1)  # one line on stderr
    how = (f" (streamed in {written['chunks']} chunks; peak memory "
           f"{written['peak_rss_bytes'] / 2**30:.2f} GiB)" if written["streamed"] else "")
    out.print(f"wrote {written['rows']:,} predictions to {out_file}{how}")


@command(app, "evaluate",
          example="polymodal evaluate runs/price test.csv --out runs/price/report")
def evaluate(
    model_dir: Path = typer.Argument(..., help="Folder written by `polymodal fit`."),
    table: str = typer.Argument(..., help="Labelled table to score the predictor on."),
    out_dir: Path | None = typer.Option(
        None, "--out", "-o", help="Folder for report.md/report.html (default: MODEL_DIR/report)."
    ),
    device: Device = device_option(),
) -> None:
    """Score a saved predictor on TABLE and write the evaluation report."""
    from polymodal.api import Predictor
    from polymodal.workflows.outputs import evaluate_to_report

    report_dir = out_dir or model_dir / "report"
    command = f"polymodal evaluate {model_dir} {table} --out {report_dir}"
    report = evaluate_to_report(Predictor.load(model_dir, device=device.value), table, report_dir,
                                command=command)
    rows, scored = report.get("rows"), report.get("rows_scored")
    print_metrics(report["metrics"], title=f"metrics on {table}")
    if rows is not None and scored < rows:  # its own line: a table's title wraps at its width
        out.print(f"{scored:,} of {rows:,} rows scored; the other {rows - scored:,} have no "
                  "label the model knows", soft_wrap=True, highlight=False)
    if "report_md" in report:
        out.print(f"report: {report['report_md']} and {report['report_html']}")


@command(app, "augment",
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
    device: Device = device_option(),
) -> None:
    """Add generated images of each class to TABLE (balancing rare classes first)."""
    budget = command_budget(time_limit)
    from polymodal.workflows.augment_folder import augment_to_folder

    if per_class is not None and ratio is not None:
        fail("pass --per-class or --ratio, not both")
    summary = augment_to_folder(
        table, out_dir, label=label, compare=compare, fit_time_limit=fit_time_limit,
        fit_recipe=set_options(set_) or None,
        image=image, per_class=per_class, ratio=ratio,
        generator=None if generator is None else str(generator), time_limit=time_limit,
        filter=filter_, marker=marker, seed=seed, verbosity=min(Verbosity.level, 1),
        device=device.value, budget=budget,
    )
    if Verbosity.level > 0:
        print_frame(_per_class_frame(summary["per_class"]), title=f"synthetic rows per class of {label!r}")
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
