"""Faults on disk: shards, the function base and student checkpoints corrupted or cut short are detected
by their checksums and refused (or regenerated) with a clear message; disk full and permission errors
name the path.

Run: .venv/bin/pytest tests/test_faults_corruption.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from generation.storage.checksums import IntegrityError, seal_directory, seal_file, verify_directory, verify_file
from generation.storage.records import RejectionRecord
from generation.storage.shards import Manifest, RecordError, commit_unit, read_records, shard_paths, write_json, write_shard

REPO_ROOT = Path(__file__).resolve().parents[1]


def rejection(i: int) -> RejectionRecord:
    return RejectionRecord(request_id=f"r{i}", prompt_hash="h", stage="s", reason_kind="parse", reason="no call",
                           asks=3, last_reply="?", model="m")


def commit(directory: Path, task: int, n: int = 3) -> None:
    commit_unit(directory, task, [task], {"rejections": [rejection(i) for i in range(n)]}, {"episodes": []})


def flip_byte(path: Path, offset: int = -40) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def cut_short(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


# -- shards --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("damage", [flip_byte, cut_short])
def test_a_damaged_shard_is_refused_by_readers_and_redone_by_generate(tmp_path, damage):
    commit(tmp_path, 0)
    commit(tmp_path, 1)
    shard = tmp_path / "rejections-00001.parquet"
    damage(shard)
    with pytest.raises(RecordError) as info:
        shard_paths(tmp_path, "rejections")  # what training and evaluation read through
    message = str(info.value)
    assert str(shard) in message and "checksum" in message and "generate" in message
    manifest = Manifest(tmp_path)
    assert manifest.done(0, [0]) and not manifest.done(1, [1])  # generate's resume redoes task 1 only
    commit(tmp_path, 1)  # the redo
    assert len(read_records(shard_paths(tmp_path, "rejections"), RejectionRecord)) == 6


def test_a_cut_short_shard_outside_a_manifest_is_named_on_read(tmp_path):
    path = write_shard([rejection(i) for i in range(5)], tmp_path / "x-00000.parquet")
    cut_short(path)
    with pytest.raises(RecordError, match=r"x-00000\.parquet: not a readable parquet shard, corrupt or cut short"):
        read_records([path], RejectionRecord)


def test_records_not_matching_the_schema_are_rejected_with_file_and_row(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [rejection(i).model_dump(mode="json") for i in range(3)]
    rows[2]["asks"] = "three"
    path = tmp_path / "bad-00000.parquet"
    pq.write_table(pa.Table.from_pylist(rows[:2] + [{**rows[2], "asks": None}]), path)
    with pytest.raises(RecordError, match=r"bad-00000\.parquet, row 2: field 'asks'"):
        read_records([path], RejectionRecord)


# -- function base and checkpoints ----------------------------------------------------------------------

def test_sealed_file_detects_flips_truncation_and_loss(tmp_path):
    path = tmp_path / "function_base.json"
    path.write_text(json.dumps({"stages": ["a"], "functions": [{"name": "f", "source": "x" * 200}]}))
    assert verify_file(path) is False  # no checksum yet: accepted, and the caller is told so
    seal_file(path)
    assert verify_file(path) is True
    flip_byte(path, 50)
    with pytest.raises(IntegrityError, match="does not match its sha256"):
        verify_file(path)
    cut_short(path)
    with pytest.raises(IntegrityError, match="cut short"):
        verify_file(path)
    path.unlink()
    with pytest.raises(IntegrityError, match="is missing"):
        verify_file(path)


def test_checkpoint_directory_checksums_name_each_damaged_file(tmp_path):
    ckpt = tmp_path / "students" / "ld"
    (ckpt / "sub").mkdir(parents=True)
    (ckpt / "config.json").write_text('{"a": 1}')
    (ckpt / "model.safetensors").write_bytes(os.urandom(4096))
    (ckpt / "sub" / "tokenizer.json").write_text("{}" * 50)
    seal_directory(ckpt)
    assert verify_directory(ckpt)
    cut_short(ckpt / "model.safetensors")
    (ckpt / "sub" / "tokenizer.json").unlink()
    with pytest.raises(IntegrityError) as info:
        verify_directory(ckpt)
    assert "model.safetensors has 2048 bytes, 4096 when written" in str(info.value)
    assert "tokenizer.json is missing" in str(info.value)


def test_pipeline_refuses_a_corrupt_checkpoint_and_function_base_before_loading(tmp_path):
    from configs.schema import RunConfig
    from ray_jobs.stages import StageError
    from ray_jobs.ld_data import check_function_base
    from ray_jobs.ld_evaluation import policy_specs

    cfg = RunConfig.model_validate({"eval": {"policies": ["teacher", "ld_student"]}})
    ckpt = tmp_path / "students" / "ld"
    ckpt.mkdir(parents=True)
    (ckpt / "config.json").write_text("{}")
    (ckpt / "model.safetensors").write_bytes(b"w" * 1000)
    seal_directory(ckpt)
    assert policy_specs(cfg, tmp_path)["ld_student"]["checkpoint"] == str(ckpt)
    flip_byte(ckpt / "model.safetensors", 10)
    with pytest.raises(StageError, match=r"student checkpoint .*students/ld is corrupt: .*model.safetensors .*"
                                         r"Delete .* rerun `logic-distill train"):
        policy_specs(cfg, tmp_path)

    base = tmp_path / "function_base.json"
    base.write_text('{"stages": [], "functions": []}')
    seal_file(base)
    check_function_base(base)
    cut_short(base)
    with pytest.raises(StageError, match="function_base.json has .* bytes.*rerun `generate`"):
        check_function_base(base)


# -- disk full and permission errors ------------------------------------------------------------------------

DISK_FULL_PROBE = textwrap.dedent("""
    import resource, signal, sys
    from generation.storage.records import RejectionRecord
    from generation.storage.shards import write_shard
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG, like a full disk
    resource.setrlimit(resource.RLIMIT_FSIZE, (2048, 2048))
    r = RejectionRecord(request_id="r", prompt_hash="h", stage="s", reason_kind="parse", reason="x" * 5000,
                        asks=1, last_reply="?", model="m")
    try:
        write_shard([r] * 50, sys.argv[1])
    except OSError as exc:
        print(f"{type(exc).__name__}|{exc.errno}|{exc}")
