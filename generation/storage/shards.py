"""Sharded record storage: parquet shards written atomically, and a manifest of finished tasks.

A shard is written to a temporary name and renamed into place, so a reader never sees half a
shard; reading validates every row against its record schema and names file and row on failure.

Exactly-once output: a generation unit writes its shards (`ld-00007.parquet`, ...) and only then
appends one line to `manifest.jsonl` naming each file with its sha256 and row count. A unit is done
iff its line is there and its files still match; anything else (a crash between the two, a torn last
line, a changed file) is redone, overwriting the same names. `shard_paths` lists only what the
manifest lists when there is one, so readers never see a half-done unit's shards.
"""

from __future__ import annotations

import hashlib
import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, TypeVar

from pydantic import ValidationError

from generation.storage.records import Record

R = TypeVar("R", bound=Record)
T = TypeVar("T")
MANIFEST_NAME = "manifest.jsonl"


class RecordError(ValueError):
    """A stored record that does not match its schema."""


class PlanChanged(ValueError):
    """A resumed job cuts its work into other units than the run directory's manifest recorded."""


def write_shard(records: Iterable[Record], path: str | Path) -> Path:
    from datasets import Dataset
    from datasets.utils.logging import disable_progress_bar

    disable_progress_bar()  # one bar per shard would drown the job's own progress display
    rows = [r.model_dump(mode="json") for r in records]
    if not rows:
        raise ValueError(f"refusing to write an empty shard to {path}")
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with _naming_path(path, tmp):
        path.parent.mkdir(parents=True, exist_ok=True)
        Dataset.from_list(rows).to_parquet(str(tmp))
        os.replace(tmp, path)
    return path


@contextmanager
def _naming_path(path: Path, tmp: Path):
    """Disk full, permission denied...: re-raised naming the file we were writing (pyarrow and
    `write` say only "No space left on device"); the half-written temporary file is removed."""
    try:
        yield
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if exc.filename is not None and str(path) in str(exc.filename):
            raise
        raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc  # errno keeps the subclass


