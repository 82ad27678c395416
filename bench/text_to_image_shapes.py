"""Benchmark: text-to-image on ``shapes``, scored attribute by attribute (issue 5).

A generator conditioned on the caption alone ("a small red star at the top left") is
asked for held-out captions, and every sample is read back by an
:class:`~polymodal.workflows.attribute_judge.AttributeJudge` -- a multi-head CNN trained
from scratch on freshly rendered ``shapes`` images (another seed, more images than the
generator saw), sharing no weights with any generator. A sample counts as right on an
attribute when the judge reads the value the caption asked for; "all" needs the shape,
colour, size and position cell right at once.

Setup:

1. Training rows: ``shapes`` (seed 0, ``--train-rows``) with every row of the held-out
   colour-shape combinations removed (:data:`HELD_OUT`: red star, blue triangle).
2. Prompts: rows of another seed (1), never trained on. ``seen``: combinations that were
   in training, in new phrasings/positions; ``unseen``: the held-out combinations;
   ``reworded``: the seen rows' attributes in sentence templates the training captions
   never used (:data:`REWORDED_TEMPLATES`); ``synonyms``: the same with words for size and
   position the training captions never used ("tiny", "upper left", "in the middle";
   :data:`SYNONYMS`). Each prompt is sampled ``--samples-per-prompt`` times.
3. Contenders, each trained for the same wall budget (``--budget-s``, ``fit`` included):
   - ``caption/minilm``: ``Generator(condition=["caption"], text_encoder="minilm")``;
   - ``caption/hashed``: the same with the hashed n-gram text encoder (``--no-hashed``
     to skip);
   - ``caption/minilm+hashed``: the Generator's default text encoder (``"auto"`` with
     MiniLM installed): the sentence vector and the n-grams side by side;
   - ``caption/tokens``: the same, with the UNet cross-attending at 16x16 and 8x8 to a
     token per n-gram of the caption and one for the pooled caption
     (``recipe={"network.context_dim": 32}``);
   - ``class/factorised``: ``Generator(condition=["shape", "color", "size",
     "position"])``: the same information as structured columns. polymodal's condition
     encoder embeds each column separately and sums, so it can be asked for combinations
     it never saw, and is reported on both groups.
4. Reading aids: ``real renders`` is the judge on the prompt rows' own real images (the
   ceiling a generator's score is read against; the judge's accuracy on 1,000 held-out
   renders is printed under the table); rows marked ``*`` score the same samples against
   shuffled prompts (:func:`shuffled_truth`), the chance level given the judge's biases.

Output: one table on stdout; in ``bench/out/text_to_image_shapes[_quick]/`` (or
``--out``): ``results.json`` (command, settings, judge, per-contender scores and
training summaries), ``grid.png`` (per prompt: the real render, then samples of each
contender, left to right), ``samples.npz`` (every sample, keyed ``contender/group``) and
``judge/`` (reused by a later run with the same judge settings, or via ``--judge-dir``).

Usage (``--quick`` took 4 minutes on a shared, busy 2-core CPU; ``--budget-s 240`` with
the four default contenders 17 minutes on a quiet one, the judge reused)::

    .venv/bin/python bench/text_to_image_shapes.py --quick          # smoke run
    .venv/bin/python bench/text_to_image_shapes.py                  # 5 min per generator
    .venv/bin/python bench/text_to_image_shapes.py --budget-s 600 --no-hashed \
        --out bench/out/text_to_image_shapes_b600 --judge-dir bench/out/text_to_image_shapes/judge
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing downloads, even by accident

import numpy as np
import pandas as pd
import torch
from PIL import Image, ImageDraw

from polymodal import Generator
from polymodal.data.builtin import shapes
from polymodal.evaluate.images import make_grid, save_png
from polymodal.files import write_json
from polymodal.workflows.attribute_judge import AttributeJudge

OUT_ROOT = Path(__file__).resolve().parent / "out"
HELD_OUT = (("star", "red"), ("triangle", "blue"))  # (shape, color) never trained on
TRAIN_SEED, PROMPT_SEED = 0, 1
CLASS_COLUMNS = ["shape", "color", "size", "position"]
SCORE_KEYS = ("shape", "color", "size", "position", "all")
# Sentence shapes the training captions never use (theirs: shapes._CAPTION_TEMPLATES).
REWORDED_TEMPLATES = (
    "a picture with {a} {size} {color} {kind} {where}",
    "{Where} you can see {a} {size} {kind} coloured {color}",
    "one {color} {kind} ({size}) {where}",
    "please draw {a} {size} {color} {kind} placed {where}",
)
# Words for size and position the training captions never use (theirs: shapes.SIZE_WORDS
# and shapes.POSITION_PHRASES).
SYNONYMS = {
    "small": "tiny", "large": "huge",
    "top left": "in the upper left", "top": "along the upper edge",
    "top right": "in the upper right", "left": "on the left-hand side",
    "center": "in the middle", "right": "on the right-hand side",
    "bottom left": "in the lower left", "bottom": "along the lower edge",
    "bottom right": "in the lower right",
}
CAPTION_ONLY_GROUPS = ("reworded", "synonyms")
GRID_PROMPTS_PER_GROUP = 4
TOKEN_DIM = 32  # width of the caption tokens of the cross-attending contender
GRID_SAMPLES = 4
# The UNet on 2x2 or 4x4 patches of pixels (network.patch_size), at three widths: contenders
# "caption/TAG" and "class/TAG", run only when named in --only.
PATCH_VARIANTS = {
    "patch2": {"network.patch_size": 2, "network.base_channels": 32,
               "network.channel_mults": [1, 2, 4]},
    "patch2-2lv": {"network.patch_size": 2, "network.base_channels": 32,
                   "network.channel_mults": [1, 2]},
    "patch4": {"network.patch_size": 4, "network.base_channels": 64,
               "network.channel_mults": [1, 2]},
}


@dataclass
class Settings:
    """Everything that decides the numbers (saved with them)."""

    budget_s: float = 300.0
    """Wall seconds of each generator's ``fit`` (text embedding included)."""
    steps: int | None = None
    """Train each generator this many optimiser steps instead of for ``budget_s``: the
    contenders then compare at equal steps, whatever the machine's load."""
    train_rows: int = 6_000
    """shapes rows drawn for training, before the held-out combinations are removed."""
    prompts_per_group: int = 48
    """Prompts in each of the seen and unseen groups."""
    samples_per_prompt: int = 4
    """Images sampled per prompt (each scored on its own)."""
    judge_images: int = 30_000
    """Fresh renders the attribute judge trains on."""
    judge_epochs: int = 12
    """Training epochs of the attribute judge (epochs, not seconds: its accuracy must not
    depend on the CPU)."""
    num_steps: int | None = None
    """Sampler steps (None: the Generator's default)."""
    guidance: float | None = None
    """Classifier-free guidance scale (None: the Generator's default)."""
    hashed: bool = True
    """Also run the caption generator with the hashed n-gram text encoder."""
    coord_ablation: bool = False
    """Also run the MiniLM caption generator with coordinate channels (an ablation)."""
    spatial_ablation: bool = False
    """Also run the MiniLM caption and the factorised generators with
    ``spatial_condition`` set to the opposite of the Generator's default."""
    only: str = ""
    """Comma-separated contender names to run ("" = all)."""
    threads: int = 2
    """torch threads (1 measured faster under passive OpenMP waits, which polymodal no
    longer sets; with its short spin 2 threads train ~1.5x faster on 2 idle cores)."""
    seed: int = 0
    """Seed of the generators, their samples and the judge."""
    quick: bool = False
    """The short smoke settings of :data:`QUICK`."""
    out: str = ""
    """Output folder; "" = bench/out/text_to_image_shapes[_quick]."""
    judge_dir: str = ""
    """Folder to save the judge to / reuse it from; "" = <out>/judge."""


