"""Read what an offline W&B run really logged, straight from its `.wandb` file.

wandb 0.31 has no public reader for the transaction log that offline runs write
(`<dir>/wandb/offline-run-<time>-<id>[-N]/run-<id>.wandb`), so tests use this one.

File format (written by wandb-core's `core/pkg/leveldb`, a LevelDB-log variant):
  - a 7-byte header: b":W&B", magic 0xBEE1 (uint16 LE), version 0 (uint8);
  - then the stream is cut into 32 KiB blocks counted from the start of the file
    (so the header sits inside block 0). A block holds chunks, each with a
    7-byte header: CRC32 (uint32 LE, plain IEEE CRC-32, not masked CRC32C) over
    the type byte + payload, payload length (uint16 LE), type (1 FULL, 2 FIRST,
    3 MIDDLE, 4 LAST). A chunk never crosses a block; fewer than 7 bytes left
    in a block are zero padding;
  - each reassembled record is a serialised `wandb_internal_pb2.Record`.

In 0.31 the summary is written as many small incremental `summary` records (not one
final record) and logged values are flattened into `nested_key` paths, so this
module folds them back into plain nested dicts.
"""

from __future__ import annotations

import json
import re
import struct
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from wandb.proto import wandb_internal_pb2

FILE_IDENT = b":W&B"
FILE_MAGIC = 0xBEE1
FILE_VERSION = 0
FILE_HEADER = struct.Struct("<4sHB")
CHUNK_HEADER = struct.Struct("<IHB")
BLOCK_SIZE = 32 * 1024

CHUNK_FULL, CHUNK_FIRST, CHUNK_MIDDLE, CHUNK_LAST = 1, 2, 3, 4

# wandb's own bookkeeping entry in config and summary (runtime, code paths...), not user data.
INTERNAL_KEY = "_wandb"
TABLE_TYPES = frozenset({"table-file", "incremental-table-file", "partitioned-table", "joined-table"})
IMAGE_TYPES = frozenset({"image-file", "images/separated"})


class WandbFileError(ValueError):
    """A `.wandb` file that cannot be read: wrong format, corrupt or unexpected content."""


@dataclass
class WandbRun:
    """What one `.wandb` file says was logged."""

    path: Path
    run_id: str
    project: str
    config: dict[str, Any]
    history: list[dict[str, Any]]
    summary: dict[str, Any]
    tables: list[str]
    images: list[str]
    # None until the run's exit record is on disk (run unfinished, or wandb-core has not flushed yet).
    exit_code: int | None = None
    records: list[Any] = field(repr=False, default_factory=list)

    @property
    def finished(self) -> bool:
        return self.exit_code is not None

    def metric(self, key: str) -> list[Any]:
        """The values logged under one top-level history key, in step order (steps without it skipped)."""
        return [row[key] for row in self.history if key in row]


# ---------------------------------------------------------------- record stream


def read_records(path: str | Path, *, allow_truncated_tail: bool = True) -> list[Any]:
    """Every `Record` protobuf in a `.wandb` file, in the order written.

    A run that is still writing, or was killed, may leave a partial chunk or an
    unfinished multi-chunk record at the very end; that tail is dropped unless
    `allow_truncated_tail` is False. Corruption anywhere else always raises.
    """
    path = Path(path)
    data = path.read_bytes()
    _check_file_header(path, data)
    records = []
    for offset, payload in _record_payloads(path, data, allow_truncated_tail):
        record = wandb_internal_pb2.Record()
        try:
            record.ParseFromString(payload)
        except Exception as error:  # protobuf raises its own DecodeError type
            raise WandbFileError(f"{path}: record at byte {offset} is not a valid Record protobuf: {error}") from error
        records.append(record)
    return records


def _check_file_header(path: Path, data: bytes) -> None:
    if len(data) < FILE_HEADER.size:
        raise WandbFileError(f"{path}: {len(data)} bytes is too short for a .wandb header ({FILE_HEADER.size} bytes)")
    ident, magic, version = FILE_HEADER.unpack_from(data, 0)
    if ident != FILE_IDENT or magic != FILE_MAGIC:
        raise WandbFileError(f"{path}: not a W&B transaction log (header {data[:FILE_HEADER.size]!r})")
    if version != FILE_VERSION:
        raise WandbFileError(f"{path}: unsupported .wandb format version {version} (this reader knows {FILE_VERSION})")


