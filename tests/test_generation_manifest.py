"""Exactly-once output without Ray: shards + manifest commits, torn lines, checksums, changed plans.

Run: .venv/bin/pytest tests/test_generation_manifest.py
"""

from __future__ import annotations

import pytest

from generation.storage.records import RejectionRecord
from generation.storage.shards import MANIFEST_NAME, Manifest, commit_unit, read_records, shard_paths, write_shard


def rejection(i: int) -> RejectionRecord:
    return RejectionRecord(request_id=f"r{i}", prompt_hash="h", stage="s", reason_kind="parse", reason="no call",
                           asks=3, last_reply="?", model="m")


def commit(directory, task: int, n: int, manifest=None):
    return commit_unit(directory, task, [task * 10, task * 10 + 1], {"rejections": [rejection(i) for i in range(n)],
                                                                     "ld": []},
                       {"episodes": [], "usage": {}}, {"rows": {"rejections": n}}, manifest)


def test_committed_tasks_are_done_and_readers_see_only_them(tmp_path):
    commit(tmp_path, 0, 2)
    commit(tmp_path, 1, 3)
    write_shard([rejection(9)], tmp_path / "rejections-00002.parquet")  # a task killed before its commit
    manifest = Manifest(tmp_path)
    assert manifest.done(0, [0, 1]) and manifest.done(1, [10, 11]) and not manifest.done(2, [20, 21])
    assert [p.name for p in shard_paths(tmp_path, "rejections")] == ["rejections-00000.parquet",
                                                                     "rejections-00001.parquet"]
    assert len(read_records(shard_paths(tmp_path, "rejections"), RejectionRecord)) == 5
    assert shard_paths(tmp_path, "ld") == []  # empty shards are not written
    assert set(manifest.entries[1]["files"]) == {"rejections-00001.parquet", "episodes-00001.json"}


def test_a_changed_or_missing_file_makes_its_task_redo(tmp_path):
    commit(tmp_path, 0, 2)
    commit(tmp_path, 1, 2)
    write_shard([rejection(7)] * 2, tmp_path / "rejections-00000.parquet")  # same size class, other bytes
    (tmp_path / "episodes-00001.json").unlink()
    manifest = Manifest(tmp_path)
    assert not manifest.done(0, [0, 1]) and not manifest.done(1, [10, 11])
    assert manifest.problems(manifest.entries[1]) == ["episodes-00001.json is missing"]
    commit(tmp_path, 0, 2, manifest)  # the redo: same names, a later line wins
    assert Manifest(tmp_path).done(0, [0, 1])


def test_a_torn_last_line_is_ignored_then_cut_off(tmp_path):
    commit(tmp_path, 0, 1)
    with open(tmp_path / MANIFEST_NAME, "ab") as fh:
        fh.write(b'{"task": 1, "seeds": [10, 11], "fil')  # the driver died mid-append
    manifest = Manifest(tmp_path)
    assert set(manifest.entries) == {0}
    commit(tmp_path, 1, 1, manifest)
    lines = (tmp_path / MANIFEST_NAME).read_text().splitlines()
    assert len(lines) == 2 and all(line.startswith('{"') and line.endswith("}") for line in lines)
    assert set(Manifest(tmp_path).entries) == {0, 1}


def test_a_changed_plan_is_refused_with_a_reason(tmp_path):
    commit(tmp_path, 0, 1)
    with pytest.raises(ValueError, match=r"way work is cut \(e.g. generation.episodes_per_unit\) changed"):
        Manifest(tmp_path).done(0, [0, 1, 2])


def test_directories_without_a_manifest_still_list_their_shards(tmp_path):
    write_shard([rejection(1)], tmp_path / "rejections-00003.parquet")
    assert [p.name for p in shard_paths(tmp_path, "rejections")] == ["rejections-00003.parquet"]


@pytest.mark.slow
def test_a_resume_cut_into_other_units_is_refused_by_the_cli_with_the_way_out(tmp_path, capsys):
    from launch.cli import main

    args = ["generate", "generation.train_episodes=4", "generation.num_actors=1", "generation.progress=false",
            "ray.num_cpus=2", "wandb.mode=disabled", "--run-dir", str(tmp_path / "run")]
    assert main([*args, "generation.episodes_per_unit=2"]) == 0
    capsys.readouterr()
    assert main([*args, "generation.episodes_per_unit=4"]) == 1  # an error message, not a traceback
    err = capsys.readouterr().err
    assert "way work is cut (e.g. generation.episodes_per_unit) changed" in err and "new run directory" in err
