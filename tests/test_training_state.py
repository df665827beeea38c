"""Pure parts of resumable training: the step-indexed data plan, checkpoint bookkeeping, FLOPs."""

import json

import pytest

from configs.training_schema import load_preset
from training.checkpoints import (TRAINER_STATE, clean_partial_saves, fingerprint_differences, list_checkpoints,
                                  prune, resolve_resume, step_dir_name, write_json_atomic)
from training.data_plan import DataPlan, eval_batches
from training.model_size import FlopsModel, flops_model_from_hf_config, training_flops_per_token
from training.sft_data import SFTExample


def rows(n: int) -> list[list[SFTExample]]:
    """Row i holds one example whose middle token is 100 + i, so a batch can be read back as row numbers."""
    return [[SFTExample(input_ids=[1, 100 + i, 3], labels=[-100, 100 + i, 3])] for i in range(n)]


def row_ids(batches) -> list[int]:
    return [r for batch in batches for r in batch]


def plan(world: int, rank: int, micro: int, rows_per_step: int = 8, n: int = 40, seed: int = 3) -> DataPlan:
    return DataPlan(rows(n), rows_per_step, micro, world, rank, seed,
                    collate=lambda rs: [r[0].input_ids[1] - 100 for r in rs])


def test_the_step_decides_the_data_whatever_the_process_count():
    one = plan(world=1, rank=0, micro=4)  # accumulation 2
    two = [plan(world=2, rank=r, micro=4) for r in (0, 1)]  # accumulation 1
    eight = plan(world=1, rank=0, micro=1)  # accumulation 8
    assert one.accumulation == 2 and two[0].accumulation == 1 and eight.accumulation == 8
    for step in range(12):  # crosses an epoch boundary (5 steps per epoch)
        single = row_ids(one.micro_batches(step))
        assert single == row_ids(two[0].micro_batches(step)) + row_ids(two[1].micro_batches(step))
        assert single == row_ids(eight.micro_batches(step))
    epoch0 = [i for s in range(one.steps_per_epoch) for i in one.window_rows(s)]
    assert sorted(epoch0) == list(range(40))  # every row once per epoch
    assert one.window_rows(5) != one.window_rows(0)  # a new shuffle each epoch
    assert plan(1, 0, 4).window_rows(7) == one.window_rows(7)  # a fresh plan (a resume) agrees


def test_data_plan_refuses_what_cannot_split():
    with pytest.raises(ValueError, match="fewer than one optimizer step"):
        plan(world=1, rank=0, micro=4, rows_per_step=64)
    with pytest.raises(ValueError, match="equal shares"):
        plan(world=3, rank=0, micro=1, rows_per_step=8)


def test_eval_batches_are_equal_in_number_on_every_rank():
    examples = [r[0] for r in rows(5)]
    collate = lambda rs: len(rs)  # noqa: E731
    shares = [eval_batches(examples, micro_batch=2, world_size=2, rank=r, collate=collate, packing=False,
                           capacity=64) for r in (0, 1)]
    assert len(shares[0]) == len(shares[1]) == 2
    assert sum(b for b, counted in shares[0] + shares[1] if counted) == 5  # each held-out row counted once
    assert eval_batches([], 2, 2, 0, collate, False, 64) == []


def fake_checkpoint(root, step):
    path = root / step_dir_name(step)
    path.mkdir(parents=True)
    (path / TRAINER_STATE).write_text(json.dumps({"step": step}))
    return path


def test_checkpoint_listing_pruning_and_resume_choice(tmp_path):
    root = tmp_path / "ckpt"
    assert resolve_resume("auto", root) is None and resolve_resume("never", root) is None
    for step in (200, 400, 600):
        fake_checkpoint(root, step)
    (root / step_dir_name(800)).mkdir()  # renamed without its state: impossible by construction, ignored
    (root / f".tmp-{step_dir_name(1000)}").mkdir()  # a save cut short by a kill
    assert [s for s, _ in list_checkpoints(root)] == [200, 400, 600]
    assert resolve_resume("auto", root).name == step_dir_name(600)
    assert resolve_resume(str(root / step_dir_name(400)), root).name == step_dir_name(400)
    with pytest.raises(ValueError, match="resume=never but .* already holds checkpoints"):
        resolve_resume("never", root)
    with pytest.raises(ValueError, match="not a complete checkpoint"):
        resolve_resume(str(root / step_dir_name(800)), root)
    clean_partial_saves(root)
    assert not (root / f".tmp-{step_dir_name(1000)}").exists()
    deleted = prune(root, keep_last=2)
    assert [p.name for p in deleted] == [step_dir_name(200)]
    assert [s for s, _ in list_checkpoints(root)] == [400, 600]


def test_atomic_json_and_fingerprints(tmp_path):
    path = tmp_path / "state.json"
    write_json_atomic(path, {"a": 1})
    write_json_atomic(path, {"a": 2})
    assert json.loads(path.read_text()) == {"a": 2} and [p.name for p in tmp_path.iterdir()] == ["state.json"]
    assert fingerprint_differences({"lr": 1e-3, "seed": 0}, {"lr": 1e-3, "seed": 0}) == []
    assert fingerprint_differences({"lr": 1e-3, "seed": 0}, {"lr": 2e-3, "seed": 0}) == [
        "lr: checkpoint 0.001 vs now 0.002"]


def test_flops_model_matches_the_preset_arithmetic():
    from transformers import LlamaConfig

    preset, vocab = load_preset("small"), 1000
    config = LlamaConfig(vocab_size=vocab, hidden_size=preset.hidden_size, intermediate_size=preset.intermediate_size,
                         num_hidden_layers=preset.num_hidden_layers, num_attention_heads=preset.num_attention_heads,
                         num_key_value_heads=preset.kv_heads)
    flops = flops_model_from_hf_config(config)
    for seq_len in (64, 512):
        # one sequence of T tokens attends over T² pairs
        assert flops.training_flops(seq_len, seq_len ** 2) == training_flops_per_token(preset, vocab, seq_len) * seq_len
    assert FlopsModel(10, 2).training_flops(tokens=3, attention_pairs=5) == 6 * 10 * 3 + 12 * 2 * 5
