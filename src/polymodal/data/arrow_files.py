"""Columnar files: Parquet, Feather / Arrow IPC, folders of shards, and saved `datasets`.

- :func:`read_arrow_file`: one Parquet, Feather or Arrow IPC file (file or stream format;
  ``datasets`` writes streams).
- :func:`read_shard_folder`: a folder of Parquet (or Feather) shards as one table through
  ``pyarrow.dataset``, hive partitions (``key=value/`` folders) becoming columns. Every
  shard's footer is checked against the first one's before any data is read, so shards
  written with different columns or types are refused by name.
- :func:`read_saved_dataset`: a folder written by ``Dataset.save_to_disk`` (its
  ``state.json`` lists the Arrow files, its ``dataset_info.json`` the features).

All of them convert through :func:`~polymodal.data.arrow_tables.table_to_frame`, so
Hugging Face Image/Audio structs and ClassLabel names are read the same way everywhere.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from polymodal.data.arrow_tables import table_to_frame
from polymodal.errors import DataError

_KIND = {"parquet": "Parquet", "feather": "Feather", "arrow": "Arrow IPC"}


def read_arrow_file(path: Path, fmt: str, notes: list[str]) -> pd.DataFrame:
    """One Parquet (``fmt`` "parquet"), Feather ("feather") or Arrow IPC ("arrow") file."""
    table = _read_table(path, fmt)
    return table_to_frame(table, notes, where=lambda row: f"{path.name} row {row + 1}")


def _read_table(path: Path, fmt: str):
    import pyarrow as pa

    try:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            return pq.read_table(path)
        if fmt == "feather":
            import pyarrow.feather as feather

            return feather.read_table(path)
        with pa.memory_map(str(path), "r") as source:
            try:
                return pa.ipc.open_file(source).read_all()
            except pa.ArrowInvalid:
                source.seek(0)
                return pa.ipc.open_stream(source).read_all()
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise DataError(
            f"{path}: not a valid {_KIND[fmt]} file (corrupt or truncated: "
            f"{str(exc).splitlines()[0]}); write it again, e.g. with df.to_parquet(...)"
        ) from None


def read_shard_folder(folder: Path, files: list[Path], fmt: str, notes: list[str]) -> pd.DataFrame:
    """Shards of one table (in name order), hive partition folders included."""
    import pyarrow as pa

    dataset, fragments, partition_fields = shard_dataset(folder, files, fmt)
    try:
        table = dataset.to_table()
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise DataError(
            f"{folder}: cannot read the shards ({str(exc).splitlines()[0]}); check them one by one"
        ) from None

    def where(row: int) -> str:
        """The shard and its row for a row of the table (only asked when noting a cell)."""
        start = 0
        for path, fragment in zip(files, fragments, strict=True):
            count = fragment.count_rows()
            if row < start + count:
                return f"{path.relative_to(folder)} row {row - start + 1}"
            start += count
        return f"row {row + 1}"

    partitions = [f.name for f in partition_fields]
    notes.append(
        f"shard folder: {len(files)} {_KIND[fmt]} files read as one table"
        + (f"; hive partition columns {partitions}" if partitions else "")
    )
    return table_to_frame(table, notes, where=where)


def shard_dataset(folder: Path, files: list[Path], fmt: str):
    """``(dataset, fragments, partition_fields)``: the shards as one ``pyarrow.dataset``
    whose schema every shard fits (checked footer by footer, nothing else read), its
    fragments in ``files`` order, and the hive partition fields it adds."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    arrow_format = "ipc" if fmt in ("feather", "arrow") else "parquet"
    try:
        dataset = ds.dataset(
            [str(f) for f in files],
            format=arrow_format,
            partitioning=ds.HivePartitioning.discover(infer_dictionary=False),
            partition_base_dir=str(folder),
        )
        fragments = list(dataset.get_fragments())
        schemas = [fragment.physical_schema for fragment in fragments]
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise DataError(
            f"{folder}: a shard is not a valid {_KIND[fmt]} file ({str(exc).splitlines()[0]}); "
            "remove it or write it again"
        ) from None
    unified = _checked_schema(folder, files, schemas)
    partition_fields = [f for f in dataset.schema if f.name not in unified.names]
    schema = pa.schema(list(unified) + partition_fields, metadata=schemas[0].metadata)
    if not schema.equals(dataset.schema):  # the first shard's schema does not fit them all
        dataset = ds.dataset(
            [str(f) for f in files],
            schema=schema,
            format=arrow_format,
            partitioning=ds.HivePartitioning.discover(infer_dictionary=False),
            partition_base_dir=str(folder),
        )
        fragments = list(dataset.get_fragments())
    return dataset, fragments, partition_fields


def _checked_schema(folder: Path, files: list[Path], schemas: list):
    """The shards' common schema; an error naming the first shard that differs.

    A column that is all-null in one shard (typed ``null`` there) takes the others' type.
    """
    import pyarrow as pa

    first = schemas[0]
    for path, schema in zip(files[1:], schemas[1:], strict=True):
        where = f"{folder}: shard {path.relative_to(folder)}"
        reference = files[0].relative_to(folder)
        missing = [n for n in first.names if n not in schema.names]
        extra = [n for n in schema.names if n not in first.names]
        if missing or extra:
            raise DataError(
                f"{where} has different columns from {reference} (missing {missing}, extra "
                f"{extra}); write every shard with the same columns"
            )
        for field in schema:
            other = first.field(field.name).type
            if field.type != other and not (pa.types.is_null(field.type) or pa.types.is_null(other)):
                raise DataError(
                    f"{where}: column {field.name!r} is {field.type} there but {other} in "
                    f"{reference}; write every shard with the same column types"
                )
    return pa.unify_schemas([s.remove_metadata() for s in schemas])


def read_saved_dataset(folder: Path, notes: list[str]) -> pd.DataFrame:
    """A folder written by ``datasets.Dataset.save_to_disk``."""
    import pyarrow as pa

    try:
        state = json.loads((folder / "state.json").read_text(encoding="utf-8"))
        info = json.loads((folder / "dataset_info.json").read_text(encoding="utf-8"))
        names = [entry["filename"] for entry in state["_data_files"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(
            f"{folder}: state.json/dataset_info.json are not what Dataset.save_to_disk writes "
            f"({exc}); save the dataset again"
        ) from None
    missing = [name for name in names if not (folder / name).is_file()]
    if missing:
        raise DataError(f"{folder}: state.json lists {missing} but they are not in the folder; "
                        "copy the whole saved dataset")
    tables = [_read_table(folder / name, "arrow") for name in names]
    try:
        table = pa.concat_tables(tables)
    except pa.ArrowInvalid as exc:
        raise DataError(f"{folder}: its Arrow files do not share one schema ({exc}); save the "
                        "dataset again") from None
    features = info.get("features") if isinstance(info, dict) else None
    notes.append(f"Hugging Face dataset saved with save_to_disk: {len(names)} Arrow file(s)")
    return table_to_frame(table, notes, features=features if isinstance(features, dict) else None)