QUICK = {"budget_s": 45.0, "train_rows": 2_000, "prompts_per_group": 16,
         "samples_per_prompt": 2, "judge_images": 6_000, "judge_epochs": 6}


def is_held_out(table: pd.DataFrame) -> np.ndarray:
    """(N,) bool: rows whose (shape, color) is one of :data:`HELD_OUT`."""
    pairs = set(HELD_OUT)
    return np.array([(s, c) in pairs for s, c in zip(table["shape"], table["color"], strict=True)])


def build_data(settings: Settings) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """Training rows (held-out combinations removed) and the seen/unseen prompt rows."""
    table = shapes.load(split=False, n=settings.train_rows, seed=TRAIN_SEED)
    train = table[~is_held_out(table)].reset_index(drop=True)
    k = settings.prompts_per_group
    # Held-out combinations are 2 of 24: draw enough rows for k of them, with margin.
    pool = shapes.load(split=False, n=k * 18, seed=PROMPT_SEED)
    unseen = is_held_out(pool)
    prompts = {"seen": pool[~unseen].head(k).reset_index(drop=True),
               "unseen": pool[unseen].head(k).reset_index(drop=True)}
    assert len(prompts["unseen"]) == k, "prompt pool too small for the held-out combinations"
    rng = np.random.default_rng(PROMPT_SEED)
    prompts["reworded"] = reword(prompts["seen"], rng, synonyms=False)
    prompts["synonyms"] = reword(prompts["seen"], rng, synonyms=True)
    return train, prompts