def write_json(data: Any, path: str | Path) -> Path:
    """A JSON file written atomically (temporary name, then rename), its folder made if need be."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with _naming_path(path, tmp):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(data))
        os.replace(tmp, path)
    return path


def shard_paths(directory: str | Path, prefix: str) -> list[Path]:
    """The `prefix-*.parquet` shards of a directory: those of finished units when it has a manifest."""
    directory = Path(directory)
    if (directory / MANIFEST_NAME).exists():
        return Manifest(directory).verified_paths(prefix)
    return sorted(directory.glob(f"{prefix}-*.parquet"))


def read_records(paths: Iterable[str | Path], schema: type[R]) -> list[R]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    out: list[R] = []
    for path in paths:
        try:
            rows = pq.read_table(str(path)).to_pylist()
        except (OSError, pa.ArrowException) as exc:
            if not Path(path).is_file():
                raise
            # pyarrow says "Parquet magic bytes not found": say which file, and what that means
            raise RecordError(f"{path}: not a readable parquet shard, corrupt or cut short ({exc}); "
                              f"delete it and rerun `generate` to regenerate it") from None
        for row_no, row in enumerate(rows):
            try:
                out.append(schema.model_validate(row))
            except ValidationError as exc:
                first = exc.errors()[0]
                loc = ".".join(str(p) for p in first["loc"])
                raise RecordError(f"{path}, row {row_no}: field '{loc}': {first['msg']}") from None
    return out


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class Manifest:
    """The finished units of one output directory, as an append-only journal (one JSON line per unit).

    Only the driver appends. A line is written in one `write` and fsynced; a line cut short by a kill
    is ignored on load and cut off before the next append. The last line for a unit wins.
    """

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        self.path = self.directory / MANIFEST_NAME
        self.entries: dict[int, dict[str, Any]] = {}
        self._good_bytes = 0
        if self.path.exists():
            self._load()

    def _load(self) -> None:
        data = self.path.read_bytes()
        offset = 0
        for line in data.splitlines(keepends=True):
            if not line.endswith(b"\n"):
                break  # torn tail
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                break
            self.entries[int(entry.get("unit", entry.get("task")))] = entry  # "task": manifests before the rename
            offset += len(line)
        self._good_bytes = offset

    def problems(self, entry: dict[str, Any]) -> list[str]:
        """Why a committed unit's files no longer match its line (empty: they do)."""
        out = []
        for name, meta in entry["files"].items():
            path = self.directory / name
            if not path.is_file():
                out.append(f"{name} is missing")
            elif path.stat().st_size != meta["bytes"] or file_sha256(path) != meta["sha256"]:
                out.append(f"{name} does not match its checksum")
        return out

    def done(self, unit: int, seeds: list[int] | list[str]) -> bool:
        """Whether work unit `unit` is committed and intact. `seeds` are its inputs: episode seeds for LD,
        question or request ids for DoC and LtR (the field keeps its first name so old manifests still load)."""
        entry = self.entries.get(unit)
        if entry is None:
            return False
        if list(entry["seeds"]) != list(seeds):
            raise PlanChanged(
                f"{self.path}: unit {unit} was generated for {entry['seeds'][:5]}..., the plan now gives "
                f"{list(seeds)[:5]}...: the inputs or the way work is cut (e.g. generation.episodes_per_unit) "
                f"changed since; use a new run directory (or the old settings) to resume")
        return not self.problems(entry)

    def commit(self, unit: int, seeds: list[int], files: list[Path], info: dict[str, Any] | None = None) -> dict:
        """Record a finished unit whose `files` (inside the directory) are already written."""
        entry = {"unit": unit, "seeds": list(seeds),
                 "files": {p.name: {"sha256": file_sha256(p), "bytes": p.stat().st_size} for p in files},
                 **(info or {})}
        line = (json.dumps(entry, sort_keys=True) + "\n").encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            os.ftruncate(fd, self._good_bytes)  # drop a torn tail left by a kill
            os.lseek(fd, self._good_bytes, os.SEEK_SET)
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
        self._good_bytes += len(line)
        self.entries[unit] = entry
        return entry

    def verified_paths(self, prefix: str) -> list[Path]:
        """`paths(prefix)`, refusing any shard changed or cut short since its unit was committed."""
        bad = [f"{self.directory / name}: {problem.split(' ', 1)[1]}"
               for entry in self.entries.values() for problem in self.problems(entry)
               for name in [problem.split(" ", 1)[0]] if name.startswith(f"{prefix}-")]
        if bad:
            raise RecordError("shard(s) do not match the checksums in " f"{self.path}: " + "; ".join(bad) +
                              ". Rerun `logic-distill generate` on this run directory: it regenerates those units")
        return self.paths(prefix)

    def paths(self, prefix: str) -> list[Path]:
        names = sorted(name for entry in self.entries.values() for name in entry["files"]
                       if name.startswith(f"{prefix}-") and name.endswith(".parquet"))
        return [self.directory / name for name in names]


def plan_units(inputs: list[T], size: int) -> list[tuple[int, list[T]]]:
    """Inputs (seeds, questions, requests) cut into numbered units of `size`, in order: each unit is committed
    at once (its shards, then its manifest line), so a rerun redoes at most the units a kill cut off."""
    return [(i, inputs[j:j + size]) for i, j in enumerate(range(0, len(inputs), size))]


def commit_unit(directory: str | Path, unit: int, seeds: list[int], shards: dict[str, list[Record]],
                extra_json: dict[str, Any] | None = None, info: dict[str, Any] | None = None,
                manifest: Manifest | None = None) -> dict[str, Any]:
    """Write a unit's shards (`<prefix>-<unit>.parquet`, empty ones skipped) and, if given, `extra_json` as
    `episodes-<unit>.json`, then commit them to the manifest. Rerunning it for the same unit overwrites the
    same files."""
    directory = Path(directory)
    manifest = manifest or Manifest(directory)
    files = [write_shard(records, directory / f"{prefix}-{unit:05d}.parquet")
             for prefix, records in shards.items() if records]
    if extra_json is not None:
        files.append(write_json(extra_json, directory / f"episodes-{unit:05d}.json"))
    return manifest.commit(unit, seeds, files, info)
