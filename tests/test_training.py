"""SFT data masking, the loss and schedule, the launch commands (fast; real runs: test_training_distributed.py)."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import math

import pytest

from configs.training_schema import TrainingConfig
from generation.storage.tracking import WandbConfig
from launch.train_launcher import build_launch_command, plan_launch, with_topology
from training.job import RunConfig
from training.losses import completion_loss_sum, completion_token_hits
from training.optim import lr_at
from training.sft_data import (IGNORE_INDEX, LeftPadCollator, encode_example, encode_rows, read_sft_rows,
                               render_chat_pair)
from training.student_builder import CHAT_TEMPLATE, train_tokenizer
from training_helpers import STUDENT, synthetic_rows, write_parquet


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
    per_token = torch.full(batch["input_ids"].shape, 0.5)  # the packed form: one weight per token
    torch.testing.assert_close(completion_loss_sum(kept, batch["labels"], per_token)[0], loss_kept / 2)
    hits, n_hits = completion_token_hits(full, batch["labels"])
    predicted = full[:, :-1].argmax(-1)
    targets = batch["labels"][:, 1:]
    assert n_hits == n_full and hits == ((predicted == targets) & (targets != IGNORE_INDEX)).sum()


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


JOB_FILE = "run/jobs/train_ld.json"


def launch_for(cfg: TrainingConfig, *, cuda_available: bool, resume: str | None = None, **command):
    """(resolved job, command) as the launcher makes them for `cfg`, without writing the job file."""
    run_cfg = RunConfig(student=STUDENT, training=cfg, wandb=WandbConfig(mode="disabled"))
    job, accelerate_yaml = plan_launch(run_cfg, ["d1.parquet", "d2"], "student", "out", "run", "train_ld",
                                       cuda_available=cuda_available, resume=resume)
    return job, build_launch_command(job, JOB_FILE, accelerate_yaml, cuda_available=cuda_available, **command)


def test_launch_command_on_cpu():
    cfg = TrainingConfig(num_processes=2, zero_stage=3, mixed_precision="no")
    job, cmd = launch_for(cfg, cuda_available=False, port=40001, base_env={"PATH": "/bin"}, cpu_count=2)
    argv = cmd.argv
    assert argv[1:3] == ["-m", "accelerate.commands.launch"]
    assert argv[argv.index("--config_file") + 1].endswith("configs/accelerate/cpu.yaml")
    assert argv[argv.index("--deepspeed_config_file") + 1].endswith("configs/deepspeed/zero3.json")
    assert argv[argv.index("--num_processes") + 1] == "2"
    assert argv[argv.index("--main_process_port") + 1] == "40001"
    module = argv.index("--module")
    assert argv[module + 1] == "training.train"
    # The processes get the resolved job's path and nothing else; the job carries data, paths, stage.
    assert argv[module + 2:] == ["--job-file", JOB_FILE] and argv.index("--num_processes") < module
    assert [os.path.basename(d) for d in job.data] == ["d1.parquet", "d2"] and os.path.isabs(job.data[0])
    assert job.training.zero_stage == 3 and job.training.deepspeed["zero_optimization"]["stage"] == 3
    assert cmd.env["OMP_NUM_THREADS"] == "1" and cmd.env["HF_HUB_OFFLINE"] == "1"
    assert "torch_extensions" in cmd.env["TORCH_EXTENSIONS_DIR"]
    assert "ACCELERATE_USE_CPU" not in cmd.env  # DeepSpeed on CPU must not be switched to plain CPU DDP


def test_launch_command_multinode_gpu():
    cfg = TrainingConfig(num_processes=16, num_machines=2, machine_rank=1, main_process_ip="10.1.2.3",
                         main_process_port=29555)
    argv = launch_for(cfg, cuda_available=True, base_env={})[1].argv
    assert argv[argv.index("--config_file") + 1].endswith("multinode.yaml")
    assert argv[argv.index("--num_machines") + 1] == "2" and argv[argv.index("--machine_rank") + 1] == "1"
    assert argv[argv.index("--main_process_ip") + 1] == "10.1.2.3"
    assert argv[argv.index("--main_process_port") + 1] == "29555"


def test_launch_command_multinode_on_cpu_uses_standard_launcher():
    cfg = TrainingConfig(num_processes=2, num_machines=2, machine_rank=1, main_process_ip="127.0.0.1")
    argv = launch_for(cfg, cuda_available=False, port=29511, base_env={}, cpu_count=2)[1].argv
    assert argv[argv.index("--config_file") + 1].endswith("accelerate/cpu.yaml")  # use_cpu, DeepSpeed on gloo
    assert argv[argv.index("--deepspeed_multinode_launcher") + 1] == "standard"
    assert argv[argv.index("--machine_rank") + 1] == "1" and argv[argv.index("--num_machines") + 1] == "2"


def test_torchrun_command_and_its_job_carry_the_deepspeed_settings():
    cfg = TrainingConfig(num_processes=8, num_machines=2, machine_rank=1, main_process_ip="10.0.0.9",
                         main_process_port=29400, zero_stage=3, mixed_precision="bf16")
    job, cmd = launch_for(cfg, cuda_available=True, base_env={}, launcher="torchrun", resume="never")
    argv = cmd.argv
    assert argv[1:3] == ["-m", "torch.distributed.run"]
    assert argv[argv.index("--nproc_per_node") + 1] == "4" and argv[argv.index("--node_rank") + 1] == "1"
    assert argv[argv.index("--master_addr") + 1] == "10.0.0.9" and argv[argv.index("--master_port") + 1] == "29400"
    assert argv[argv.index("-m", 3) + 1] == "training.train" and argv[-2:] == ["--job-file", JOB_FILE]
    # No ACCELERATE_* variable stands in for `accelerate launch`: the job says it all.
    assert not [k for k in cmd.env if k.startswith("ACCELERATE_")]
    resolved = job.training
    assert resolved.settings.resume == "never" and resolved.settings.mixed_precision == "bf16"
    assert resolved.deepspeed_source.endswith("deepspeed/zero3.json") and resolved.zero_stage == 3
    assert resolved.zero3_init  # gpu/multinode yaml partition at load
    with pytest.raises(ValueError, match="unknown launcher"):
        launch_for(cfg, cuda_available=True, base_env={}, launcher="mpirun")


def test_node_topology_flags_override_the_config():
    cfg = TrainingConfig(num_processes=2, per_device_batch_size=2, global_batch_size=32)
    node = with_topology(cfg, nnodes=4, node_rank=3, master_addr="10.0.0.1", nproc_per_node=2)
    assert (node.num_machines, node.machine_rank, node.num_processes) == (4, 3, 8)
    assert node.main_process_ip == "10.0.0.1" and node.global_batch_size == 32
    with pytest.raises(ValueError, match="not divisible"):
        with_topology(cfg, nnodes=3, node_rank=0, master_addr="h", nproc_per_node=2)  # 32 / (2 x 6)
