"""The `.wandb` reader against real offline runs and against hand-built record streams."""

from __future__ import annotations

import json
import os
import struct
import zlib
from pathlib import Path

import pytest
import wandb
from hypothesis import given, settings
from hypothesis import strategies as st
from wandb.proto import wandb_internal_pb2

from tests.wandb_reader import (
    BLOCK_SIZE,
    CHUNK_FIRST,
    CHUNK_FULL,
    CHUNK_LAST,
    CHUNK_MIDDLE,
    WandbFileError,
    find_runs,
    read_records,
    read_run,
    wait_until_finished,
)

os.environ.setdefault("WANDB_SILENT", "true")

LOSSES = [1.0, 0.5, 0.25]
LONG_TEXT = "".join(f"line {i}: the pursuer moves north\n" for i in range(3000))  # ~100 KB: spans 3+ blocks


# ---------------------------------------------------------------- real offline runs


@pytest.fixture(scope="module")
def logged_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    import numpy as np

    root = tmp_path_factory.mktemp("wandb_run")
    run = wandb.init(mode="offline", dir=root, project="t", config={"a": 1, "nested": {"b": "x"}})
    for loss in LOSSES:
        run.log({"loss": loss, "lr": 0.1})
    run.log({"long_text": LONG_TEXT})
    run.log({"samples": wandb.Table(columns=["x", "y"], data=[[1, "a"], [2, "b"]])})
    run.log({"eval": {"frame": wandb.Image(np.zeros((4, 4, 3), dtype=np.uint8))}})
    run.config.update({"late": [1, 2]})
    run.summary["best"] = 0.1
    run_id = run.id
    run.finish()
    wandb.teardown()  # finish() returns before wandb-core closes the file; teardown waits for it
    return run_id, root


def test_reads_config_history_summary_and_media(logged_run: tuple[str, Path]) -> None:
    run_id, root = logged_run
    files = find_runs(root)
    assert len(files) == 1 and files[0].name == f"run-{run_id}.wandb"

    run = read_run(root)
    assert run.run_id == run_id and run.project == "t"
    assert run.finished and run.exit_code == 0
    assert run.config == {"a": 1, "nested": {"b": "x"}, "late": [1, 2]}

    assert run.metric("loss") == LOSSES
    assert [row["_step"] for row in run.history] == list(range(6))
    assert run.history[0]["lr"] == pytest.approx(0.1)
    assert run.metric("long_text") == [LONG_TEXT]

    assert run.tables == ["samples"]
    table = run.history[4]["samples"]
    assert table["_type"] == "table-file" and table["ncols"] == 2
    saved = json.loads((files[0].parent / "files" / table["path"]).read_text())
    assert saved["data"] == [[1, "a"], [2, "b"]]
    assert run.images == ["eval.frame"]

    assert run.summary["best"] == pytest.approx(0.1)
    assert run.summary["loss"] == pytest.approx(LOSSES[-1])
    assert run.summary["samples"]["_type"] == "table-file"
    assert "_wandb" not in run.summary and "_wandb" not in run.config


def test_read_run_accepts_the_file_and_exposes_raw_records(logged_run: tuple[str, Path]) -> None:
    _, root = logged_run
    (wandb_file,) = find_runs(root)
    run = read_run(wandb_file)
    kinds = [record.WhichOneof("record_type") for record in read_records(wandb_file)]
    assert kinds[0] == "header" and "run" in kinds and kinds[-1] == "exit"
    assert [r.WhichOneof("record_type") for r in run.records] == kinds
    assert wandb_file.stat().st_size > 3 * BLOCK_SIZE  # the long text really crossed block boundaries


def test_resumed_offline_run_writes_a_second_file_with_its_own_history(tmp_path: Path) -> None:
    for attempt in range(2):
        run = wandb.init(
            mode="offline", dir=tmp_path, project="t", id="resumeme", resume="allow", config={"attempt": attempt}
        )
        for i in range(2):
            run.log({"loss": 10 * attempt + i})
        run.finish()

    files = find_runs(tmp_path)
    assert len(files) == 2
    first, second = (wait_until_finished(path) for path in files)
    assert first.run_id == second.run_id == "resumeme"
    assert first.config == {"attempt": 0} and second.config == {"attempt": 1}
    # Offline mode cannot see the earlier attempt: each file restarts at step 0.
    assert first.metric("loss") == [0, 1] and second.metric("loss") == [10, 11]
    assert second.metric("_step") == [0, 1]

    with pytest.raises(WandbFileError, match="expected exactly one .wandb file, found 2"):
        read_run(tmp_path)


# ---------------------------------------------------------------- hand-built streams


def encode_log(payloads: list[bytes]) -> bytes:
    """Write payloads the way wandb-core's leveldb writer does (header inside block 0)."""
    out = bytearray(struct.pack("<4sHB", b":W&B", 0xBEE1, 0))
    for payload in payloads:
        first = True
        while True:
            left = BLOCK_SIZE - len(out) % BLOCK_SIZE
            if left < 7:
                out += bytes(left)
                continue
            piece, payload = payload[: left - 7], payload[left - 7 :]
            last = not payload
            kind = (CHUNK_FULL if last else CHUNK_FIRST) if first else (CHUNK_LAST if last else CHUNK_MIDDLE)
            out += chunk(kind, piece)
            first = False
            if last:
                break
    return bytes(out)


def chunk(kind: int, piece: bytes) -> bytes:
    return struct.pack("<IHB", zlib.crc32(piece, zlib.crc32(bytes([kind]))), len(piece), kind) + piece


