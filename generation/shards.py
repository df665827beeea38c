"""Sharded record storage with the `datasets` library: parquet shards written atomically.

A shard is written to a temporary name and renamed into place, so a reader never sees half a
shard; reading validates every row against its record schema and names file and row on failure.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, TypeVar

from pydantic import ValidationError

from generation.records import Record

R = TypeVar("R", bound=Record)


class RecordError(ValueError):
    """A stored record that does not match its schema."""


def write_shard(records: Iterable[Record], path: str | Path) -> Path:
    from datasets import Dataset
    from datasets.utils.logging import disable_progress_bar

    disable_progress_bar()  # one bar per shard would drown the job's own progress display
    rows = [r.model_dump(mode="json") for r in records]
    if not rows:
        raise ValueError(f"refusing to write an empty shard to {path}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    Dataset.from_list(rows).to_parquet(str(tmp))
    os.replace(tmp, path)
    return path


def shard_paths(directory: str | Path, prefix: str) -> list[Path]:
    return sorted(Path(directory).glob(f"{prefix}-*.parquet"))


def read_records(paths: Iterable[str | Path], schema: type[R]) -> list[R]:
    import pyarrow.parquet as pq

    out: list[R] = []
    for path in paths:
        for row_no, row in enumerate(pq.read_table(str(path)).to_pylist()):
            try:
                out.append(schema.model_validate(row))
            except ValidationError as exc:
                first = exc.errors()[0]
                loc = ".".join(str(p) for p in first["loc"])
                raise RecordError(f"{path}, row {row_no}: field '{loc}': {first['msg']}") from None
    return out
