"""``polymodal generate fit|sample|edit|evaluate``: the image generator's commands."""

from __future__ import annotations

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
    info,
    interrupted,
    out,
    print_metrics,
    save_model,
    set_options,
)

generate_app = typer.Typer(
    help="Train a conditional image generator on a table; sample and edit images.",
    no_args_is_help=True,
)
app.add_typer(generate_app, name="generate")


def _parse_conditions(items: list[str], prompts: list[str], n: int | None
                      ) -> tuple[dict, list | None, int]:
    """``col=value`` options and prompts -> (conditions, prompts, groups), each list
    expanded to ``n`` values: k values for a column (or k prompts) give k groups of n/k.
    ``n=None``: one image (``edit``), so one value each."""
    values: dict[str, list[str]] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            fail(f"--condition {item!r} must look like COLUMN=VALUE, e.g. label=7")
        values.setdefault(name.strip(), []).append(value.strip())
    lists = [v for v in values.values()] + ([prompts] if prompts else [])
    groups = max((len(v) for v in lists), default=1)
    for v in lists:
        if len(v) not in (1, groups):
            fail(f"give each condition 1 or {groups} values (got {len(v)}): one group of "
                  "images per value")
    if n is None:
        if groups > 1:
            fail(f"edit makes one image: give --prompt once and each --condition column one "
                  f"value (got {groups})")
        n = 1
    if n % groups:
        fail(f"-n {n} is not a multiple of the {groups} conditions/prompts given; pass -n "
              f"{groups * max(1, n // groups)}")

    def expand(v: list) -> list:
        return [x for x in v for _ in range(n // len(v))] if len(v) > 1 else v

    conditions = {k: expand(v) for k, v in values.items()}
    return conditions, (expand(prompts) if prompts else None), groups


@command(generate_app, "fit", distributed=True,
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
    device: Device = device_option(),
) -> None:
    """Train a generator on TABLE; OUT is replaced whole when it finishes (sample grids
    appear in a hidden .OUT.train-* folder beside it while it trains)."""
    import shutil

    from polymodal.api.generator import Generator

    budget = command_budget(time_limit)  # counts from the command's start: imports, reading the table
    from polymodal.api.generator_folder import training_folder
    from polymodal.api.model_folder import check_output_folder
    from polymodal.api.params import parse_overrides

    check_output_folder(out_dir)  # before training, not after
    follower = follower_rank()  # under torchrun: trains with rank 0, which saves and prints
    recipe = set_options(set_)
    if steps is not None:
        recipe["training.max_steps"] = str(steps)
    generator = Generator(
        image, condition or None, time_limit=time_limit, preset=preset, seed=seed,
        columns=parse_overrides(column) or None, text_encoder=text_encoder, image_size=image_size,
        recipe=recipe or None, verbosity=Verbosity.level, device=device.value,
    )
    if follower:
        with interrupted(out_dir, "training"):
            generator.fit(table, budget=budget)
        return
    # Checkpoints, log and grids go to a fresh hidden sibling while it trains; the fitted
    # generator then replaces --out whole, so a killed fit leaves the old folder as it was.
    train_dir = training_folder(out_dir)
    info(f"training in {train_dir} (sample grids in its samples/ folder)", highlight=False)
    try:
        with interrupted(out_dir, "training"):
            generator.fit(table, out_dir=train_dir, budget=budget)
        path = save_model(generator, out_dir, "generator")
    finally:
        shutil.rmtree(train_dir, ignore_errors=True)
    for name, spec in generator.conditions_.items():
        classes = spec.get("classes")
        shown = f": {', '.join(map(str, classes[:20]))}" if classes else ""
        info(f"condition [bold]{name}[/] ({spec['modality']}){shown}", highlight=False)
    out.print(f"saved to {path} (samples: {path / 'samples' / 'latest.png'})")


@command(generate_app, "sample",
          example="polymodal generate sample runs/gen --condition label=7 -n 16 --out grid.png")
def generate_sample(
    model_dir: Path = typer.Argument(..., help="Folder written by `polymodal generate fit`."),
    out_path: Path = typer.Option(..., "--out", "-o", help="grid.png (or .jpg, .webp, ...) for one grid, or a folder for one PNG per image."),
    condition: list[str] = typer.Option(
        [], "--condition", help="COLUMN=VALUE (repeatable; several values of one column give one group each)."
    ),
    prompt: list[str] = typer.Option([], "--prompt", help="Text for the text condition (repeatable)."),
    n: int = typer.Option(16, "-n", "--n", help="Number of images."),
    steps: int | None = typer.Option(None, "--steps", help="Sampler steps (default: the model's)."),
    guidance: float | None = typer.Option(None, "--guidance", help="Guidance scale (1 = none)."),
    seed: int = typer.Option(0, "--seed"),
    device: Device = device_option(),
) -> None:
    """Generate N images, optionally for given conditions or prompts."""
    from polymodal.api.generator import Generator
    from polymodal.workflows.media import check_images_out, write_images

    conditions, prompts, groups = _parse_conditions(condition, prompt, n)
    check_images_out(out_path)  # before sampling, not after
    generator = Generator.load(model_dir, device=device.value)
    images = generator.sample(n, conditions=conditions or None, prompts=prompts,
                              num_steps=steps, guidance=guidance, seed=seed)
    out.print(f"wrote {write_images(images, out_path, ncols=n // groups if groups > 1 else None)}")


@command(generate_app, "edit",
          example="polymodal generate edit runs/gen --image in.png --mask keep.png --out out.png")
def generate_edit(
    model_dir: Path = typer.Argument(..., help="Folder written by `polymodal generate fit`."),
    image: Path = typer.Option(..., "--image", help="The image to edit."),
    out_path: Path = typer.Option(..., "--out", "-o", help="Image file to write (.png, .jpg, .webp, ...)."),
    mask: Path | None = typer.Option(
        None, "--mask", help="Inpainting mask: white = keep the pixel, black = fill it in."
    ),
    strength: float = typer.Option(0.5, "--strength", help="0 keeps the image, 1 redraws it."),
    condition: list[str] = typer.Option([], "--condition", help="COLUMN=VALUE (repeatable)."),
    prompt: list[str] = typer.Option([], "--prompt", help="Text for the text condition."),
    steps: int | None = typer.Option(None, "--steps"),
    guidance: float | None = typer.Option(None, "--guidance"),
    seed: int = typer.Option(0, "--seed"),
    device: Device = device_option(),
) -> None:
    """Edit one image (SDEdit), or fill in the black part of --mask (inpainting)."""
    from polymodal.api.generator import Generator
    from polymodal.workflows.media import check_image_out, write_image

    conditions, prompts, _ = _parse_conditions(condition, prompt, None)
    check_image_out(out_path)  # before editing, not after
    generator = Generator.load(model_dir, device=device.value)
    edited = generator.edit(str(image), strength=strength, conditions=conditions or None,
                            prompts=prompts, mask=None if mask is None else str(mask),
                            num_steps=steps, guidance=guidance, seed=seed)
    write_image(edited[0], out_path)
    out.print(f"wrote {out_path}")


@command(generate_app, "evaluate",
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
    device: Device = device_option(),
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
    print_metrics(numbers, title=f"generator metrics on {table}")
    if metrics.get("skipped"):
        info(f"skipped: {metrics['skipped']}", highlight=False)
    if "report_md" in metrics:
        out.print(f"report: {metrics['report_md']} and {metrics['report_html']}")