""")


def test_a_full_disk_surfaces_with_the_path_and_leaves_no_partial_file(tmp_path):
    target = tmp_path / "data" / "rejections-00000.parquet"
    proc = subprocess.run([sys.executable, "-c", DISK_FULL_PROBE, str(target)], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    kind, errno_, message = proc.stdout.strip().split("|", 2)
    assert int(errno_) == 27 and str(target) in message  # EFBIG, naming the shard
    assert not target.exists() and list(target.parent.iterdir()) == []  # no half shard, no temp file


def test_a_full_tmpfs_surfaces_with_the_path(tmp_path):
    mount = tmp_path / "small"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(mount)],
                      capture_output=True).returncode != 0:
        pytest.skip("mounting a tmpfs needs root")
    try:
        with pytest.raises(OSError) as info:
            write_json({"x": "y" * 100_000}, mount / "episodes-00000.json")
        assert info.value.errno == 28 and str(mount / "episodes-00000.json") in str(info.value)
        assert list(mount.iterdir()) == []
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_unwritable_destinations_surface_with_the_path(tmp_path):
    blocker = tmp_path / "data"
    blocker.write_text("a file where a directory should be")
    with pytest.raises(OSError) as info:
        write_shard([rejection(1)], blocker / "ld-00000.parquet")
    assert str(blocker) in str(info.value)
    if os.geteuid() != 0:  # root ignores file modes
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(PermissionError) as info:
            write_json({}, locked / "episodes-00000.json")
        assert str(locked / "episodes-00000.json") in str(info.value)


def test_corrupted_training_checkpoint_is_refused_on_resume(tmp_path):
    """A checkpoint cut short on disk is never resumed from; the message names it and an older one."""
    from generation.storage.checksums import seal_directory
    from training.checkpoints import TRAINER_STATE, resolve_resume, step_dir_name

    for step in (10, 20):
        ckpt = tmp_path / step_dir_name(step)
        (ckpt / "pytorch_model").mkdir(parents=True)
        (ckpt / "pytorch_model" / "mp_rank_00_model_states.pt").write_bytes(bytes(range(256)) * 40)
        (ckpt / TRAINER_STATE).write_text(f'{{"step": {step}}}')
        seal_directory(ckpt)
    assert resolve_resume("auto", tmp_path) == tmp_path / step_dir_name(20)

    shard = tmp_path / step_dir_name(20) / "pytorch_model" / "mp_rank_00_model_states.pt"
    shard.write_bytes(shard.read_bytes()[:1000])  # cut short, as by a full disk or a killed copy
    with pytest.raises(ValueError) as err:
        resolve_resume("auto", tmp_path)
    message = str(err.value)
    assert str(shard) in message and "corrupted" in message and step_dir_name(10) in message
    assert resolve_resume(str(tmp_path / step_dir_name(10)), tmp_path) == tmp_path / step_dir_name(10)
