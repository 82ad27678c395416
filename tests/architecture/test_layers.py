"""The package's layers and cycles, checked by import-linter over the installed source.

The contracts live in pyproject.toml: data -> models -> train -> evaluate -> api ->
workflows -> serve -> cli, imports only downwards; no cycle between sibling modules; the
CLI and the service reach no lower than api/ and workflows/ (with no exceptions).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_every_import_contract_is_kept():
    lint = Path(sys.executable).with_name("lint-imports")
    if not lint.exists():
        pytest.fail("import-linter is not installed; `make test` installs it (the dev extra)")
    proc = subprocess.run([str(lint), "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
