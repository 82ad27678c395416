"""``fit`` under ``torchrun``: rank 0 does the fit, every rank trains the network.

Under ``torchrun --nproc_per_node=N`` (``WORLD_SIZE`` > 1) every process runs the same
``fit``. Rank 0 alone reads the table, infers the schema, fits the transforms and the
classic candidates, prints, and returns the fitted model (the CLI saves it on rank 0
only). When the network is about to train, rank 0 sends the other ranks one message — the
frozen transform (the JSON a model folder holds), the network and loop settings, and which
rows each rank trains on — and every rank trains it with the shared loop
(:mod:`polymodal.train.distributed`: DDP, gloo on CPU), which takes every decision that
ends training (time limit, early stopping, epochs, steps) on rank 0 and shares it. Last,
rank 0 sends "done" or its error, so that a user error on rank 0 (a missing file, a bad
column) ends every rank with the same one-line error rather than a hang. On the other
ranks ``fit`` returns the estimator unfitted.

The transform travels from rank 0 rather than being derived again on each rank: deriving
it would read the whole table on every rank, and some choices are timed (under a time
limit the text encoder is MiniLM or hashed n-grams by a timed probe), so ranks could
choose differently.

Rows: when the table is a folder of Parquet (or Feather) shards with at least one file per
rank, rank r reads only files r, r + N, r + 2N, ... and trains on the training rows among
them (rank 0 takes the same rows from the table it read). Every epoch gives each rank
ceil(rows / N) of its rows in a new seeded order (:class:`~polymodal.train.distributed.
RankRows`), so an epoch is as many rows and steps as in one process; a smaller share
repeats a few rows, a larger one leaves a few for the next epoch. Otherwise — one file, a
table that is not a shard folder, rows added to the table (synthetic ones), or shares more
unequal than ``MIN_SHARE_RATIO`` — rank 0 sends the training rows themselves and the
loop's ``DistributedSampler`` gives each rank 1/N of them each epoch. A table too large for
memory (:mod:`polymodal.api.streamed_fit`) streams on every rank: rank 0 sends which rows
to leave out, and each rank reads its own row groups
(:class:`~polymodal.data.stream_batches.StreamedBatches`). Rank 0's console and the
training log (event ``distributed``) say which was done and why.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from polymodal import errors
from polymodal.api.fit_data import training_dataset
from polymodal.api.neural import NeuralCandidate
from polymodal.data.generator_rows import training_rows
from polymodal.data.readers import read_shard_subset, shard_row_counts
from polymodal.data.split import take_rows
from polymodal.data.stream_batches import StreamedBatches
from polymodal.data.transforms import TRANSFORM_FILE, TableTransform
from polymodal.train.devices import resolve_device
from polymodal.train.distributed import DistributedContext, RankRows
from polymodal.train.generator_fit import train_generator

# Each rank's own shards are used only when the smallest share has at least this share of
# the largest's rows and at least MIN_SHARD_ROWS rows: an epoch gives every rank the same
# number of rows, so a small share repeats rows and a large one leaves some for later.
MIN_SHARE_RATIO = 0.8
MIN_SHARD_ROWS = 16


@dataclasses.dataclass
class Ranks:
    """This process's place in a ``torchrun`` group (one process: nothing to do), and on
    rank 0 what the other ranks need to find their rows."""

    ctx: DistributedContext
    phase: str = "before"  # "before" the network trains, "training", "after"
    shards: dict | None = None  # the table's attrs["shards"] (a shard folder), else None
    table_rows: int = 0  # rows of the table the positions index
    positions: np.ndarray | None = None  # table positions of the network's training rows
    frame: pd.DataFrame | None = None  # those rows, sent when the shards cannot be used
    seed: int = 0  # the fit's: seeds each rank's order of its own rows
    ended: bool = False  # rank 0's last message was sent (rank 0) or received (the others)

    @property
    def follower(self) -> bool:
        """A rank other than 0: it only trains the network with rank 0."""
        return self.ctx.enabled and not self.ctx.is_main

    @property
    def leads(self) -> bool:
        """Rank 0 of more than one process."""
        return self.ctx.enabled and self.ctx.is_main

    def training_rows(self, rows: pd.DataFrame, positions: np.ndarray | None, *,
                      table_rows: int, seed: int) -> None:
        """Rank 0: the network trains on ``rows``, the rows at ``positions`` of the table
        read (``table_rows`` rows; ``positions`` None when they are not only its rows)."""
        if self.leads:
            self.seed = seed
            self.shards = rows.attrs.get("shards")
            self.table_rows = table_rows
            self.positions = None if positions is None else np.asarray(positions)
            self.frame = rows

    # --- messages ----------------------------------------------------------------------

    def send(self, message: dict) -> None:
        self.ctx.broadcast_object(message)

    def receive(self) -> dict:
        return self.ctx.broadcast_object(None)

    # --- rank 0: the network's rows --------------------------------------------------

    def lead(self, model: str, dataset, settings: Callable[[], dict], *,
             say: Callable[[str], None], log: list) -> object:
        """Rank 0, just before the network trains: send the other ranks ``settings()`` and
        their rows; return the dataset rank 0 trains on (``dataset`` or its own share).
        In a single process: ``dataset``, and nothing else is done."""
        if not self.leads:
            return dataset
        world = self.ctx.world_size
        if getattr(dataset, "batches_itself", False):  # a streamed table: its own row groups
            say(f"network: {world} processes train it, each reading its own row groups of "
                "the streamed table")
            log.append({"event": "distributed", "world_size": world, "rows": "stream",
                        "reason": "the table streams"})
            self.send({"kind": "train", "model": model, **settings(),
                       "rows": {"mode": "stream", **dataset.spec()}})
            self.phase = "training"
            return dataset
        plan, reason = self._shard_plan(len(dataset))
        if plan is None:
            rows = {"mode": "sampler", "frame": self.frame}
            say(f"network: {world} processes train it, each on 1/{world} of the "
                f"{len(dataset):,} training rows per epoch ({reason})")
        else:
            rows = {"mode": "shards", **{k: v for k, v in plan.items() if k != "own"}}
            low, high = min(map(len, plan["rows"])), max(map(len, plan["rows"]))
            say(f"network: {world} processes train it, each on the training rows of its own "
                f"shard files (rank r reads files r, r+{world}, ...: "
                f"{f'{low:,}-' if low < high else ''}{high:,} rows each)")
        log.append({"event": "distributed", "world_size": world, "rows": rows["mode"],
                    "reason": reason})
        self.send({"kind": "train", "model": model, **settings(), "rows": rows})
        self.phase = "training"
        if plan is None:
            return dataset
        return RankRows(dataset, plan["own"], plan["length"], seed=plan["seed"])

    def _shard_plan(self, num_rows: int) -> tuple[dict | None, str]:
        """Which training rows each rank reads from its own shard files, or None and why not."""
        world, shards, positions = self.ctx.world_size, self.shards, self.positions
        if shards is None:
            return None, "the table is not a folder of Parquet shards"
        if positions is None or len(positions) != num_rows:
            return None, "synthetic rows, in no shard file, train too"
        if len(shards["files"]) < world:
            return None, (f"the shard folder has {len(shards['files'])} file(s), fewer than "
                          f"the {world} processes")
        counts = np.asarray(shard_row_counts(shards), dtype=np.int64)
        if int(counts.sum()) != self.table_rows:
            return None, "the table read is not every row of its shard files"
        starts = np.concatenate([[0], np.cumsum(counts)])
        file_of = np.searchsorted(starts, positions, side="right") - 1  # (N,) file of each row
        per_rank = [np.flatnonzero(file_of % world == r) for r in range(world)]
        sizes = [len(r) for r in per_rank]
        if min(sizes) < MIN_SHARD_ROWS or min(sizes) < MIN_SHARE_RATIO * max(sizes):
            return None, (f"the ranks' shard files hold {min(sizes):,}-{max(sizes):,} "
                          "training rows each: too few or too unequal to train on as they are")
        files, rows = [], []
        for r, own in enumerate(per_rank):
            mine = np.arange(r, len(counts), world)  # this rank's files
            offsets = np.zeros(len(counts), dtype=np.int64)
            offsets[mine] = np.concatenate([[0], np.cumsum(counts[mine])[:-1]])
            files.append([shards["files"][f] for f in mine])
            # Positions within the rank's files read one after another, in dataset order.
            rows.append(offsets[file_of[own]] + positions[own] - starts[file_of[own]])
        return {"shards": shards, "files": files, "rows": rows,
                "file_rows": [int(counts[r::world].sum()) for r in range(world)],
                "base_dir": self.frame.attrs.get("base_dir") if self.frame is not None else None,
                "length": -(-num_rows // world), "seed": self.seed,
                "own": per_rank[0]}, "a shard folder"

    # --- the other ranks ---------------------------------------------------------------

    def own_rows(self, rows: dict) -> pd.DataFrame:
        """A follower's training rows: read from its own shard files, or as rank 0 sent them."""
        if rows["mode"] == "sampler":
            return rows["frame"]
        rank = self.ctx.rank
        frame = read_shard_subset(rows["shards"], rows["files"][rank],
                                  base_dir=rows["base_dir"])
        if len(frame) != rows["file_rows"][rank]:
            raise errors.DataError(
                f"{rows['shards']['folder']}: shard files {rows['files'][rank][:3]}... hold "
                f"{len(frame):,} rows now but {rows['file_rows'][rank]:,} when rank 0 read "
                "them; leave the shard folder unchanged while training")
        return take_rows(frame, np.asarray(rows["rows"][rank]))

    def follow(self, train: Callable[[Ranks, dict], None]) -> None:
        """A follower's whole fit: train when rank 0 says so; end as rank 0 ends (with its
        error, if it had one)."""
        while True:
            message = self.receive()
            if message["kind"] == "train":
                self.phase = "training"
                train(self, message)
                self.phase = "after"
                continue
            self.ended = True  # rank 0's last message: every rank is at the end
            if message.get("error") is not None:
                raise _rank0_error(*message["error"])
            return


