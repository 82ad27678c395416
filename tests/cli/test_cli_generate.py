"""`polymodal generate fit / sample / edit / evaluate` end to end on exported digits."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from polymodal.api.generator import Generator
from polymodal.cli import main
from polymodal.evaluate.guidance_check import CANDIDATES

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """300 digits exported as CSV + PNG files, and a generator fitted on them by the CLI."""
    root = tmp_path_factory.mktemp("generate")
    with pytest.raises(SystemExit) as exc:
        main(["datasets", "export", "digits", str(root / "data"), "--n", "300"])
    assert exc.value.code == 0
    with pytest.raises(SystemExit) as exc:
        main(["generate", "fit", str(root / "data" / "train.csv"), "--image", "image",
              "--condition", "label", "--seed", "0", "--set", "training.max_epochs=4",
              "--out", str(root / "model")])
    assert exc.value.code == 0
    return root


def test_fit_saves_a_generator_with_its_training_grids(folder):
    model = folder / "model"
    generator = Generator.load(model)
    assert generator.conditions_["label"]["classes"] == [str(i) for i in range(10)]
    assert (model / "samples" / "latest.png").is_file()
    assert list((model / "samples").glob("step_*.png"))
    assert (model / "train_log.jsonl").read_text().count('"event": "end"') == 1
    assert generator.recipe_.training.max_epochs == 4  # --set reached the recipe, saved
    # guidance "auto" (the default) chose a number, logged and saved in the recipe.
    log = [json.loads(line) for line in (model / "train_log.jsonl").read_text().splitlines()]
    chosen = [e for e in log if e.get("event") == "guidance"]
    assert len(chosen) == 1 and chosen[0]["guidance"] in CANDIDATES
    assert generator.recipe_.sampling.guidance == chosen[0]["guidance"]


def test_a_guidance_set_at_fit_is_kept_without_the_check(folder, run_cli):
    code, _, err = run_cli("generate", "fit", folder / "data" / "train.csv", "--condition",
                           "label", "--set", "training.max_epochs=1", "--set",
                           "sampling.guidance=2", "--out", folder / "guided")
    assert code == 0, err
    assert Generator.load(folder / "guided").recipe_.sampling.guidance == 2.0
    assert '"event": "guidance"' not in (folder / "guided" / "train_log.jsonl").read_text()


def test_sample_writes_one_grid(folder, run_cli):
    grid = folder / "grid.png"
    code, out, err = run_cli("generate", "sample", folder / "model", "--condition",
                             "label=7", "-n", "6", "--steps", "4", "--guidance", "2",
                             "--out", grid)
    assert code == 0, err
    width, height = Image.open(grid).size
    assert width > 2 * 64 and height > 64  # 6 tiles of 8x8 scaled to 64 px


def test_more_images_than_memory_holds_is_one_line(folder, run_cli):
    grid = folder / "huge.png"
    code, _, err = run_cli("generate", "sample", folder / "model", "--condition", "label=7",
                           "-n", "10000000000000", "--out", grid)
    assert code == 2 and "n=10,000,000,000,000" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and not grid.exists()


def test_sample_writes_one_png_per_image_into_a_folder(folder, run_cli):
    target = folder / "samples-out"
    code, out, err = run_cli("generate", "sample", folder / "model", "--condition",
                             "label=3", "--condition", "label=8", "-n", "4", "--seed", "1",
                             "--out", target)
    assert code == 0, err
    files = sorted(target.glob("*.png"))
    assert [f.name for f in files] == [f"sample_{i:04d}.png" for i in range(4)]
    assert all(Image.open(f).size == (8, 8) for f in files)
    # The same command with the API gives the same pixels (label 3 twice, then 8 twice).
    expected = Generator.load(folder / "model").sample(
        4, conditions={"label": ["3", "3", "8", "8"]}, seed=1)
    np.testing.assert_array_equal(np.stack([np.asarray(Image.open(f)) for f in files]),
                                  expected[..., 0])
    code, _, err = run_cli("generate", "sample", folder / "model", "--condition",
                           "label=1", "--out", target)
    assert code == 2 and "not an empty folder" in err


def test_edit_with_strength_zero_and_with_a_mask(folder, run_cli):
    source = folder / "data" / pd.read_csv(folder / "data" / "test.csv")["image"][0]
    original = np.asarray(Image.open(source))
    same = folder / "same.png"
    code, _, err = run_cli("generate", "edit", folder / "model", "--image", source,
                           "--strength", "0", "--out", same)
    assert code == 0, err
    np.testing.assert_array_equal(np.asarray(Image.open(same)), original)

    keep = np.zeros((8, 8), dtype=np.uint8)
    keep[:4] = 255  # keep the top half
    Image.fromarray(keep).save(folder / "mask.png")
    filled = folder / "filled.png"
    code, _, err = run_cli("generate", "edit", folder / "model", "--image", source,
                           "--mask", folder / "mask.png", "--condition", "label=5",
                           "--out", filled)
    assert code == 0, err
    result = np.asarray(Image.open(filled))
    np.testing.assert_array_equal(result[:4], original[:4])


def test_edit_and_sample_write_the_image_type_out_names(folder, run_cli):
    source = folder / "data" / pd.read_csv(folder / "data" / "test.csv")["image"][0]
    code, _, err = run_cli("generate", "edit", folder / "model", "--image", source,
                           "--strength", "0", "--out", folder / "same.jpg")
    assert code == 0, err
    assert Image.open(folder / "same.jpg").format == "JPEG"
    code, _, err = run_cli("generate", "sample", folder / "model", "--condition", "label=2",
                           "-n", "2", "--steps", "2", "--out", folder / "grid.webp")
    assert code == 0, err
    assert (folder / "grid.webp").is_file() and Image.open(folder / "grid.webp").format == "WEBP"


@pytest.mark.parametrize("args, out, message", [
    ([], "a-folder", "is a folder"),
    ([], "edited.txt", ".txt is not an image file type"),
    (["--condition", "label=1", "--condition", "label=2"], "e.png", "edit makes one image"),
])
def test_bad_edit_input_is_one_line_before_editing(folder, run_cli, args, out, message):
    (folder / "a-folder").mkdir(exist_ok=True)
    source = folder / "data" / pd.read_csv(folder / "data" / "test.csv")["image"][0]
    code, _, err = run_cli("generate", "edit", folder / "model", "--image", source, *args,
                           "--out", folder / out)
    assert code == 2 and "Traceback" not in err and "Errno" not in err
    assert message in " ".join(err.split()) and len(err.strip().splitlines()) == 1
    assert list((folder / "a-folder").iterdir()) == [] and not (folder / "edited.txt").exists()


@pytest.mark.parametrize("args, message", [
    (["--condition", "label=42"], "never saw; known classes"),
    (["--prompt", "a seven"], "no text prompts"),
    (["--guidance", "50"], "guidance=50.0 must be a number in [0, 20]"),
    (["--steps", "0"], "num_steps=0 must be an integer in [1, 1000]"),
    (["--condition", "label"], "must look like COLUMN=VALUE"),
    (["--condition", "label=1", "--condition", "label=2", "-n", "3"], "not a multiple"),
])
def test_bad_sampling_input_is_one_line_and_exit_2(folder, run_cli, args, message):
    code, _, err = run_cli("generate", "sample", folder / "model", *args,
                           "--out", folder / "bad.png")
    assert code == 2
    assert message in " ".join(err.split()) and "Traceback" not in err


@pytest.mark.parametrize("args, out, message", [
    (["--time-limit", "nan"], "n", "time_limit=nan must be a number of seconds > 0"),
    (["--image-size", "100000"], "s", "image_size=100000 must be an integer in [8, 1024]"),
    ([], "data/train.csv/model", "is a file, not a folder"),
    ([], "/proc/polymodal-model", "cannot be made"),
])
def test_bad_fit_input_is_one_line_from_the_installed_command(folder, args, out, message):
    """What the user would otherwise meet: a misleading budget message (nan), a traceback
    allocating 480 GB (100,000 px), an errno naming a hidden temporary folder (an --out
    that cannot be made)."""
    import subprocess
    import sys
    from pathlib import Path

    if out.startswith("/proc") and not Path("/proc").is_dir():
        pytest.skip("no /proc here")
    exe = Path(sys.executable).with_name("polymodal")
    done = subprocess.run([str(exe), "generate", "fit", "data/train.csv", "--condition", "label",
                           "--steps", "1", *args, "--out", out], capture_output=True, text=True,
                          timeout=600, cwd=folder)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert len(done.stderr.strip().splitlines()) == 1 and message in done.stderr, done.stderr
    assert not (folder / out).exists() and ".train-" not in done.stderr


def test_fit_refuses_to_overwrite_a_user_folder_before_training(folder, run_cli):
    mine = folder / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    code, _, err = run_cli("generate", "fit", folder / "data" / "train.csv",
                           "--condition", "label", "--out", mine)
    assert code == 2 and "not a polymodal model folder" in err
    assert (mine / "notes.txt").read_text() == "keep me"


def test_fit_on_a_column_without_images(folder, run_cli):
    code, _, err = run_cli("generate", "fit", folder / "data" / "train.csv",
                           "--image", "label", "--time-limit", "1", "--out", folder / "x")
    assert code == 2 and "not an image" in err


def test_a_bad_recipe_override_is_one_line_before_training(folder, run_cli):
    code, _, err = run_cli("generate", "fit", folder / "data" / "train.csv", "--condition",
                           "label", "--set", "training.lrr=1", "--out", folder / "y")
    assert code == 2 and "'training.lrr'" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and not (folder / "y").exists()


def test_evaluate_writes_a_report(folder, run_cli):
    code, out, err = run_cli("generate", "evaluate", folder / "model",
                             folder / "data" / "test.csv", "--judge", "pixels",
                             "--n-samples", "16", "--steps", "4", "--out", folder / "eval")
    assert code == 0, err
    assert (folder / "eval" / "report.md").is_file() and (folder / "eval" / "report.html").is_file()


def test_a_step_budget_gives_the_same_generator_twice(folder):
    """``--steps`` (not a wall-clock limit) makes training reproducible: the installed
    command, run twice with the same seed, writes identical weights."""
    import subprocess
    import sys
    from pathlib import Path

    exe = Path(sys.executable).with_name("polymodal")
    weights = []
    for k in range(2):
        out = folder / f"steps-{k}"
        done = subprocess.run([str(exe), "generate", "fit", str(folder / "data" / "train.csv"),
                               "--image", "image", "--condition", "label", "--steps", "3",
                               # a fixed scale: the guidance check samples, it trains nothing
                               "--set", "sampling.guidance=3", "--seed", "0", "--out", str(out)],
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
        weights.append((out / "weights.safetensors").read_bytes())
        assert Generator.load(out).train_result_["steps"] == 3
    assert weights[0] == weights[1]


def test_an_audio_condition_through_the_installed_command(tiny_table, tmp_path):
    """An image generated from a clip: ``generate fit`` with an audio column as the
    condition, then ``generate sample`` from clip paths; a clip that cannot be heard is one
    line and exit status 2, not a silently unconditioned sample."""
    import subprocess
    import sys
    from pathlib import Path

    exe = Path(sys.executable).with_name("polymodal")
    rows = pd.read_csv(tiny_table)
    table = tiny_table.parent / "double.csv"  # 16 images, the fewest a fit takes
    pd.concat([rows, rows], ignore_index=True).to_csv(table, index=False)
    (tmp_path / "notes.txt").write_text("not a recording")

    def polymodal(*args) -> subprocess.CompletedProcess:
        return subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True,
                              timeout=600, cwd=tmp_path)

    done = polymodal("generate", "fit", table, "--image", "image", "--condition", "audio",
                     "--steps", "3", "--text-encoder", "hashed", "--seed", "0", "--out", "gen")
    assert done.returncode == 0, done.stderr[-2000:]
    assert Generator.load(tmp_path / "gen").conditions_["audio"]["modality"] == "audio"
    done = polymodal("generate", "sample", "gen", "--condition", "audio=audio/clip_0.wav",
                     "--condition", "audio=audio/clip_7.wav", "-n", "4", "--steps", "2",
                     "--out", "clips")
    assert done.returncode == 0, done.stderr[-2000:]
    files = sorted((tmp_path / "clips").glob("*.png"))
    assert len(files) == 4 and all(Image.open(f).size == (8, 8) for f in files)
    # The same clips through the API give the same pixels.
    expected = Generator.load(tmp_path / "gen").sample(
        4, conditions={"audio": [str(tmp_path / "audio" / f"clip_{i}.wav") for i in (0, 7)]},
        num_steps=2)
    np.testing.assert_array_equal(np.stack([np.asarray(Image.open(f)) for f in files]), expected)
    for clip, words in (("audio/missing.wav", "file not found"),
                        ("notes.txt", "not decodable audio")):
        done = polymodal("generate", "sample", "gen", "--condition", f"audio={clip}", "-n", "2",
                         "--out", "bad.png")
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
        assert "audio" in done.stderr and clip in done.stderr and words in done.stderr
        assert not (tmp_path / "bad.png").exists()


def test_a_caption_generator_with_tokens_through_the_installed_command(tmp_path):
    """``generate fit --condition caption --set network.context_dim=8`` then ``generate
    sample --prompt``: the saved folder cross-attends to the caption's tokens, samples the
    same pixels as the API, and a bad token width is one line and exit status 2."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    exe = Path(sys.executable).with_name("polymodal")

    def polymodal(*args) -> subprocess.CompletedProcess:
        return subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True,
                              timeout=600, cwd=tmp_path)

    done = polymodal("datasets", "export", "shapes", "data", "--n", "48")
    assert done.returncode == 0, done.stderr[-2000:]
    done = polymodal("generate", "fit", "data/train.csv", "--image", "image", "--condition",
                     "caption", "--text-encoder", "hashed", "--steps", "3", "--set",
                     "network.context_dim=8", "--seed", "0", "--out", "gen")
    assert done.returncode == 0, done.stderr[-2000:]
    network = json.loads((tmp_path / "gen" / "config.json").read_text())["network"]
    assert network["unet"]["cross_attn_dim"] == 8 and network["unet"]["context_tokens"] > 1
    done = polymodal("generate", "sample", "gen", "--prompt", "a small red star at the top left",
                     "-n", "2", "--steps", "2", "--out", "stars")
    assert done.returncode == 0, done.stderr[-2000:]
    files = sorted((tmp_path / "stars").glob("*.png"))
    expected = Generator.load(tmp_path / "gen").sample(
        2, prompts=["a small red star at the top left"], num_steps=2)
    np.testing.assert_array_equal(np.stack([np.asarray(Image.open(f)) for f in files]), expected)
    done = polymodal("generate", "fit", "data/train.csv", "--condition", "caption", "--steps",
                     "1", "--set", "network.context_dim=-4", "--out", "bad")
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "network.context_dim=-4" in done.stderr