def reword(rows: pd.DataFrame, rng: np.random.Generator, *, synonyms: bool) -> pd.DataFrame:
    """``rows`` with each caption rewritten from its attributes in an unseen template
    (:data:`REWORDED_TEMPLATES`), with :data:`SYNONYMS` for size and position if asked."""
    captions = []
    for shape, color, size, position in zip(*(rows[c] for c in CLASS_COLUMNS), strict=True):
        if synonyms:
            size_word, where = SYNONYMS[size], SYNONYMS[position]
        else:
            words = shapes.SIZE_WORDS[size]
            phrases = shapes.POSITION_PHRASES[position]
            size_word = words[rng.integers(len(words))]
            where = phrases[rng.integers(len(phrases))]
        template = REWORDED_TEMPLATES[rng.integers(len(REWORDED_TEMPLATES))]
        captions.append(template.format(
            a="an" if size_word[0] in "aeiou" else "a", size=size_word, color=color,
            kind=shape, where=where, Where=where[0].upper() + where[1:]))
    return rows.assign(caption=captions)


@dataclass
class Contender:
    name: str
    condition: list[str]
    text_encoder: str = "auto"
    coord_channels: bool = False
    spatial_condition: bool | None = None  # None: the Generator's default
    recipe: dict | None = None  # recipe overrides


def contenders(settings: Settings) -> list[Contender]:
    out = [Contender("caption/minilm", ["caption"], "minilm")]
    if settings.coord_ablation:
        out.append(Contender("caption/minilm-coord", ["caption"], "minilm", coord_channels=True))
    if settings.hashed:
        out.append(Contender("caption/hashed", ["caption"], "hashed"))
    out.append(Contender("caption/minilm+hashed", ["caption"], "minilm+hashed"))
    out.append(Contender("caption/tokens", ["caption"], "minilm+hashed",
                         recipe={"network.context_dim": TOKEN_DIM}))
    out.append(Contender("class/factorised", CLASS_COLUMNS))
    named = set(settings.only.split(",")) if settings.only else set()
    for tag, recipe in PATCH_VARIANTS.items():  # opt-in: --only NAME
        out += [c for c in (Contender(f"caption/{tag}", ["caption"], "minilm+hashed",
                                      recipe=recipe),
                            Contender(f"class/{tag}", CLASS_COLUMNS, recipe=recipe))
                if c.name in named]
    if settings.spatial_ablation:
        flipped = not Generator().spatial_condition
        tag = "spatial" if flipped else "no-spatial"
        out.insert(1, Contender(f"caption/minilm-{tag}", ["caption"], "minilm",
                                spatial_condition=flipped))
        out.append(Contender(f"class/factorised-{tag}", CLASS_COLUMNS,
                             spatial_condition=flipped))
    if settings.only:
        wanted = settings.only.split(",")
        unknown = sorted(set(wanted) - {c.name for c in out})
        if unknown:
            variants = [f"{kind}/{tag}" for tag in PATCH_VARIANTS for kind in ("caption", "class")]
            raise SystemExit(f"--only: unknown contender(s) {unknown}; known: "
                             f"{[c.name for c in out if c.name not in variants] + variants}")
        out = [c for c in out if c.name in wanted]
    return out