def launched_rank() -> int | None:
    """This process's rank when ``torchrun`` started more than one process, else None."""
    try:
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            return int(os.environ.get("RANK", "0"))
    except ValueError:
        return None  # DistributedContext.from_env names the bad value when fit starts
    return None


@contextlib.contextmanager
def rank_group(device: str) -> Iterator[Ranks]:
    """The ``torchrun`` group for one ``fit`` (joined here, left at the end when this
    joined it); rank 0's last message to the others, "done" or its error, when it ends.

    After an error while the network trains no message is sent (the others are inside the
    loop's collectives): the process exits and ``torchrun`` stops the rest."""
    ctx = DistributedContext.from_env(resolve_device(device).type)
    ranks = Ranks(ctx)
    try:
        yield ranks
    except Exception as exc:
        if ranks.leads and ranks.phase != "training":
            ranks.send({"kind": "end", "error": (type(exc).__name__, str(exc))})
            ranks.ended = True
        ctx.close(in_step=ranks.ended)
        raise
    except BaseException:
        ctx.close()
        raise
    if ranks.leads:
        ranks.send({"kind": "end", "error": None})
        ranks.ended = True
    ctx.close(in_step=ranks.ended)


def _rank0_error(kind: str, message: str) -> Exception:
    """Rank 0's error, raised again on another rank: a user error as the same one-line
    error class (so each rank exits 2 with the same line), anything else as a RuntimeError."""
    cls = getattr(errors, kind, None)
    if isinstance(cls, type) and issubclass(cls, errors.PolymodalError):
        return cls(message)
    if kind in ("OSError", "FileNotFoundError", "PermissionError", "IsADirectoryError"):
        return OSError(message)
    return RuntimeError(f"rank 0 failed with {kind}: {message}")


