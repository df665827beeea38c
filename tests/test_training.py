"""SFT data masking, the loss and schedule, the launch command, and real multi-process DeepSpeed runs on CPU."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import math
import random
from pathlib import Path

import pytest
import yaml

from configs.training_schema import StudentConfig, TrainingConfig
from generation.tracking import read_side_log
from launch.train_launcher import build_launch_command
from training.sft_data import (IGNORE_INDEX, LeftPadCollator, encode_example, encode_rows, read_sft_rows,
                               render_chat_pair)
from training.student_builder import CHAT_TEMPLATE, build_student, train_tokenizer
from training.train import completion_loss_sum, lr_at

COLOURS = ["red", "green", "blue", "amber"]


def synthetic_rows(n: int, seed: int = 0) -> list[dict]:
    """Short structured task: the completion is a JSON call whose argument is named in the prompt."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        colour = rng.choice(COLOURS)
        noise = " ".join(rng.choice(["walls", "block", "the", "pursuer", "moves", "one", "cell"]) for _ in range(12))
        prompt = f"Turn {i}. Rules: {noise}.\nThe signal is {colour}.\nSelect one function."
        rows.append({"prompt": prompt, "completion": f'{{"call": "signal", "colour": "{colour}"}}'})
    return rows


def write_parquet(rows: list[dict], path: Path) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


@pytest.fixture(scope="module")
def tokenizer():
    rows = synthetic_rows(200)
    return train_tokenizer([r["prompt"] + r["completion"] for r in rows], vocab_size=400)


def test_labels_are_masked_exactly_on_prompt_tokens(tokenizer):
    prompt, completion = "The signal is red.\nSelect one function.", '{"call": "signal", "colour": "red"}'
    example = encode_example(tokenizer, prompt, completion, max_seq_len=256)
    prompt_text = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                                add_generation_prompt=True)
    n_prompt = len(tokenizer(prompt_text, add_special_tokens=False)["input_ids"])
    assert example.labels[:n_prompt] == [IGNORE_INDEX] * n_prompt
    assert all(label != IGNORE_INDEX for label in example.labels[n_prompt:])
    assert example.labels[n_prompt:] == example.input_ids[n_prompt:]
    assert tokenizer.decode(example.labels[n_prompt:]) == completion + tokenizer.eos_token
    assert tokenizer.decode(example.input_ids) == prompt_text + completion + tokenizer.eos_token


def test_truncation_drops_prompt_from_the_left_and_keeps_completion(tokenizer):
    long_prompt = "walls block the pursuer " * 60 + "The signal is blue."
    completion = '{"call": "signal", "colour": "blue"}'
    example = encode_example(tokenizer, long_prompt, completion, max_seq_len=48)
    assert len(example.input_ids) == 48
    assert example.input_ids[0] == tokenizer.bos_token_id
    kept = [t for t, label in zip(example.input_ids, example.labels) if label != IGNORE_INDEX]
    assert tokenizer.decode(kept) == completion + tokenizer.eos_token
    assert tokenizer.decode(example.input_ids).endswith("The signal is blue.<|end|><|assistant|>" + completion + "<|eos|>")
    with pytest.raises(ValueError, match="does not fit"):
        encode_example(tokenizer, "x", "a long completion " * 20, max_seq_len=16)


def test_template_that_breaks_the_prefix_property_is_rejected(tokenizer):
    tok = train_tokenizer(["abc"] * 4, vocab_size=300)
    # The generation prompt adds a newline that the rendered assistant turn does not have.
    tok.chat_template = CHAT_TEMPLATE.replace("{% if add_generation_prompt %}<|assistant|>",
                                              "{% if add_generation_prompt %}<|assistant|>\n")
    with pytest.raises(ValueError, match="prefix"):
        render_chat_pair(tok, "p", "c")
    tok.chat_template = CHAT_TEMPLATE.replace("{{ eos_token }}", "")
    with pytest.raises(ValueError, match="EOS"):
        encode_example(tok, "p", "c", max_seq_len=64)


