"""The training loop in this process (one process, no DeepSpeed): numerical invariants, LoRA,
gradient checkpointing, packing, and the metrics each log line carries."""

import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest

from training_helpers import make_student_and_data, step_losses, train_in_process

COMMON = dict(max_steps=4, log_every=1, learning_rate=3e-3, warmup_ratio=0.0, seed=1, save_every=None)


@pytest.fixture(scope="module")
def student_and_data(tmp_path_factory):
    student, data, _ = make_student_and_data(tmp_path_factory.mktemp("inproc"))
    return student, data


@pytest.fixture(scope="module")
def batch8_accum1(tmp_path_factory, student_and_data):
    run_dir = tmp_path_factory.mktemp("b8a1")
    return run_dir, train_in_process(run_dir, *student_and_data, per_device_batch_size=8,
                                     **{**COMMON, "save_every": 2})  # saving does not change the numbers


def load_weights(path):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path, local_files_only=True).state_dict()


def test_batch8_accum1_matches_batch1_accum8(tmp_path, student_and_data, batch8_accum1):
    """Same 8 rows per step, loss normalised by all their completion tokens: the split must not matter."""
    import torch

    big_dir, big = batch8_accum1
    small = train_in_process(tmp_path, *student_and_data, per_device_batch_size=1, gradient_accumulation_steps=8,
                             **COMMON)
    assert list(step_losses(small)) == [1, 2, 3, 4]
    assert list(step_losses(small).values()) == pytest.approx(list(step_losses(big).values()), rel=1e-5)
    assert [r["grad_norm"] for r in small] == pytest.approx([r["grad_norm"] for r in big], rel=1e-4)
    a, b = load_weights(big_dir / "out"), load_weights(tmp_path / "out")
    # Adam divides by sqrt(v): on weights whose gradient is ~0, float noise from summing in another
    # order can flip a whole lr-sized update, so single elements may differ by ~lr; on average none do.
    for name, tensor in a.items():
        diff = (b[name] - tensor).abs()
        assert float(diff.max()) < 3e-3 and float(diff.mean()) < 2e-5, (name, float(diff.max()), float(diff.mean()))


def test_gradient_checkpointing_changes_memory_not_numbers(tmp_path, student_and_data, batch8_accum1):
    rows = train_in_process(tmp_path, *student_and_data, per_device_batch_size=8, gradient_checkpointing=True,
                            **COMMON)
    assert list(step_losses(rows).values()) == pytest.approx(list(step_losses(batch8_accum1[1]).values()), rel=1e-5)


def test_lora_trains_adapters_and_exports_a_merged_plain_checkpoint(tmp_path, student_and_data):
    import torch
    from safetensors import safe_open

    rows = train_in_process(tmp_path, *student_and_data, per_device_batch_size=8,
                            lora={"r": 8, "alpha": 16, "target_modules": ["q_proj", "v_proj", "up_proj"]},
                            **{**COMMON, "learning_rate": 1e-2, "max_steps": 6})
    losses = list(step_losses(rows).values())
    assert losses[-1] < losses[0]
    with safe_open(str(tmp_path / "out" / "model.safetensors"), "pt") as exported:
        assert not [k for k in exported.keys() if "lora" in k or "base_model" in k]  # plain HF names
    initial, merged = load_weights(student_and_data[0]), load_weights(tmp_path / "out")
    assert initial.keys() == merged.keys()
    assert not torch.allclose(initial["model.layers.0.self_attn.q_proj.weight"],
                              merged["model.layers.0.self_attn.q_proj.weight"])
    # Modules without adapters are exactly the frozen base.
    torch.testing.assert_close(initial["model.layers.0.self_attn.k_proj.weight"],
                               merged["model.layers.0.self_attn.k_proj.weight"], rtol=0, atol=0)
    check = json.loads((tmp_path / "out" / "export_check.json").read_text())
    assert check["max_abs_logit_diff"] < 1e-4  # the merged export reproduces the adapted model


def test_packed_run_logs_every_metric(tmp_path, student_and_data):
    rows = train_in_process(tmp_path, *student_and_data, per_device_batch_size=4, packing=True,
                            eval_fraction=0.1, eval_every=2, **{**COMMON, "max_steps": 4})
    train_rows = [r for r in rows if "loss" in r]
    for key in ("loss", "lr", "grad_norm", "tokens_per_s", "tokens_per_s_per_device", "tflops_per_device", "mfu",
                "peak_memory_gb", "completion_tokens_per_s"):
        assert all(r[key] > 0 for r in train_rows), key
    evals = [r for r in rows if "eval_loss" in r]
    assert [r["step"] for r in evals] == [2, 4]  # every eval_every steps, and at the end
    assert all(0 <= r["eval_token_accuracy"] <= 1 and r["eval_tokens"] > 0 for r in evals)
    summary = json.loads((tmp_path / "out" / "training_summary.json").read_text())
    # 216 training examples of ~40-70 tokens packed into rows of 128: far fewer rows than examples.
    assert summary["train_rows"] < 216 / 1.5 and summary["export_max_abs_logit_diff"] < 1e-4


def test_resume_without_deepspeed_continues_the_same_curve(tmp_path, student_and_data, batch8_accum1):
    """accelerate's plain save_state/load_state path (no DeepSpeed): model, optimizer, RNG, step."""
    run_dir, uninterrupted = batch8_accum1
    checkpoint = run_dir / "checkpoints" / "train" / "step-00000002"
    rows = train_in_process(tmp_path, *student_and_data, per_device_batch_size=8,
                            **{**COMMON, "resume": str(checkpoint)})
    resumed = step_losses(rows)
    assert list(resumed) == [3, 4]
    assert list(resumed.values()) == pytest.approx([step_losses(uninterrupted)[s] for s in (3, 4)], rel=1e-6)
