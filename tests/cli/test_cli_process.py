"""The installed ``polymodal`` script, run in a subprocess as a user runs it.

In-process tests cannot see what a changed dependency does to the console script (typer
0.2x ships its own copy of click, whose usage errors the entry point must still catch), so
these run the script that ``pip install`` wrote next to this interpreter.
"""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

EXE = Path(sys.executable).with_name("polymodal")

pytestmark = pytest.mark.skipif(not EXE.exists(), reason="the polymodal console script is "
                                "not installed next to this interpreter")


def polymodal(*argv, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run the installed script; a wide terminal so no message is wrapped."""
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    return subprocess.run([str(EXE), *map(str, argv)], capture_output=True, text=True,
                          timeout=600, env=env, cwd=cwd)


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


# Each kind of usage error, and the token the message must name.
USAGE_ERRORS = {
    "unknown option": (["fit", "table.csv", "--label", "y", "--out", "m", "--bogus"], "--bogus"),
    "missing argument": (["predict"], "model_dir"),
    "missing option": (["fit", "table.csv"], "--label"),
    "bad value": (["generate", "sample", "m", "--out", "g.png", "-n", "many"], "-n"),
    "bad choice": (["fit", "table.csv", "--label", "y", "--out", "m", "--device", "tpu"], "tpu"),
    "misspelt command": (["fitt"], "fitt"),
    "misspelt subcommand": (["generate", "smaple"], "smaple"),
    "unknown top-level option": (["--bogus"], "--bogus"),
}


@pytest.mark.parametrize("kind", list(USAGE_ERRORS))
def test_usage_errors_are_one_line_with_the_usage_hint_and_exit_2(kind, tmp_path):
    argv, token = USAGE_ERRORS[kind]
    proc = polymodal(*argv, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    err = lines(proc.stderr)
    # The usage line, the hint to --help, and one line saying what is wrong.
    assert err[0].startswith("Usage: polymodal") and len(err) == 3, proc.stderr
    assert token in err[-1]
    assert proc.stdout == ""


def test_version_option_and_command():
    expected = importlib.metadata.version("polymodal")
    proc = polymodal("--version")
    assert proc.returncode == 0 and lines(proc.stdout) == [f"polymodal {expected}"]
    proc = polymodal("version")
    assert proc.returncode == 0 and f"polymodal {expected}" in proc.stdout


def _command_paths() -> list[list[str]]:
    """Every leaf command of the app, as its words after ``polymodal``."""
    import typer

    from polymodal.cli import app

    def walk(command, prefix):
        children = getattr(command, "commands", None)
        if not children:
            return [prefix]
        return [path for name, child in sorted(children.items())
                for path in walk(child, [*prefix, name])]

    return walk(typer.main.get_command(app), [])


COMMANDS = _command_paths()


@pytest.mark.parametrize("words", COMMANDS, ids=[" ".join(w) for w in COMMANDS])
def test_every_command_has_verbosity_options_and_ends_its_help_with_an_example(words):
    proc = polymodal(*words, "--help")
    assert proc.returncode == 0, proc.stderr
    assert "--verbose" in proc.stdout and "--quiet" in proc.stdout
    last = lines(proc.stdout)[-1]
    assert "Example:" in last and f"polymodal {' '.join(words)}" in last, last


@pytest.mark.parametrize("words", [["fit"], ["predict"], ["evaluate"], ["generate", "fit"],
                                   ["generate", "sample"], ["generate", "edit"],
                                   ["generate", "evaluate"], ["serve"]])
def test_training_and_sampling_commands_take_a_device(words):
    proc = polymodal(*words, "--help")
    assert proc.returncode == 0 and "--device" in proc.stdout


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device")
def test_an_absent_gpu_is_one_line_and_exit_2(tiny_table, tmp_path):
    proc = polymodal("fit", tiny_table, "--label", "label", "--out", tmp_path / "m",
                     "--device", "cuda")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    err = lines(proc.stderr)
    assert len(err) == 1 and "cuda" in err[0]
    assert not (tmp_path / "m").exists()  # refused before any work


def test_verbose_and_quiet_together_is_a_usage_mistake(tmp_path):
    proc = polymodal("datasets", "list", "-v", "-q")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert len(lines(proc.stderr)) == 1


def test_quiet_fit_prints_only_its_result(tiny_table, tmp_path):
    normal = polymodal("fit", tiny_table, "--label", "label", "--out", tmp_path / "a",
                       "--device", "cpu")
    quiet = polymodal("fit", tiny_table, "--label", "label", "--out", tmp_path / "b",
                      "--device", "cpu", "-q")
    assert normal.returncode == 0 and quiet.returncode == 0, quiet.stderr
    assert (tmp_path / "b" / "config.json").is_file()
    # Normal output has the leaderboard and a line per candidate; quiet only the result,
    # the same last line (but for the folder's name).
    assert len(lines(normal.stdout)) > 1 and len(lines(normal.stderr)) > 1
    assert len(lines(quiet.stdout)) == 1 and lines(quiet.stderr) == []
    assert lines(quiet.stdout)[0] == lines(normal.stdout)[-1].replace(
        str(tmp_path / "a"), str(tmp_path / "b"))


def test_quiet_generate_fit_and_augment_print_only_their_result(tmp_path):
    data = tmp_path / "digits"
    assert polymodal("datasets", "export", "digits", data, "--n", "120", "-q").returncode == 0
    gen = polymodal("generate", "fit", data / "train.csv", "--condition", "label", "--out",
                    tmp_path / "gen", "--steps", "3", "--device", "cpu", "-q")
    assert gen.returncode == 0, gen.stderr
    assert len(lines(gen.stdout)) == 1 and lines(gen.stderr) == []
    aug = polymodal("augment", data / "train.csv", "--label", "label", "--out", tmp_path / "aug",
                    "--generator", tmp_path / "gen", "--per-class", "2", "--device", "cpu", "-q")
    assert aug.returncode == 0, aug.stderr
    assert len(lines(aug.stdout)) == 1 and lines(aug.stderr) == []
    assert (tmp_path / "aug" / "augmented.csv").is_file()