def _record_payloads(path: Path, data: bytes, allow_truncated_tail: bool) -> Iterable[tuple[int, bytes]]:
    """Yield (offset of the record's first chunk, reassembled payload) for each record."""
    pos = FILE_HEADER.size
    parts: list[bytes] = []
    record_start = -1

    def truncated(reason: str) -> WandbFileError | None:
        return None if allow_truncated_tail else WandbFileError(f"{path}: truncated at byte {pos}: {reason}")

    while pos < len(data):
        left_in_block = BLOCK_SIZE - pos % BLOCK_SIZE
        if left_in_block < CHUNK_HEADER.size:
            pos += left_in_block  # block trailer: too small for a chunk header
            continue
        if pos + CHUNK_HEADER.size > len(data):
            if any(data[pos:]) and (error := truncated("partial chunk header")):
                raise error
            break
        checksum, length, chunk_type = CHUNK_HEADER.unpack_from(data, pos)
        if checksum == 0 and length == 0 and chunk_type == 0:
            pos += left_in_block  # zero fill to the end of the block
            continue
        start, end = pos + CHUNK_HEADER.size, pos + CHUNK_HEADER.size + length
        if length > left_in_block - CHUNK_HEADER.size:
            raise WandbFileError(f"{path}: chunk at byte {pos} claims {length} bytes, more than its block holds")
        if end > len(data):
            if error := truncated(f"chunk needs {length} payload bytes, file ends first"):
                raise error
            break
        if zlib.crc32(data[start:end], zlib.crc32(bytes([chunk_type]))) != checksum:
            raise WandbFileError(f"{path}: checksum mismatch in chunk at byte {pos} (file corrupt)")

        if chunk_type in (CHUNK_FULL, CHUNK_FIRST):
            if record_start >= 0:
                raise WandbFileError(f"{path}: record starting at byte {record_start} never finished before byte {pos}")
            record_start = pos
        elif chunk_type in (CHUNK_MIDDLE, CHUNK_LAST):
            if record_start < 0:
                raise WandbFileError(f"{path}: chunk at byte {pos} continues a record that never started")
        else:
            raise WandbFileError(f"{path}: unknown chunk type {chunk_type} at byte {pos}")
        parts.append(data[start:end])
        pos = end

        if chunk_type in (CHUNK_FULL, CHUNK_LAST):
            yield record_start, b"".join(parts)
            parts, record_start = [], -1

    if record_start >= 0 and (error := truncated(f"record starting at byte {record_start} has no LAST chunk")):
        raise error


# ---------------------------------------------------------------- run view


def read_run(run_dir_or_wandb_file: str | Path) -> WandbRun:
    """Fold a run's records into config, history, summary and media keys.

    Accepts the `.wandb` file itself or any directory holding exactly one
    (searched recursively, so a `dir=` passed to `wandb.init` works too).
    """
    path = _single_wandb_file(Path(run_dir_or_wandb_file))
    records = read_records(path)
    run_id, project, exit_code = "", "", None
    config: dict[str, Any] = {}
    summary: dict[str, Any] = {}
    history: list[dict[str, Any]] = []
    for record in records:
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run_id, project = record.run.run_id, record.run.project
            _apply_updates(config, record.run.config.update, record.run.config.remove)
            _apply_updates(summary, record.run.summary.update, record.run.summary.remove)
        elif kind == "config":
            _apply_updates(config, record.config.update, record.config.remove)
        elif kind == "summary":
            _apply_updates(summary, record.summary.update, record.summary.remove)
        elif kind == "history":
            history.append(_history_row(record.history))
        elif kind == "exit":
            exit_code = record.exit.exit_code
    if not run_id:
        raise WandbFileError(f"{path}: no run record found (the run never started properly)")
    config.pop(INTERNAL_KEY, None)
    summary.pop(INTERNAL_KEY, None)
    sources = [*history, summary]
    return WandbRun(
        path=path,
        run_id=run_id,
        project=project,
        config=config,
        history=history,
        summary=summary,
        tables=_keys_of_type(sources, TABLE_TYPES),
        images=_keys_of_type(sources, IMAGE_TYPES),
        exit_code=exit_code,
        records=records,
    )