def sample_for(generator: Generator, contender: Contender, rows: pd.DataFrame,
               settings: Settings) -> tuple[np.ndarray, pd.DataFrame]:
    """``samples_per_prompt`` images per prompt row -> uint8 (N, H, W, 3) and their truth."""
    repeated = rows.loc[rows.index.repeat(settings.samples_per_prompt)].reset_index(drop=True)
    n = len(repeated)
    kwargs = dict(num_steps=settings.num_steps, guidance=settings.guidance, seed=settings.seed)
    if contender.condition == ["caption"]:
        images = generator.sample(n, prompts=repeated["caption"].tolist(), **kwargs)
    else:
        conditions = {c: repeated[c].tolist() for c in contender.condition}
        images = generator.sample(n, conditions=conditions, **kwargs)
    return images, repeated


def shuffled_truth(truth: pd.DataFrame, settings: Settings) -> pd.DataFrame:
    """The truth rows with prompts permuted (all samples of a prompt move together).

    Scoring samples against another prompt's attributes measures what the judge's biases
    and the generator's marginal distribution give with no prompt following at all: the
    chance level of each column. It is not 1/K: the unseen group asks only for stars and
    triangles, so a judge that reads blobs as stars scores 0.5 on shape there.
    """
    k = settings.samples_per_prompt
    order = np.random.default_rng(settings.seed).permutation(len(truth) // k)
    rows = (order[:, None] * k + np.arange(k)).reshape(-1)  # (N,)
    return truth.iloc[rows].reset_index(drop=True)


def run_contender(contender: Contender, train: pd.DataFrame, prompts: dict[str, pd.DataFrame],
                  judge: AttributeJudge, settings: Settings) -> dict:
    """Fit under the budget, sample every prompt group, score with the judge."""
    bound = f"{settings.steps} steps" if settings.steps else f"{settings.budget_s:g} s"
    print(f"\n== {contender.name}: fit for {bound} on {len(train):,} rows",
          flush=True)
    start = time.perf_counter()
    generator = Generator(image="image", condition=contender.condition,
                          text_encoder=contender.text_encoder,
                          time_limit=None if settings.steps else settings.budget_s,
                          coord_channels=contender.coord_channels, seed=settings.seed,
                          recipe=(contender.recipe or {}) | (
                              {"training.max_steps": settings.steps} if settings.steps else {}),
                          verbosity=1, **({} if contender.spatial_condition is None else
                                          {"spatial_condition": contender.spatial_condition}))
    generator.fit(train)
    fit_s = time.perf_counter() - start
    result: dict = {"fit_s": round(fit_s, 1), "training": generator.train_result_,
                    "scores": {}, "shuffled": {}, "samples": {}}
    for group, rows in prompts.items():
        if group in CAPTION_ONLY_GROUPS and contender.condition != ["caption"]:
            continue  # a reworded caption is the same request to a column-conditioned model
        start = time.perf_counter()
        images, truth = sample_for(generator, contender, rows, settings)
        sample_s = time.perf_counter() - start
        result["scores"][group] = judge.score(images, truth)
        result["scores"][group]["sample_images_per_s"] = round(len(images) / sample_s, 1)
        result["shuffled"][group] = judge.score(images, shuffled_truth(truth, settings))
        result["samples"][group] = images  # kept for the grid, dropped from the JSON
    return result


def judge_for(settings: Settings, folder: Path) -> AttributeJudge:
    """Train the attribute judge into ``folder``, or reuse the one an earlier run with the
    same judge settings saved there."""
    wanted = {"num_images": settings.judge_images, "time_limit_s": None,
              "max_epochs": settings.judge_epochs, "seed": settings.seed}
    if (folder / "attribute_judge.json").is_file():
        judge = AttributeJudge.load(folder)
        if all(judge.training_info.get(k) == v for k, v in wanted.items()):
            print(f"attribute judge: reusing {folder}", flush=True)
            return judge
    print(f"attribute judge: rendering {settings.judge_images:,} images and training "
          f"{settings.judge_epochs} epochs", flush=True)
    judge = AttributeJudge.train(num_images=settings.judge_images,
                                 max_epochs=settings.judge_epochs, seed=settings.seed)
    judge.save(folder)
    return judge


def print_table(results: dict, real: dict[str, dict], judge: AttributeJudge) -> str:
    """The one table: prompt accuracy per attribute, per contender and prompt group."""
    header = (f"{'contender':<24} {'prompts':<8} " + " ".join(f"{k:>8}" for k in SCORE_KEYS)
              + f" {'img/s':>7}")
    lines = [header, "-" * len(header)]
    rows = [("real renders", real)] + [(name, r["scores"]) for name, r in results.items()]
    rows += [(f"{name} *", r["shuffled"]) for name, r in results.items()]
    for i, (name, scores) in enumerate(rows):
        if i == 1 + len(results):
            lines.append("* the same samples scored against shuffled prompts (chance level)")
        for group, s in scores.items():
            speed = s.get("sample_images_per_s")
            lines.append(f"{name:<24} {group:<8} " + " ".join(f"{s[k]:>8.3f}" for k in SCORE_KEYS)
                         + (f" {speed:>7.1f}" if speed is not None and not name.endswith("*")
                            else ""))
    held = judge.holdout_accuracy
    lines.append(f"judge on {judge.training_info.get('num_holdout')} held-out renders: "
                 + ", ".join(f"{k} {held[k]:.3f}" for k in SCORE_KEYS)
                 + f" (colour read by {judge.color_method})")
    text = "\n".join(lines)
    print("\n" + text, flush=True)
    return text


def save_grid(results: dict, prompts: dict[str, pd.DataFrame], settings: Settings,
              path: Path) -> None:
    """Rows: a few prompts per group; columns: real render, then each contender's samples."""
    per_prompt = min(GRID_SAMPLES, settings.samples_per_prompt)
    tiles, labels = [], []
    for group, rows in prompts.items():
        for i in range(min(GRID_PROMPTS_PER_GROUP, len(rows))):
            tiles.append(rows["image"].iloc[i])
            for r in results.values():
                start = i * settings.samples_per_prompt
                if group in r["samples"]:
                    tiles.extend(r["samples"][group][start:start + per_prompt])
                else:  # a group this contender was not asked (white tiles)
                    tiles.extend([np.full_like(rows["image"].iloc[i], 255)] * per_prompt)
            labels.append(f"[{group}] {rows['caption'].iloc[i]}")
    ncols, scale, padding_px = 1 + per_prompt * len(results), 2, 2
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    label_px = 8 + int(max(measure.textlength(s) for s in labels))
    grid = make_grid(tiles, ncols=ncols, scale=scale, padding_px=padding_px, row_labels=labels,
                     label_width_px=label_px)
    # A header strip naming the column blocks.
    header_px, tile_px = 16, tiles[0].shape[1] * scale + padding_px
    canvas = Image.new("RGB", (grid.width, grid.height + header_px), (255, 255, 255))
    canvas.paste(grid, (0, header_px))
    draw = ImageDraw.Draw(canvas)
    draw.text((label_px + padding_px, 2), "real", fill=(0, 0, 0))
    for j, name in enumerate(results):
        x = label_px + padding_px + (1 + j * per_prompt) * tile_px
        draw.text((x, 2), name, fill=(0, 0, 0))
    save_png(canvas, path)


def seen_caption_overlap(train: pd.DataFrame, rows: pd.DataFrame) -> float:
    """Share of prompts whose exact caption text is also a training caption."""
    known = set(train["caption"])
    return float(np.mean([c in known for c in rows["caption"]]))


def parse_args(argv: list[str] | None) -> Settings:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    defaults = Settings()
    parser.add_argument("--quick", action="store_true", help="a short smoke run: " + ", ".join(
        f"{k}={v}" for k, v in QUICK.items()))
    parser.add_argument("--budget-s", type=float, help=f"seconds per generator fit "
                        f"(default {defaults.budget_s:g})")
    parser.add_argument("--steps", type=int, help="optimiser steps per generator instead of "
                        "--budget-s (equal steps whatever the load)")
    parser.add_argument("--train-rows", type=int, help="shapes rows before removing held-out "
                        f"combinations (default {defaults.train_rows})")
    parser.add_argument("--prompts-per-group", type=int)
    parser.add_argument("--samples-per-prompt", type=int)
    parser.add_argument("--judge-images", type=int)
    parser.add_argument("--judge-epochs", type=int)
    parser.add_argument("--num-steps", type=int)
    parser.add_argument("--guidance", type=float)
    parser.add_argument("--no-hashed", action="store_true", help="skip the hashed text encoder")
    parser.add_argument("--coord-ablation", action="store_true",
                        help="also run the MiniLM caption generator with coordinate channels "
                        "(an ablation; they are off by default)")
    parser.add_argument("--spatial-ablation", action="store_true",
                        help="also run the caption and factorised generators with the "
                        "opposite spatial_condition setting")
    parser.add_argument("--only", help="comma-separated contender names to run (default all)")
    parser.add_argument("--threads", type=int, help="torch threads (default 2)")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--out", help="output folder (default bench/out/text_to_image_shapes"
                        "[_quick])")
    parser.add_argument("--judge-dir", help="where the judge is saved and reused from "
                        "(default OUT/judge)")
    args = parser.parse_args(argv)
    values = asdict(defaults)
    if args.quick:
        values.update(QUICK)
    for key in values:
        given = getattr(args, key, None)
        if given is not None:
            values[key] = given
    values["hashed"] = not args.no_hashed
    values["quick"] = args.quick
    return Settings(**values)


def main(argv: list[str] | None = None) -> dict:
    settings = parse_args(argv)
    quick = settings.quick
    torch.set_num_threads(settings.threads)
    default_out = OUT_ROOT / ("text_to_image_shapes_quick" if quick else "text_to_image_shapes")
    out_dir = Path(settings.out) if settings.out else default_out
    out_dir.mkdir(parents=True, exist_ok=True)
    wall_start = time.perf_counter()

    train, prompts = build_data(settings)
    print(f"training rows: {len(train):,} (held out: "
          f"{', '.join(f'{c} {s}' for s, c in HELD_OUT)}); prompts: "
          f"{ {g: len(r) for g, r in prompts.items()} } x {settings.samples_per_prompt} samples",
          flush=True)
    judge = judge_for(settings, Path(settings.judge_dir) if settings.judge_dir
                      else out_dir / "judge")
    real = {g: judge.score(np.stack(r["image"].to_list()), r) for g, r in prompts.items()}

    results = {}
    for contender in contenders(settings):
        results[contender.name] = run_contender(contender, train, prompts, judge, settings)

    table = print_table(results, real, judge)
    save_grid(results, prompts, settings, out_dir / "grid.png")
    document = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "settings": asdict(settings),
        "held_out": [list(p) for p in HELD_OUT],
        "num_train_rows": len(train),
        "seen_prompts_with_a_training_caption": seen_caption_overlap(train, prompts["seen"]),
        "judge": judge.config(),
        "real_renders": real,
        "contenders": {name: {k: v for k, v in r.items() if k != "samples"}
                       for name, r in results.items()},
        "table": table,
        "wall_s": round(time.perf_counter() - wall_start, 1),
    }
    write_json(out_dir / "results.json", document)
    # The samples and their prompts' truth, to rescore them with another judge later.
    np.savez_compressed(out_dir / "samples.npz", **{
        f"{name}/{group}": images for name, r in results.items()
        for group, images in r["samples"].items()})
    print(f"\nwrote {out_dir / 'results.json'} and {out_dir / 'grid.png'} "
          f"({document['wall_s']:.0f} s)", flush=True)
    return document


if __name__ == "__main__":
    main()
