"""`polymodal demo`: the main job on built-in data, end to end, in about five minutes.

It does, on the rendered ``shapes`` table (image + caption + attributes + a label that
needs both the picture and the table), what a user would do on their own files:

1. export the table as CSV + PNGs, read it back, show the schema with reasons and the
   cleaning report;
2. train a multimodal predictor on the image and the table (the shape only in the
   picture, the material only in the table) and evaluate it (metrics, confusion matrix,
   calibration, what each modality contributes);
3. train a caption-conditioned generator (text-to-image), sample a grid from typed
   prompts, edit an image (SDEdit and inpainting), and evaluate it against real images
   with the real-vs-real floor beside each figure;
4. with 5% of the digits' labels, compare the labelled rows alone, with the other rows
   present unlabelled (self-training) and with generated images;
5. write one self-contained ``report.html`` (and ``report.md``) and print the headline
   figures.

``--dataset fashion-mnist`` runs the same on Fashion-MNIST (class-conditional generator)
when Debian's ``dataset-fashion-mnist`` is installed. ``--time-limit`` counts for the
whole demo, from its first step: each training step gets its share of the time left
(:func:`_step_limit`), and the rest of the shares is kept for reading, evaluating and
writing the report.
"""

from __future__ import annotations

import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from rich.console import Console

from polymodal.errors import ConfigError
from polymodal.files import write_json

DATASETS = ("shapes", "fashion-mnist")
# Shares of the demo's time limit; what the training steps leave is for reading the data,
# evaluating and writing the report.
SHARES = {"predictor": 0.2, "generator": 0.4, "augment": 0.2}
STEP_ORDER = ("predictor", "generator", "augment")
# Columns the demo's predictor does not use, per dataset: on shapes the label needs the
# shape (in the image) and the material (in the table); the caption and the ``shape``
# column would give the shape away, and the image would then add nothing.
PREDICTOR_HIDDEN = {"shapes": ("shape", "caption")}
OTHER_SHARE = 1.0 - sum(SHARES.values())
# The caption-conditioned generator learns shapes at 16x16 (upscaled in the grids): in the
# demo's budget it then takes about twice the steps it would at 32x32 and draws a blob of the
# asked-for colour, where 32x32 was still noise (see bench/RESULTS.md, 'Ad-hoc probes').
TEXT_TO_IMAGE_SIZE = 16
# About as many synthetic rows as real ones, and only those the judge recognises: more, or
# unfiltered, ones lowered held-out accuracy on 70 labelled digits (see bench/RESULTS.md,
# 'Ad-hoc probes').
AUGMENT_PER_CLASS = 10
PROMPTS = (
    "a small red circle at the top left",
    "a large blue square in the center",
    "a green triangle at the bottom right",
    "a large yellow star at the top",
    "a small purple circle on the left",
    "an orange square at the bottom",
)


@dataclass
class DemoResult:
    """What the demo measured, and where it wrote things."""

    out_dir: Path
    headline: dict = field(default_factory=dict)
    sections: dict = field(default_factory=dict)
    elapsed_s: float = 0.0


def _png(image: np.ndarray | object) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    (image if hasattr(image, "save") else Image.fromarray(image)).save(buf, format="PNG")
    return buf.getvalue()


