"""What a person watching the run sees: a live progress bar, and a JSON-lines log on disk.

The bar is transient (it disappears when the run ends), drawn on stderr, and only when
stderr is a terminal and no ``CI`` variable is set, so logs of batch jobs stay clean.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from polymodal.files import json_safe

LOG_NAME = "train_log.jsonl"


def progress_enabled(requested: bool) -> bool:
    """Whether to draw a live bar: asked for, stderr is a terminal, and not under CI."""
    return requested and sys.stderr.isatty() and not os.environ.get("CI")


class ProgressDisplay:
    """A rich progress bar over the planned steps showing the latest loss and metric."""

    def __init__(self, enabled: bool, *, total_steps: int | None, start_step: int = 0):
        self._progress = None
        if not enabled:
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._progress = Progress(
            TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[info]}"),
            console=Console(stderr=True), transient=True,
        )
        self._progress.start()
        self._task = self._progress.add_task("train", total=total_steps, completed=start_step,
                                             info="")

    def update(self, step: int, *, total_steps: int | None, info: str) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=step, total=total_steps, info=info)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


class JsonlLog:
    """Appends one JSON object per line to ``out_dir/train_log.jsonl`` (no-op without a dir)."""

    def __init__(self, out_dir: Path | None):
        self.path = None if out_dir is None else Path(out_dir) / LOG_NAME

    def write(self, record: dict[str, Any]) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(json_safe(record)) + "\n")