def test_collator_left_pads_and_keeps_logits_for_every_completion_token(tokenizer):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    rows = synthetic_rows(3) + [{"prompt": "short", "completion": "much longer completion text here"}]
    examples = encode_rows(tokenizer, rows, max_seq_len=256)
    batch = LeftPadCollator(tokenizer.pad_token_id)([*examples])
    width = batch["input_ids"].shape[1]
    for row, example in enumerate(examples):
        pad = width - len(example.input_ids)
        assert (batch["input_ids"][row, :pad] == tokenizer.pad_token_id).all()
        assert batch["attention_mask"][row, :pad].sum() == 0 and batch["position_ids"][row, pad] == 0
    assert (batch["labels"][:, : width - batch["logits_to_keep"] + 1] == IGNORE_INDEX).all()

    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                                         num_hidden_layers=2, num_attention_heads=4)).eval()
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "position_ids")}
    with torch.no_grad():
        kept = model(**inputs, logits_to_keep=batch["logits_to_keep"]).logits
        full = model(**inputs).logits
        alone = model(input_ids=torch.tensor([examples[3].input_ids])).logits
    # Left padding with explicit positions computes what the unpadded sequence computes.
    torch.testing.assert_close(full[3, width - len(examples[3].input_ids):], alone[0], atol=1e-4, rtol=1e-4)
    weights = torch.ones(len(examples))
    loss_kept, n_kept = completion_loss_sum(kept, batch["labels"], weights)
    loss_full, n_full = completion_loss_sum(full, batch["labels"], weights)
    assert n_kept == n_full == sum(e.num_completion_tokens for e in examples)
    torch.testing.assert_close(loss_kept, loss_full)
    manual = torch.nn.functional.cross_entropy(full[:, :-1].reshape(-1, full.shape[-1]),
                                               batch["labels"][:, 1:].reshape(-1), reduction="sum")
    torch.testing.assert_close(loss_full, manual)
    loss_half, _ = completion_loss_sum(kept, batch["labels"], torch.tensor([0.5, 0.5, 0.5, 0.5]))
    torch.testing.assert_close(loss_half, loss_kept / 2)


def test_learning_rate_schedules():
    cfg = TrainingConfig(warmup_ratio=0.1, lr_schedule="cosine", min_lr_ratio=0.1)
    lrs = [lr_at(s, 100, cfg, peak_lr=1.0) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:]))
    assert lrs[-1] == pytest.approx(0.1)
    assert lrs[54] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 44 / 89)))
    linear = TrainingConfig(warmup_ratio=0.0, lr_schedule="linear", min_lr_ratio=0.0)
    assert [lr_at(s, 5, linear, 2.0) for s in range(5)] == pytest.approx([2.0, 1.5, 1.0, 0.5, 0.0])
    constant = TrainingConfig(warmup_ratio=0.5, lr_schedule="constant")
    assert [lr_at(s, 4, constant, 1.0) for s in range(4)] == pytest.approx([0.5, 1.0, 1.0, 1.0])


def test_read_sft_rows_validates_columns(tmp_path):
    good = write_parquet([{"prompt": "p", "completion": "c", "weight": 0.5}], tmp_path / "d" / "a.parquet")
    write_parquet([{"prompt": "q", "completion": "d"}], tmp_path / "d" / "sub" / "b.parquet")
    rows = read_sft_rows(tmp_path / "d")
    assert [(r["prompt"], r["weight"]) for r in rows] == [("p", 0.5), ("q", 1.0)]
    assert read_sft_rows([good]) == rows[:1]
    bad = write_parquet([{"prompt": "p", "answer": "c"}], tmp_path / "bad.parquet")
    with pytest.raises(ValueError, match="missing column"):
        read_sft_rows(bad)
    with pytest.raises(FileNotFoundError):
        read_sft_rows(tmp_path / "nowhere")


def test_launch_command_on_cpu():
    cfg = TrainingConfig(num_processes=2, zero_stage=3, mixed_precision="no")
    cmd = build_launch_command("run/config.yaml", ["d1.parquet", "d2"], "student", "out", "run", "train_ld", cfg,
                               cuda_available=False, port=40001, base_env={"PATH": "/bin"}, cpu_count=2)
    argv = cmd.argv
    assert argv[1:3] == ["-m", "accelerate.commands.launch"]
    assert argv[argv.index("--config_file") + 1].endswith("configs/accelerate/cpu.yaml")
    assert argv[argv.index("--deepspeed_config_file") + 1].endswith("configs/deepspeed/zero3.json")
    assert argv[argv.index("--num_processes") + 1] == "2"
    assert argv[argv.index("--main_process_port") + 1] == "40001"
    module = argv.index("--module")
    assert argv[module + 1] == "training.train"
    assert argv[argv.index("--data") + 1: argv.index("--student")] == ["d1.parquet", "d2"]
    assert argv[-2:] == ["--job", "train_ld"] and argv.index("--num_processes") < module
    assert cmd.env["OMP_NUM_THREADS"] == "1" and cmd.env["HF_HUB_OFFLINE"] == "1"
    assert "torch_extensions" in cmd.env["TORCH_EXTENSIONS_DIR"]
    assert "ACCELERATE_USE_CPU" not in cmd.env  # DeepSpeed on CPU must not be switched to plain CPU DDP


def test_launch_command_multinode_gpu():
    cfg = TrainingConfig(num_processes=16, num_machines=2, machine_rank=1, main_process_ip="10.1.2.3",
                         main_process_port=29555)
    argv = build_launch_command("c.yaml", "data", "s", "o", "r", "train_kd", cfg, cuda_available=True,
                                base_env={}).argv
    assert argv[argv.index("--config_file") + 1].endswith("multinode.yaml")
    assert argv[argv.index("--num_machines") + 1] == "2" and argv[argv.index("--machine_rank") + 1] == "1"
    assert argv[argv.index("--main_process_ip") + 1] == "10.1.2.3"
    assert argv[argv.index("--main_process_port") + 1] == "29555"


