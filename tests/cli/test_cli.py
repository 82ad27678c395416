"""The command line, driven as a user would: exit codes, one-line errors, JSON output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def test_inspect_prints_schema_with_reasons(tiny_table, run_cli):
    code, out, err = run_cli("data", "inspect", str(tiny_table), "--label", "label")
    assert code == 0, err
    for column in ("image", "caption", "audio", "price", "color", "tags", "date"):
        assert column in out
    assert "binary" in out  # the inferred problem type; --json has the structured schema


def test_inspect_json_is_machine_readable(tiny_table, run_cli):
    code, out, _ = run_cli("data", "inspect", str(tiny_table), "--label", "label", "--json")
    assert code == 0
    doc = json.loads(out)
    modalities = {c["name"]: c["modality"] for c in doc["schema"]["columns"]}
    assert modalities["image"] == "image" and modalities["audio"] == "audio"
    assert modalities["id"] == "ignored"
    assert doc["schema"]["problem_type"] == "binary"
    assert "issues" in doc["cleaning"] or doc["cleaning"]


def test_a_european_excel_export_is_read_as_numbers_and_day_first_dates(tmp_path, run_cli):
    # ';' between fields, decimal commas, currency and percent signs, dd/mm/yyyy dates.
    rows = "".join(f"€{1000 + 37 * i:,}.50;{i % 40} %;{i % 9},{i % 7};{i % 28 + 1:02d}/"
                   f"{i % 12 + 1:02d}/2021;{'ab'[(i // 3) % 2]}\n" for i in range(60))
    path = tmp_path / "export.csv"
    path.write_text("price;discount;weight;when;y\n" + rows, encoding="utf-8")
    code, out, err = run_cli("data", "inspect", str(path), "--label", "y", "--json")
    assert code == 0, err
    columns = {c["name"]: c for c in json.loads(out)["schema"]["columns"]}
    assert [columns[c]["modality"] for c in ("price", "discount", "weight", "when")] == [
        "numeric", "numeric", "numeric", "datetime"]
    assert "day first" in columns["when"]["reason"]


def test_override_changes_the_modality(tiny_table, run_cli):
    code, out, _ = run_cli(
        "data", "inspect", str(tiny_table), "--column", "price=categorical", "--json"
    )
    assert code == 0
    col = next(c for c in json.loads(out)["schema"]["columns"] if c["name"] == "price")
    assert col["modality"] == "categorical" and col["overridden"]


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["data", "inspect", "{dir}/nope.csv"], "nope.csv"),
        (["data", "inspect", "{table}", "--label", "nosuchcol"], "nosuchcol"),
        (["data", "inspect", "{table}", "--column", "nosuchcol=numeric"], "nosuchcol"),
        (["data", "inspect", "{table}", "--column", "price=colour"], "colour"),
        (["data", "inspect", "{dir}/table.xyz"], ".xyz"),
    ],
)
def test_user_errors_are_one_line_and_nonzero(tiny_table, run_cli, argv, needle):
    (tiny_table.parent / "table.xyz").write_text("a,b\n1,2\n")
    argv = [a.format(dir=tiny_table.parent, table=tiny_table) for a in argv]
    code, _, err = run_cli(*argv)
    assert code != 0
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) >= 1 and "Traceback" not in err
    assert needle in " ".join(lines)


def test_real_process_exit_code_and_no_traceback(tmp_path):
    exe = Path(sys.executable).with_name("polymodal")
    if not exe.exists():
        pytest.skip("the polymodal console script is not installed in this environment")
    proc = subprocess.run(
        [str(exe), "data", "inspect", str(tmp_path / "missing.csv")],
        capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "200"},
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "missing.csv" in proc.stderr
    # A typo in an option: click's usage message, exit 2, no traceback.
    proc = subprocess.run([str(exe), "fit", "--no-such-option"], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "COLUMNS": "200"})
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "--no-such-option" in proc.stderr


def test_datasets_list_and_export(tmp_path, run_cli):
    code, out, _ = run_cli("datasets", "list")
    assert code == 0 and "digits" in out and "shapes" in out
    code, out, err = run_cli("datasets", "export", "shapes", str(tmp_path / "s"), "--n", "20")
    assert code == 0, err
    assert (tmp_path / "s" / "train.csv").exists() and (tmp_path / "s" / "test.csv").exists()
    code, _, err = run_cli("datasets", "export", "shapes", str(tmp_path / "s"), "--n", "20")
    assert code != 0 and "Traceback" not in err
    code, _, err = run_cli("datasets", "export", "nosuch", str(tmp_path / "t"))
    assert code != 0 and "nosuch" in err


def test_verbose_shows_the_library_debug_log_and_only_while_asked(capsys):
    import logging

    from polymodal.cli import common

    log = logging.getLogger("polymodal.data.probe")
    for verbose, shown in ((True, True), (False, False)):
        common.set_verbosity(verbose, quiet=False)
        capsys.readouterr()
        log.debug("probe-record")
        assert ("probe-record" in capsys.readouterr().err) is shown
    common.set_verbosity(False, quiet=True)
    assert common.Verbosity.level == 0
    common.set_verbosity(False, quiet=False)