# --- the frozen transform, as the model folder writes it ------------------------------


def transform_text(transform: TableTransform) -> str:
    """The fitted transform as the JSON text of its saved file."""
    with tempfile.TemporaryDirectory() as folder:
        transform.save(folder)
        return (Path(folder) / TRANSFORM_FILE).read_text(encoding="utf-8")


def transform_from_text(text: str) -> TableTransform:
    """The transform :func:`transform_text` described, loaded as a model folder's is."""
    json.loads(text)  # fail here, clearly, on anything that is not the JSON sent
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / TRANSFORM_FILE).write_text(text, encoding="utf-8")
        return TableTransform.load(folder)


# --- what the other ranks train --------------------------------------------------------


def train_predictor_share(ranks: Ranks, message: dict) -> None:
    """A follower's part of the Predictor's network: the same network, settings and seed as
    rank 0's, on its own rows; rank 0 evaluates, keeps the best weights and saves."""
    transform = transform_from_text(message["transform"])
    if message["rows"]["mode"] == "stream":  # reads its own row groups (set_shard)
        dataset = StreamedBatches.from_spec(message["rows"], transform)
    else:
        dataset = training_dataset(ranks.own_rows(message["rows"]), transform,
                                   seed=message["seed"])
    if message["rows"]["mode"] == "shards":
        dataset = RankRows(dataset, range(len(dataset)), message["rows"]["length"],
                           seed=message["rows"]["seed"] + ranks.ctx.rank)
    candidate = NeuralCandidate(transform.feature_spec(), message["network"],
                                seed=message["seed"], label_smoothing=message["label_smoothing"])
    candidate.fit(dataset, None, config=dataclasses.replace(message["config"], progress=False),
                  score=None, metric_name=message["metric"], metric_mode=message["mode"],
                  out_dir=message["out_dir"], resume=message["resume"])


def train_generator_share(ranks: Ranks, message: dict, *, generator) -> None:
    """A follower's part of the Generator's network: rank 0's network, settings and seed
    on its own rows; rank 0 evaluates, writes the sample grids and saves."""
    transform = transform_from_text(message["transform"])
    image, conditions = message["image"], list(message["conditions"])
    frame = ranks.own_rows(message["rows"])
    columns = frame[[image, *conditions]].reset_index(drop=True)
    columns.attrs = dict(frame.attrs)  # base_dir: where relative image paths resolve
    dataset, _ = training_rows(columns, transform, image)
    if len(dataset) != len(columns):
        raise errors.DataError(f"{len(columns) - len(dataset)} image(s) of {image!r} that "
                               "rank 0 decoded cannot be read on this rank; give every process "
                               "the same files")
    if message["rows"]["mode"] == "shards":
        dataset = RankRows(dataset, range(len(dataset)), message["rows"]["length"],
                           seed=message["rows"]["seed"] + ranks.ctx.rank)
    generator.transform_, generator.conditions_ = transform, message["conditions"]
    generator.image_shape_, generator.recipe_ = message["image_shape"], message["recipe"]
    try:
        network = generator._build_network()
        train_generator(network, dataset, dataclasses.replace(message["config"], progress=False),
                        out_dir=message["out_dir"], resume=message["resume"], write_grid=None)
    finally:
        for name in ("transform_", "conditions_", "image_shape_", "recipe_"):
            delattr(generator, name)  # this rank's generator stays unfitted