def _grid(images: np.ndarray, *, ncols: int, row_labels=None):
    from polymodal.evaluate.images import make_grid

    scale = max(1, 64 // images.shape[1])
    return make_grid(images, ncols=ncols, scale=scale, row_labels=row_labels)


class _Steps:
    """Numbered, timed steps with a live status line, so the user always sees progress."""

    def __init__(self, console: Console, total: int):
        self.console, self.total, self.n, self.start = console, total, 0, time.perf_counter()

    def begin(self, title: str) -> float:
        self.n += 1
        elapsed = time.perf_counter() - self.start
        self.console.rule(f"[bold]{self.n}/{self.total}[/] {title}  [dim]({elapsed:.0f} s)[/]")
        return time.perf_counter()


def _data_step(dataset: str, out_dir: Path, n_rows: int, seed: int):
    """Export the built-in table like a user's own, then read it back from the files."""
    from polymodal import datasets

    folder = datasets.export(dataset, out_dir / "data" / dataset, n=n_rows, seed=seed, overwrite=True)
    return folder / "train.csv", folder / "test.csv"


def run_demo(
    *,
    out_dir: Path = Path("demo-out"),
    dataset: str = "shapes",
    time_limit_s: float = 200.0,
    n_rows: int | None = None,
    seed: int = 0,
    console: Console | None = None,
    verbosity: int = 1,
    device: str = "auto",
) -> DemoResult:
    """Run every stage on built-in data and write ``out_dir/report.html``. ``verbosity``
    and ``device`` are the models' (``Predictor(verbosity=, device=)``)."""
    from polymodal.api import Generator, Predictor, TimeBudget
    from polymodal.evaluate.images import save_png
    from polymodal.evaluate.predictor_report import write_predictor_report
    from polymodal.evaluate.report import Document
    from polymodal.workflows.generator_eval import evaluate_generator
    from polymodal.workflows.inspect import inspect_table, print_schema

    if dataset not in DATASETS:
        raise ConfigError(f"--dataset {dataset!r} is not a demo dataset; choose one of {list(DATASETS)}")
    if not time_limit_s or time_limit_s < 10:
        raise ConfigError(f"--time-limit {time_limit_s} is too small for the demo; give at least 10 seconds")
    clock = TimeBudget(time_limit_s)
    console = console or Console()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    result = DemoResult(out_dir=out_dir)
    steps = _Steps(console, total=6)
    text_to_image = dataset == "shapes"
    n_rows = n_rows or (1500 if text_to_image else 12_000)
    command = "polymodal " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:] else "polymodal demo"
    doc = Document(f"polymodal demo — {dataset}")
    doc.add_text(
        f"Everything below was produced by one command, `{command}`, in one run on this machine "
        f"(time limit {time_limit_s:.0f} s). Each section says how to reproduce it on its own."
    )

    # 1. Data: export, read back, schema with reasons, cleaning report.
    steps.begin(f"data — export {dataset} as CSV + PNG, read it back, infer the schema")
    with console.status("rendering/exporting the table…"):
        train_csv, test_csv = _data_step(dataset, out_dir, n_rows, seed)
    with console.status("reading, inferring each column's modality, opening every image…"):
        train_df, schema, report = inspect_table(str(train_csv), label="label")
    print_schema(console, train_df, schema, report, title=f"{train_csv} — {len(train_df):,} rows")
    test_df = pd.read_csv(test_csv)
    doc.add_heading("1. The data")
    doc.add_text(f"`{train_csv}` ({len(train_df):,} rows) and `{test_csv}` ({len(test_df):,} rows), "
                 f"written by `polymodal datasets export {dataset} DIR --n {n_rows}`; inspect with "
                 f"`polymodal data inspect {train_csv} --label label`.")
    doc.add_table(pd.DataFrame(schema.summary_rows(), columns=["column", "modality", "why"]),
                  caption="Each column's modality and the reason it was chosen")
    doc.add_text(f"Problem: **{schema.problem_type}** — {schema.problem_reason}")
    doc.add_list(report.issues or ["The cleaning report found nothing to fix."])
    result.sections["data"] = {"rows": len(train_df), "problem_type": schema.problem_type,
                               "findings": report.issues}

    # 2. Predictor.
    t0 = steps.begin("predictor — train on every modality, evaluate on held-out rows")
    budget = _step_limit(clock, "predictor")
    # On shapes the shape is in the picture, the caption and a column: the predictor sees
    # it in the picture only, so that each modality it uses carries something of its own.
    hidden = PREDICTOR_HIDDEN.get(dataset, ())
    flags = "".join(f" --column {c}=ignored" for c in hidden)
    predictor = Predictor(label="label", time_limit=budget, seed=seed,
                          columns={c: "ignored" for c in hidden} or None,
                          verbosity=verbosity, device=device).fit(str(train_csv))
    predictor.save(out_dir / "predictor")
    pred_report = write_predictor_report(
        predictor, str(test_csv), out_dir / "predictor" / "report",
        command=f"polymodal fit {train_csv} --label label{flags} --time-limit {budget:.0f} "
                "--out DIR",
        n_repeats=1, max_rows=500,
    )
    metrics = pred_report["metrics"]
    console.print(f"test accuracy {metrics.get('accuracy', float('nan')):.3f} "
                  f"(chosen: {predictor.chosen_}) in {time.perf_counter() - t0:.0f} s")
    doc.add_heading("2. Predicting the label from the image and the table"
                    + (" (the shape only in the picture)" if hidden else ""))
    doc.add_text(f"`polymodal fit {train_csv} --label label{flags} --time-limit {budget:.0f} "
                 "--out DIR`, then "
                 f"`polymodal evaluate DIR {test_csv}`. Chosen model: **{predictor.chosen_}**. "
                 f"Full report: `{pred_report['report_html']}`.")
    doc.add_table(pd.DataFrame([{k: v for k, v in metrics.items() if isinstance(v, int | float)}]),
                  caption="Test-set metrics")
    doc.add_table(predictor.leaderboard(), caption="Candidates on the validation split")
    doc.add_table(pred_report["ablation"], caption="What each modality contributes (metric with it masked out)")
    for fig in pred_report["figures"]:
        if any(key in Path(fig).name for key in ("confusion", "calibration", "ablation")):
            doc.add_image(Path(fig).read_bytes(), caption=Path(fig).stem.replace("_", " "))
    ablation = pred_report["ablation"]
    result.headline["predictor test accuracy"] = round(float(metrics.get("accuracy", float("nan"))), 3)
    result.sections["predictor"] = {"metrics": metrics, "chosen": predictor.chosen_,
                                    "ablation": ablation.to_dict(orient="records")}

    # 3. Generator: text-to-image on shapes, class-conditional on Fashion-MNIST.
    t0 = steps.begin("generator — " + ("text-to-image from captions" if text_to_image
                                       else "class-conditional images"))
    budget = _step_limit(clock, "generator")
    condition = ["caption"] if text_to_image else ["label"]
    size = TEXT_TO_IMAGE_SIZE if text_to_image else None
    generator = Generator(image="image", condition=condition, time_limit=budget, seed=seed,
                          image_size=size, verbosity=verbosity, device=device)
    generator.fit(str(train_csv), out_dir=out_dir / "generator")
    generator.save(out_dir / "generator")
    doc.add_heading("3. Generating images")
    if text_to_image:
        per_prompt = 6
        images = generator.sample(len(PROMPTS) * per_prompt,
                                  prompts=[p for p in PROMPTS for _ in range(per_prompt)], seed=seed)
        grid = _grid(images, ncols=per_prompt, row_labels=list(PROMPTS))
        how = ('`polymodal generate sample DIR --prompt "a small red circle at the top left" -n 6 '
               '--out grid.png`')
    else:
        classes = generator.conditions_["label"]["classes"]
        per_class = 8
        images = generator.sample(len(classes) * per_class,
                                  conditions={"label": [c for c in classes for _ in range(per_class)]},
                                  seed=seed)
        grid = _grid(images, ncols=per_class, row_labels=[str(c) for c in classes])
        how = "`polymodal generate sample DIR --condition label=3 -n 8 --out grid.png`"
    save_png(grid, out_dir / "samples.png")
    console.print(f"trained in {time.perf_counter() - t0:.0f} s; sample grid → [bold]{out_dir / 'samples.png'}[/]")
    size_flag = f" --image-size {size}" if size else ""
    doc.add_text(f"`polymodal generate fit {train_csv} --image image --condition {condition[0]}"
                 f"{size_flag} --time-limit {budget:.0f} --out DIR`, then {how}.")
    doc.add_image(_png(grid), caption="Samples, one row per " + ("typed prompt" if text_to_image else "class"),
                  filename="samples.png")

    # Editing: SDEdit towards another prompt/class, and inpainting the left half.
    from polymodal.data.media import image_to_array, load_image

    channels, height, width = generator.image_shape_
    source = load_image(test_df["image"].iloc[0], test_csv.parent, channels=channels)
    source = image_to_array(source.resize((width, height), Image.Resampling.LANCZOS))
    edit_kw = ({"prompts": ["a large blue star in the center"]} if text_to_image
               else {"conditions": {"label": [generator.conditions_["label"]["classes"][0]]}})
    edited = generator.edit(source[None], strength=0.6, seed=seed, **edit_kw)
    h, w = source.shape[:2]
    keep = np.zeros((h, w), dtype=bool)
    keep[:, : w // 2] = True  # keep the left half, regenerate the right half
    inpainted = generator.edit(source[None], strength=1.0, mask=keep, seed=seed, **edit_kw)
    strip = _grid(np.concatenate([source[None], edited, inpainted]), ncols=3)
    save_png(strip, out_dir / "edit.png")
    doc.add_image(_png(strip), caption="Editing: input · SDEdit at strength 0.6 · right half inpainted",
                  filename="edit.png")

    # 4. Generator evaluation.
    steps.begin("generator evaluation — judge features vs held-out real images")
    gen_eval = evaluate_generator(generator, test_df.assign(image=[str(test_csv.parent / p) for p in test_df["image"]]),
                                  n_samples=300, seed=seed, out_dir=out_dir / "generator" / "report",
                                  judge_time_limit_s=min(30.0, 0.1 * time_limit_s,
                                                         max(1.0, 0.5 * clock.left_s())))
    rows = []
    for key in ("fd", "kid", "precision", "recall", "conditional_accuracy", "cas"):
        if key in gen_eval and gen_eval[key] is not None:
            rows.append({"metric": key, "generated": gen_eval[key],
                         "real-vs-real floor / reference": gen_eval.get(f"{key}_floor",
                                                                        gen_eval.get(f"{key}_real"))})
    doc.add_heading("4. How good are the generated images?")
    doc.add_text(f"`polymodal generate evaluate DIR {test_csv}` — full report: "
                 f"`{gen_eval.get('report_html', out_dir / 'generator' / 'report' / 'report.html')}`.")
    if rows:
        doc.add_table(pd.DataFrame(rows), caption="Generator metrics next to the real-vs-real floor")
    result.headline["generator FD / real floor"] = (
        f"{gen_eval.get('fd', float('nan')):.1f} / {gen_eval.get('fd_floor', float('nan')):.1f}")
    result.sections["generator"] = {k: v for k, v in gen_eval.items() if isinstance(v, int | float | str)}

    # 5. Scarce labels: unlabelled rows, then generated ones.
    steps.begin("scarce labels — do unlabelled rows or synthetic data help?")
    aug = _augment_step(out_dir, seed=seed, budget_s=_step_limit(clock, "augment"),
                        console=console, device=device)
    doc.add_heading("5. Scarce labels: unlabelled rows and generative augmentation")
    doc.add_text(aug["how"])
    doc.add_table(aug["table"], caption="Held-out real accuracy")
    if aug.get("chart") is not None:
        doc.add_image(aug["chart"], caption="Labelled only vs + unlabelled rows vs + synthetic",
                      filename="augment.png")
    result.headline["unlabelled rows lift"] = aug["unlabelled_text"]
    result.headline["augmentation lift"] = aug["lift_text"]
    result.sections["augment"] = aug["summary"]

    # 6. The report.
    steps.begin("report")
    doc.add_heading("Reproduce")
    doc.add_code(command)
    doc.add_table(pd.DataFrame({"result": list(result.headline),
                                "value": [str(v) for v in result.headline.values()]}),
                  caption="The headline results of this run")
    md_path, html_path = doc.write(out_dir, stem="report")
    result.elapsed_s = time.perf_counter() - steps.start
    write_json(out_dir / "summary.json", {"headline": result.headline, "sections": result.sections,
                                          "elapsed_s": result.elapsed_s})
    console.rule("[bold]done")
    for key, value in result.headline.items():
        console.print(f"  {key}: [bold]{value}[/]")
    console.print(f"report: [bold]{html_path}[/] (and {md_path.name}); {result.elapsed_s:.0f} s in all")
    return result


def _step_limit(clock, step: str) -> float:
    """Seconds for a training ``step``: its share of what is left on the demo's clock, next
    to the shares of the steps after it and of the rest (at least one second)."""
    later = STEP_ORDER[STEP_ORDER.index(step):]
    share = SHARES[step] / (sum(SHARES[s] for s in later) + OTHER_SHARE)
    return max(1.0, clock.left_s() * share)


def _augment_step(out_dir: Path, *, seed: int, budget_s: float, console: Console,
                  device: str) -> dict:
    """Scarce labels: 5% of the digits training set labelled. Three predictors with the
    same budget, scored on the same held-out real digits: the labelled rows alone; the
    labelled rows and the other 95% present with their label empty (the network
    self-trains on them, :mod:`polymodal.api.self_training`); the labelled rows and
    images generated by a class-conditional generator trained on them.
    """
    from polymodal import datasets
    from polymodal.api.predictor import Predictor
    from polymodal.evaluate.plots import accuracy_bars_png
    from polymodal.workflows.augment import augment_table
    from polymodal.workflows.augment_folder import compare_augmentation

    train, test = datasets.load("digits", split=True, seed=seed)
    rng = np.random.default_rng(seed)
    keep = np.concatenate([rng.choice(idx, max(2, round(0.05 * len(idx))), replace=False)
                           for idx in train.groupby("label").indices.values()])
    scarce = train.iloc[np.sort(keep)].reset_index(drop=True)
    scarce.attrs = dict(train.attrs)
    partly = train.copy()
    partly.attrs = dict(train.attrs)
    partly["label"] = partly["label"].astype(object).where(
        np.isin(np.arange(len(train)), keep), None)
    generator_s, predictor_s = 0.4 * budget_s, 0.2 * budget_s
    with console.status(f"training a generator on {len(scarce)} labelled digits and sampling…"):
        augmented, summary = augment_table(scarce, label="label", per_class=AUGMENT_PER_CLASS,
                                           filter=True, time_limit=generator_s, seed=seed,
                                           verbosity=0, device=device)
    with console.status("training labelled-only and real + synthetic predictors with the same "
                        "budget…"):
        comparison = compare_augmentation(scarce, augmented, test, label="label",
                                          time_limit=predictor_s, seed=seed, device=device)
    with console.status(f"training a predictor on the {len(scarce)} labelled and "
                        f"{len(partly) - len(scarce):,} unlabelled digits…"):
        semi = Predictor("label", time_limit=predictor_s, seed=seed, verbosity=0,
                         device=device).fit(partly)
    real_acc = comparison["real_only"]["metrics"]["accuracy"]
    aug_acc = comparison["augmented"]["metrics"]["accuracy"]
    semi_acc = semi.evaluate(test)["accuracy"]
    used = semi.unlabelled_ or {}
    n_synth = int(len(augmented) - len(scarce))
    dropped = int((summary.get("filter") or {}).get("dropped", 0))
    console.print(f"labelled only {real_acc:.3f} → with {len(partly) - len(scarce):,} unlabelled "
                  f"rows {semi_acc:.3f} (lift {semi_acc - real_acc:+.3f}); with {n_synth} "
                  f"synthetic {aug_acc:.3f} (lift {aug_acc - real_acc:+.3f}); on {len(test)} "
                  "held-out real digits")
    semi_how = (f"self-training on {used.get('num_pseudo_labelled', 0):,} pseudo-labelled rows"
                if used.get("used") else "self-training tried, not kept by validation")
    table = pd.DataFrame([
        {"training data": f"{len(scarce)} labelled digits (5% of the labels)",
         "accuracy": real_acc},
        {"training data": f"{len(scarce)} labelled + {len(partly) - len(scarce):,} unlabelled "
                          f"({semi_how})", "accuracy": semi_acc},
        {"training data": f"{len(scarce)} labelled + {n_synth} synthetic ({dropped} samples "
                          "dropped by the judge)", "accuracy": aug_acc},
    ])
    chart = accuracy_bars_png(["labelled only", "+ unlabelled rows", "+ synthetic rows"],
                              table["accuracy"].tolist(),
                              title=f"held-out real accuracy ({len(test)} digits)")
    return {
        "how": (f"`polymodal fit TABLE --label label` on {len(scarce)} labelled digits (5% of "
                "the training labels), then on the same rows with the other "
                f"{len(partly) - len(scarce):,} present and their label empty (the network "
                "self-trains on them; kept only when it validates better on labelled rows), "
                f"and `polymodal augment TABLE --label label --per-class {AUGMENT_PER_CLASS} "
                "--filter --compare --out DIR` on the labelled ones; generator budget "
                f"{generator_s:.0f} s, each predictor {predictor_s:.0f} s. Neither unlabelled "
                "nor synthetic rows enter the validation or test data. One seed: "
                "`bench/augment_scarcity.py` measures the lifts over seeds with error bars."),
        "table": table,
        "chart": chart,
        "lift_text": f"{real_acc:.3f} → {aug_acc:.3f} ({aug_acc - real_acc:+.3f})",
        "unlabelled_text": f"{real_acc:.3f} → {semi_acc:.3f} ({semi_acc - real_acc:+.3f})",
        "summary": {"real_accuracy": real_acc, "augmented_accuracy": aug_acc,
                    "unlabelled_accuracy": semi_acc, "num_real": len(scarce),
                    "num_unlabelled": int(len(partly) - len(scarce)),
                    "self_training_used": bool(used.get("used")),
                    "num_synthetic": n_synth, "num_dropped": dropped,
                    "generator": {k: v for k, v in summary.items() if isinstance(v, int | float | str)}},
    }