def history_record(num: int, text_len: int) -> bytes:
    record = wandb_internal_pb2.Record(num=num)
    record.history.item.add(key="text", value_json=json.dumps("y" * text_len))
    record.history.item.add(key="_step", value_json=str(num))
    return record.SerializeToString()


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=80_000), min_size=1, max_size=6))
def test_any_record_sizes_round_trip_across_blocks(tmp_path_factory: pytest.TempPathFactory, sizes: list[int]) -> None:
    path = tmp_path_factory.mktemp("stream") / "run-x.wandb"
    payloads = [history_record(i, n) for i, n in enumerate(sizes)]
    path.write_bytes(encode_log(payloads))
    assert [r.SerializeToString() for r in read_records(path)] == payloads


@pytest.mark.parametrize("pad", [0, 1, 6, 7, 8])
def test_records_ending_right_at_a_block_trailer(tmp_path: Path, pad: int) -> None:
    # File header + chunk header + first payload leave exactly `pad` bytes in block 0:
    # < 7 is a zero trailer, 7 holds an empty FIRST chunk, more holds a real one.
    payloads = [record_of_size(BLOCK_SIZE - 7 - 7 - pad), history_record(1, 5), history_record(2, 40_000)]
    path = tmp_path / "run-x.wandb"
    path.write_bytes(encode_log(payloads))
    assert [r.SerializeToString() for r in read_records(path)] == payloads


def record_of_size(size: int) -> bytes:
    """A history record whose serialised size is exactly `size` bytes."""
    text_len = size - len(history_record(0, 0))
    while len(candidate := history_record(0, text_len)) > size:
        text_len -= 1
    assert len(candidate) == size, f"cannot build a record of exactly {size} bytes"
    return candidate


def test_corrupt_and_foreign_files_raise_clear_errors(tmp_path: Path) -> None:
    path = tmp_path / "run-x.wandb"
    good = encode_log([history_record(0, 10), history_record(1, 10)])

    path.write_bytes(b"PK\x03\x04" + good[4:])
    with pytest.raises(WandbFileError, match="not a W&B transaction log"):
        read_records(path)

    flipped = bytearray(good)
    flipped[20] ^= 0xFF
    path.write_bytes(bytes(flipped))
    with pytest.raises(WandbFileError, match="checksum mismatch"):
        read_records(path)

    path.write_bytes(good[:3])
    with pytest.raises(WandbFileError, match="too short"):
        read_records(path)

    header = good[:7]
    path.write_bytes(header + chunk(CHUNK_FIRST, b"\x08") + chunk(CHUNK_FULL, b"\x08\x01"))
    with pytest.raises(WandbFileError, match="never finished"):
        read_records(path)
    path.write_bytes(header + chunk(CHUNK_LAST, b"\x08\x01"))
    with pytest.raises(WandbFileError, match="never started"):
        read_records(path)
    path.write_bytes(header + chunk(9, b"\x08\x01"))
    with pytest.raises(WandbFileError, match="unknown chunk type 9"):
        read_records(path)


def test_typed_history_values_decode_like_json_ones(tmp_path: Path) -> None:
    # wandb can write the typed `value` oneof instead of value_json (x_history_value_encoding).
    record = wandb_internal_pb2.Record(num=1)
    record.run.run_id = "typed"
    history = wandb_internal_pb2.Record(num=2)
    history.history.item.add(key="n", number=0.5)
    history.history.item.add(key="i", integer=-3)
    history.history.item.add(key="t", text="hi")
    history.history.item.add(key="b", boolean=False)
    history.history.item.add(key="z").none = 0  # NULL_VALUE
    history.history.item.add(nested_key=["j", "deep"], json='{"k": [1, NaN]}')
    history.history.step.num = 7  # no `_step` item: the reader falls back to the step field
    path = tmp_path / "run-typed.wandb"
    path.write_bytes(encode_log([record.SerializeToString(), history.SerializeToString()]))
    (row,) = read_run(path).history
    nan = row["j"]["deep"]["k"][1]
    assert nan != nan
    row["j"]["deep"]["k"][1] = "nan"
    assert row == {"n": 0.5, "i": -3, "t": "hi", "b": False, "z": None, "j": {"deep": {"k": [1, "nan"]}}, "_step": 7}


def test_truncated_tail_is_dropped_unless_strict(tmp_path: Path) -> None:
    path = tmp_path / "run-x.wandb"
    payloads = [history_record(0, 10), history_record(1, 40_000)]  # second spans two blocks
    full = encode_log(payloads)
    for cut in (len(full) - 5, BLOCK_SIZE + 3):
        path.write_bytes(full[:cut])
        assert [r.SerializeToString() for r in read_records(path)] == payloads[:1]
        with pytest.raises(WandbFileError, match="truncated"):
            read_records(path, allow_truncated_tail=False)
    # A zero-filled (preallocated) tail is padding, not a truncated record.
    path.write_bytes(full + bytes(100))
    assert [r.SerializeToString() for r in read_records(path, allow_truncated_tail=False)] == payloads


def test_wait_until_finished_times_out_on_a_run_without_exit(tmp_path: Path) -> None:
    record = wandb_internal_pb2.Record(num=1)
    record.run.run_id = "unfinished"
    path = tmp_path / "run-unfinished.wandb"
    path.write_bytes(encode_log([record.SerializeToString(), history_record(2, 3)]))
    run = read_run(path)
    assert run.run_id == "unfinished" and not run.finished and run.metric("text") == ["yyy"]
    with pytest.raises(TimeoutError, match="no exit record yet"):
        wait_until_finished(path, timeout_s=0.2)


def test_missing_paths_are_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nowhere"):
        read_run(tmp_path / "nowhere")
    with pytest.raises(WandbFileError, match="found 0"):
        read_run(tmp_path)