# ---------------------------------------------------------------- real multi-process runs (slow)

RUN_TRAINING = dict(num_processes=2, per_device_batch_size=8, max_steps=24, log_every=4, warmup_ratio=0.1,
                    learning_rate=3e-3, seed=1)


@pytest.fixture(scope="module")
def student_and_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("sft")
    rows = synthetic_rows(400)
    data = write_parquet(rows, root / "data" / "part-0.parquet")
    student_cfg = StudentConfig(preset="tiny", vocab_size=400, max_seq_len=128)
    student = build_student(student_cfg, [r["prompt"] + r["completion"] for r in rows], root / "student-init")
    return student_cfg, student, data, rows


def train_with(tmp_path: Path, student_and_data, job: str, **training) -> tuple[Path, Path]:
    from launch.train_launcher import run_training

    student_cfg, student, data, _ = student_and_data
    training_cfg = TrainingConfig(**{**RUN_TRAINING, **training})
    run_dir = tmp_path / "run"
    config_path = run_dir / "config.resolved.yaml"
    config_path.parent.mkdir(parents=True)
    config_path.write_text(yaml.safe_dump({
        "student": student_cfg.model_dump(mode="json"), "training": training_cfg.model_dump(mode="json"),
        "wandb": {"mode": "offline"}, "teacher": {"ignored": "by training"}}))
    out = run_training(config_path, [data.parent], student, tmp_path / "out", run_dir, job, training_cfg, echo=False)
    return out, run_dir


@pytest.mark.slow
def test_two_process_zero2_run_learns_and_exports(tmp_path, student_and_data):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out, run_dir = train_with(tmp_path, student_and_data, "train_ld", zero_stage=2)
    rows = read_side_log(run_dir, "train_ld")
    assert [r["step"] for r in rows] == [1, 4, 8, 12, 16, 20, 24]
    assert rows[-1]["loss"] < 0.3 * rows[0]["loss"]
    assert all(r["tokens_per_s"] > 0 and r["grad_norm"] > 0 for r in rows)
    assert list(run_dir.glob("wandb/offline-run-*")), "no offline W&B run was written"

    model = AutoModelForCausalLM.from_pretrained(out, local_files_only=True)
    tok = AutoTokenizer.from_pretrained(out, local_files_only=True)
    prompt = student_and_data[3][0]["prompt"]
    inputs = tok.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                     return_tensors="pt", return_dict=True)
    with torch.no_grad():
        generated = model.generate(**inputs, max_new_tokens=24, do_sample=False)
    text = tok.decode(generated[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
    assert text.startswith('{"call": "signal", "colour": "'), text


@pytest.mark.slow
def test_zero3_with_accumulation_matches_zero2_losses(tmp_path, student_and_data):
    """Invariants: ZeRO-3 sharding and micro-batch 4 x accumulation 2 see the same 16 examples per step
    as ZeRO-2 with micro-batch 8, and the loss is normalised by all their completion tokens, so the
    loss curves must agree."""
    zero2_out, zero2_dir = train_with(tmp_path / "z2", student_and_data, "train_z2", zero_stage=2, max_steps=6,
                                      log_every=1)
    zero3_out, zero3_dir = train_with(tmp_path / "z3", student_and_data, "train_z3", zero_stage=3, max_steps=6, log_every=1,
                                per_device_batch_size=4, gradient_accumulation_steps=2)
    zero2 = [r["loss"] for r in read_side_log(zero2_dir, "train_z2")]
    zero3 = [r["loss"] for r in read_side_log(zero3_dir, "train_z3")]
    assert len(zero3) == 6 and zero3 == pytest.approx(zero2, rel=1e-3)
    import torch
    from transformers import AutoModelForCausalLM

    # The ZeRO-3 export is the gathered model, not per-rank placeholders: it equals the ZeRO-2 export.
    weights2 = AutoModelForCausalLM.from_pretrained(zero2_out, local_files_only=True).state_dict()
    weights3 = AutoModelForCausalLM.from_pretrained(zero3_out, local_files_only=True).state_dict()
    assert weights2.keys() == weights3.keys()
    for name, tensor in weights3.items():
        assert tensor.shape == weights2[name].shape, name
        torch.testing.assert_close(tensor, weights2[name], atol=1e-4, rtol=1e-3, msg=name)
    initial = AutoModelForCausalLM.from_pretrained(student_and_data[1], local_files_only=True).state_dict()
    assert not torch.allclose(initial["model.layers.0.mlp.up_proj.weight"], weights3["model.layers.0.mlp.up_proj.weight"])
