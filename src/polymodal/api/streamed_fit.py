"""``Predictor.fit`` on a table larger than memory: what changes when the table streams.

When :func:`~polymodal.data.streaming.open_stream` finds the training table too large for
memory, ``fit`` keeps its steps but feeds them differently:

1. :func:`sample_rows` — a seeded sample of :data:`SAMPLE_ROWS` rows (read unit by unit)
   stands in for the table in steps 1-3: the schema, the cleaning report, the validation
   split (at most :data:`~polymodal.data.split.MAX_VALIDATION_ROWS` rows) and the fitted
   transforms; the classic candidates train on the sample's training rows (a bounded
   sample, whatever the table's size);
2. :func:`training_batches` — the network trains on every other labelled row of the table,
   streamed by :class:`~polymodal.data.stream_batches.StreamedBatches` (shuffled by unit
   and within a buffer, sharded by rank and worker);
3. :func:`report` — what each part saw and the peak memory, on the console and in the
   training log (``event: "streamed"``).

Everything counts against ``time_limit`` as in the in-memory fit: the sample and the
label pass are read inside the same budget.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from polymodal.data.stream_batches import StreamedBatches
from polymodal.data.streaming import TableStream, open_stream
from polymodal.errors import ConfigError

SAMPLE_ROWS = 100_000  # rows that infer the schema, fit the transforms and the classic models


def open_large_table(table, *, tuning_data, augment) -> TableStream | None:
    """The stream over ``table`` when it is a columnar file or shard folder too large for
    memory (:mod:`polymodal.data.streaming`), else None."""
    stream = open_stream(table)
    if stream is not None and (tuning_data is not None or augment is not None):
        what = "tuning_data" if tuning_data is not None else "augment"
        raise ConfigError(f"{what}= is not supported when the training table streams "
                          f"({stream.describe()}); leave {what}=None, or raise the threshold")
    return stream


def sample_rows(p, stream: TableStream, log: list) -> pd.DataFrame:
    """Step 1: a seeded sample of the table's rows, in table order, with their global
    positions in ``attrs["positions"]``."""
    start = time.perf_counter()
    p._say(f"[bold]streaming[/] the table: {stream.describe()}")
    rng = np.random.default_rng(p.seed)
    positions = np.sort(rng.choice(stream.num_rows, size=min(stream.num_rows, SAMPLE_ROWS),
                                   replace=False))
    sample = stream.sample(positions)
    log.append({"event": "stream_sample", "num_rows": len(sample),
                "time_s": time.perf_counter() - start})
    p._say(f"  schema, transforms and classic models from a seeded sample of "
           f"{len(sample):,} rows")
    sample.attrs.update(positions=positions, streamed_rows=stream.num_rows)
    return sample


def text_encoder(kind: str, table, say) -> str:
    """``kind``, except that ``"auto"`` embeds the texts of a streamed table (``table`` is
    its sample) with hashed n-grams: every epoch encodes every row again, which MiniLM
    could not do for a table this size within any time limit."""
    if kind != "auto" or "streamed_rows" not in getattr(table, "attrs", {}):
        return kind
    say("[yellow]note:[/] text embedded with hashed n-grams, not MiniLM, as the table "
        "streams (pass text_encoder='minilm' / --text-encoder minilm to insist)")
    return "hashed"


def training_batches(p, stream: TableStream, sample: pd.DataFrame, log: list
                     ) -> StreamedBatches:
    """Step 2: the network's training rows — every labelled row of the table but the
    validation rows — streamed; sets ``validation_rows_`` to the validation rows' global
    positions (``train_rows_`` is None: every other labelled row trains)."""
    start = time.perf_counter()
    positions = sample.attrs["positions"]
    exclude = np.sort(positions[p.validation_rows_])
    p.validation_rows_, p.train_rows_ = exclude, None
    p.data_fingerprint_["sample_of_rows"] = stream.num_rows  # the fingerprint is the sample's
    labelled = stream.present_counts(p.schema_.label)  # (U,) one pass over the label
    units = np.searchsorted(stream.offsets, exclude, side="right") - 1
    usable = labelled - np.bincount(units, minlength=stream.num_units)
    batches = StreamedBatches(stream, p.transform_, batch_size=p.recipe_.training.batch_size,
                              exclude=exclude, usable_rows=np.maximum(usable, 0), seed=p.seed)
    log.append({"event": "stream_labels", "num_labelled_rows": int(labelled.sum()),
                "time_s": time.perf_counter() - start})
    return batches


def labelled_estimate(stream: TableStream, sample: pd.DataFrame, label: str) -> int:
    """Labelled rows of the table, estimated from the sample (for the recipe)."""
    from polymodal.data.cells import present_mask

    share = float(present_mask(sample[label]).mean()) if label in sample.columns else 1.0
    return max(1, int(share * stream.num_rows))


def report(p, stream: TableStream, batches: StreamedBatches, run, sample_rows: int) -> dict:
    """Step 3: what each part saw and the peak memory, said and logged; returns it."""
    neural = next((r for r in run.log if r.get("event") == "candidate"
                   and r.get("model") == "neural"), {})
    classic = next((r for r in run.log if r.get("event") == "flat_features"), {})
    summary = {
        "event": "streamed", "num_rows": stream.num_rows, "num_files": len(stream.files),
        "num_units": stream.num_units, "estimated_bytes": stream.estimated_bytes,
        "threshold_bytes": stream.threshold_bytes, "threshold": stream.threshold_reason,
        "sample_rows": sample_rows,
        "classic_rows": classic.get("classic_train_rows"),
        "validation_rows": len(p.validation_rows_),
        "network_rows_per_epoch": batches.num_rows,
        "network_rows_seen": neural.get("images_seen"),
        "network_epochs": neural.get("epochs"), "peak_rss_bytes": peak_rss_bytes(),
        # What bounds memory, whatever the table's size: the sample, one shuffle buffer
        # and one unit are the most rows held at once.
        "max_rows_in_memory": sample_rows + batches.buffer_rows + int(stream.unit_rows().max()),
    }
    seen = summary["network_rows_seen"]
    p._say(f"streamed: {summary['num_rows']:,} rows; schema and transforms from "
           f"{summary['sample_rows']:,} sampled rows, classic models from "
           f"{summary['classic_rows'] or 0:,}, validation {summary['validation_rows']:,}, "
           f"network {'skipped' if seen is None else f'{seen:,} rows'} "
           f"({batches.num_rows:,} per epoch); at most "
           f"{summary['max_rows_in_memory']:,} rows in memory at once, peak memory "
           f"{summary['peak_rss_bytes'] / 2**30:.2f} GiB")
    return summary


def peak_rss_bytes() -> int:
    """This process's peak resident memory so far (0 where the platform does not say)."""
    try:
        import resource
    except ImportError:  # not on Unix
        return 0
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024  # KiB on Linux
