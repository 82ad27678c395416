"""WebDataset-style tar shards: one sample per key, an image beside a sidecar JSON.

A WebDataset shard is a plain tar whose members are grouped by key: the member's path up
to the first dot of its file name (``shard/000017.jpg`` and ``shard/000017.json`` are one
sample, key ``shard/000017``). Each sample becomes one row: ``__key__``, the image (or
audio) member's bytes in an ``image`` (``audio``) column, the JSON member's top-level
fields as columns, and any other member (``.cls``, ``.txt``) as a column named by its
extension. Shards are read in name order, members in tar order.
"""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pandas as pd

from polymodal.data.media import AUDIO_EXTENSIONS, IMAGE_EXTENSIONS
from polymodal.errors import DataError

_LISTED = 10


def read_tar_shards(shards: list[Path], notes: list[str]) -> pd.DataFrame:
    rows: list[dict] = []
    problems: list[str] = []
    for shard in shards:
        try:
            with tarfile.open(shard) as archive:
                samples = _samples(archive, shard, problems)
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise DataError(
                f"{shard}: not a readable tar shard ({exc}); write it again or remove it"
            ) from None
        rows.extend(samples)
    if not rows:
        raise DataError(
            f"{shards[0] if len(shards) == 1 else shards[0].parent}: the tar shards hold no "
            "samples (members named KEY.EXT, e.g. 000001.jpg and 000001.json)"
        )
    frame = pd.DataFrame(rows)
    for media in ("image", "audio"):
        if media in frame.columns:
            missing = frame.index[frame[media].isna()].tolist()
            if missing:
                keys = ", ".join(str(frame.at[i, "__key__"]) for i in missing[:_LISTED])
                problems.append(f"samples with no {media} member (left empty): {keys}")
    if problems:
        shown = "; ".join(problems[:_LISTED])
        more = f"; and {len(problems) - _LISTED} more" if len(problems) > _LISTED else ""
        notes.append(f"WebDataset shards: {shown}{more}")
    notes.append(f"WebDataset: {len(rows)} samples from {len(shards)} tar shard(s)")
    media_columns = [m for m in ("image", "audio") if m in frame.columns]
    frame.attrs["column_notes"] = {
        m: f"WebDataset tar shards: each sample's {m} member, as bytes" for m in media_columns
    }
    return frame


def _samples(archive: tarfile.TarFile, shard: Path, problems: list[str]) -> list[dict]:
    samples: dict[str, dict] = {}
    for member in archive:
        if not member.isfile():
            continue
        directory, _, file_name = member.name.rpartition("/")
        if file_name.startswith(".") or "." not in file_name:
            continue
        stem, _, extension = file_name.partition(".")
        key = f"{directory}/{stem}" if directory else stem
        sample = samples.setdefault(key, {"__key__": key})
        data = archive.extractfile(member).read()
        suffix = "." + extension.lower().rsplit(".", 1)[-1]
        if suffix in IMAGE_EXTENSIONS:
            sample["image"] = data
        elif suffix in AUDIO_EXTENSIONS:
            sample["audio"] = data
        elif suffix == ".json":
            try:
                fields = json.loads(data)
            except (ValueError, UnicodeDecodeError) as exc:
                problems.append(f"{shard.name}:{member.name}: invalid JSON ({exc}) — fields left empty")
                continue
            if isinstance(fields, dict):
                for name, value in fields.items():
                    sample.setdefault(name, value)
            else:
                problems.append(f"{shard.name}:{member.name}: JSON is not an object — skipped")
        else:
            text = data.decode("utf-8", errors="replace").strip()
            sample[extension.lower()] = int(text) if extension.lower() == "cls" and text.lstrip("-").isdigit() else text
    return list(samples.values())