def wait_until_finished(run_dir_or_wandb_file: str | Path, timeout_s: float = 30.0) -> WandbRun:
    """`read_run` once the run's exit record is on disk.

    `run.finish()` returns before wandb-core closes the file (the close is sent
    fire-and-forget), so the tail can still be missing right after it. Either
    call `wandb.teardown()` first, which waits for wandb-core, or poll with this.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            run = read_run(run_dir_or_wandb_file)
            if run.finished:
                return run
            problem = "no exit record yet"
        except (FileNotFoundError, WandbFileError) as error:
            problem = str(error)
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{run_dir_or_wandb_file}: run not finished after {timeout_s}s ({problem})")
        time.sleep(0.1)


def find_runs(root: str | Path) -> list[Path]:
    """Every `*.wandb` file under `root`, oldest run directory first.

    Run directories are named `<mode>-run-<YYYYMMDD_HHMMSS>-<id>[-N]` (the `-N`
    suffix when a same-id run starts within the same second), so a natural sort
    on the path puts them in start order.
    """
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"no such directory to search for .wandb files: {root}")
    return sorted(root.rglob("*.wandb"), key=_natural_key)


def _single_wandb_file(path: Path) -> Path:
    if path.is_file():
        return path
    if not path.exists():
        raise FileNotFoundError(f"no such run directory or .wandb file: {path}")
    found = find_runs(path)
    if len(found) != 1:
        listing = ", ".join(str(p) for p in found) or "none"
        raise WandbFileError(f"{path}: expected exactly one .wandb file, found {len(found)} ({listing}); use find_runs")
    return found[0]


def _natural_key(path: Path) -> list[list[tuple[int, int, str]]]:
    # Compare per path component so "<dir>-id" sorts before its same-second sibling "<dir>-id-1".
    return [
        [(0, int(tok), "") if tok.isdigit() else (1, 0, tok) for tok in re.split(r"(\d+)", part)]
        for part in path.parts
    ]


def _item_path(item: Any) -> list[str]:
    path = list(item.nested_key) or ([item.key] if item.key else [])
    if not path:
        raise WandbFileError(f"logged item has neither key nor nested_key: {item!r}")
    return path


def _decode_json(text: str, path: list[str]) -> Any:
    try:
        return json.loads(text)  # also accepts NaN / Infinity, which wandb writes for non-finite floats
    except json.JSONDecodeError as error:
        raise WandbFileError(f"value of {'.'.join(path)!r} is not valid JSON: {text[:80]!r}") from error


def _history_value(item: Any, path: list[str]) -> Any:
    # wandb can write the typed `value` oneof (x_history_value_encoding), the JSON text, or both.
    kind = item.WhichOneof("value")
    if kind == "none":
        return None
    if kind == "json":
        return _decode_json(item.json, path)
    if kind is not None:
        return getattr(item, kind)
    return _decode_json(item.value_json, path)


def _set_path(target: dict[str, Any], path: list[str], value: Any) -> None:
    for key in path[:-1]:
        child = target.get(key)
        if not isinstance(child, dict):
            child = target[key] = {}
        target = child
    target[path[-1]] = value


def _remove_path(target: dict[str, Any], path: list[str]) -> None:
    for key in path[:-1]:
        target = target.get(key)
        if not isinstance(target, dict):
            return
    target.pop(path[-1], None)


def _apply_updates(target: dict[str, Any], updates: Iterable[Any], removes: Iterable[Any]) -> None:
    for item in updates:
        path = _item_path(item)
        _set_path(target, path, _decode_json(item.value_json, path))
    for item in removes:
        _remove_path(target, _item_path(item))


def _history_row(history: Any) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for item in history.item:
        path = _item_path(item)
        _set_path(row, path, _history_value(item, path))
    if "_step" not in row and history.HasField("step"):
        row["_step"] = history.step.num
    return row


def _keys_of_type(sources: list[dict[str, Any]], media_types: frozenset[str]) -> list[str]:
    """Dotted keys whose value is a media dict of one of `media_types`, first-seen order."""
    found: dict[str, None] = {}

    def walk(value: dict[str, Any], prefix: str) -> None:
        for key, child in value.items():
            if isinstance(child, dict):
                name = f"{prefix}{key}"
                if child.get("_type") in media_types:
                    found.setdefault(name, None)
                else:
                    walk(child, f"{name}.")

    for source in sources:
        walk(source, "")
    return list(found)
