"""The one training loop: supervised fine-tuning of a student on prompt/completion parquet files.

Runs under `accelerate launch` on 1..N processes, CPU (gloo) or GPU (NCCL), one node or many.
ZeRO stage, offload and precision come from the shipped DeepSpeed JSON (see configs/deepspeed/);
"auto" entries there are filled from the `training` section, so no value is set in two places.

    accelerate launch --config_file configs/accelerate/cpu.yaml \
        --deepspeed_config_file configs/deepspeed/zero2.json --num_processes 2 \
        -m training.train --config runs/x/config.resolved.yaml --data runs/x/data/ld \
        --student runs/x/students/ld-init --out runs/x/students/ld --run-dir runs/x --job train_ld

(`launch/train_launcher.py` builds exactly this command.) The resolved config's `student`,
`training` and `wandb` sections are read; other sections are ignored.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from configs.training_schema import (StudentConfig, TrainingConfig, effective_learning_rate,
                                     resolve_deepspeed_config)
from generation.tracking import Tracker, WandbConfig
from training.sft_data import IGNORE_INDEX, LeftPadCollator, encode_rows, read_sft_rows


@dataclass
class RunConfig:
    student: StudentConfig
    training: TrainingConfig
    wandb: WandbConfig


def load_run_config(path: str | Path) -> RunConfig:
    """Only our sections of a resolved run config; the rest belongs to other stages."""
    raw = yaml.safe_load(Path(path).read_text()) or {}
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: a run config must be a mapping of sections")
    return RunConfig(
        student=StudentConfig.model_validate(raw.get("student") or {}),
        training=TrainingConfig.model_validate(raw.get("training") or {}),
        wandb=WandbConfig.model_validate(raw.get("wandb") or {}),
    )


def lr_at(step: int, total_steps: int, cfg: TrainingConfig, peak_lr: float) -> float:
    """Learning rate for optimizer step `step` (0-based): linear warmup, then the chosen decay to
    `min_lr_ratio * peak_lr` at the last step."""
    warmup = int(cfg.warmup_ratio * total_steps)
    if step < warmup:
        return peak_lr * (step + 1) / warmup
    if cfg.lr_schedule == "constant":
        return peak_lr
    progress = (step - warmup) / max(1, total_steps - warmup - 1)
    progress = min(1.0, progress)
    if cfg.lr_schedule == "cosine":
        decay = 0.5 * (1.0 + math.cos(math.pi * progress))
    else:
        decay = 1.0 - progress
    floor = cfg.min_lr_ratio
    return peak_lr * (floor + (1.0 - floor) * decay)


def completion_loss_sum(logits, labels, weights):
    """Sum over completion tokens of (example weight x cross-entropy), and the number of those tokens.

    `logits` covers the last K positions of the batch (K = logits.shape[1]); position t predicts t+1.
    """
    import torch.nn.functional as F

    keep = logits.shape[1]
    targets = labels[:, labels.shape[1] - keep + 1:]
    per_token = F.cross_entropy(
        logits[:, :-1].float().reshape(-1, logits.shape[-1]), targets.reshape(-1),
        ignore_index=IGNORE_INDEX, reduction="none",
    ).view(targets.shape)
    mask = targets != IGNORE_INDEX
    return (per_token * weights[:, None] * mask).sum(), mask.sum()


def make_accelerator(cfg: TrainingConfig):
    """An Accelerator whose DeepSpeed plugin (when launched with DeepSpeed) reads the run's JSON file.

    Gradient clipping and accumulation fill the JSON's "auto" entries; a concrete value in the JSON
    wins. On a machine without CUDA the process group must be gloo, or each rank trains alone.
    """
    import torch
    from accelerate import Accelerator
    from accelerate.utils import DeepSpeedPlugin, GradientAccumulationPlugin, InitProcessGroupKwargs

    handlers = [] if torch.cuda.is_available() else [InitProcessGroupKwargs(backend="gloo")]
    plugin = None
    if os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true":
        ds_file = os.environ.get("ACCELERATE_DEEPSPEED_CONFIG_FILE") or str(resolve_deepspeed_config(cfg))
        plugin = DeepSpeedPlugin(hf_ds_config=ds_file, gradient_clipping=cfg.max_grad_norm)
    # We only ever run whole accumulation windows, so the dataloader end must not force a sync.
    accumulation = GradientAccumulationPlugin(num_steps=cfg.gradient_accumulation_steps, sync_with_dataloader=False)
    return Accelerator(mixed_precision=cfg.mixed_precision, deepspeed_plugin=plugin,
                       gradient_accumulation_plugin=accumulation, kwargs_handlers=handlers)


def build_optimizer(model, cfg: TrainingConfig, lr: float):
    """Plain torch AdamW (no fused/cpu-Adam build); no weight decay on norms and biases."""
    import torch

    decay = [p for p in model.parameters() if p.requires_grad and p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.95))


def accumulation_windows(loader, size: int):
    """Yield lists of `size` consecutive batches; a trailing partial window is dropped."""
    window = []
    for batch in loader:
        window.append(batch)
        if len(window) == size:
            yield window
            window = []


class StepStats:
    """Loss / token counters between two log lines, reduced over all ranks when read."""

    def __init__(self) -> None:
        self.loss_sum = self.completion_tokens = self.tokens = 0.0
        self.started = time.perf_counter()

    def add(self, loss_sum: float, completion_tokens: int, tokens: int) -> None:
        self.loss_sum += loss_sum
        self.completion_tokens += completion_tokens
        self.tokens += tokens

    def reduce(self, accelerator) -> dict:
        import torch

        local = torch.tensor([self.loss_sum, self.completion_tokens, self.tokens], device=accelerator.device,
                             dtype=torch.float64)
        total = accelerator.reduce(local, reduction="sum").tolist()
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        return {"loss": total[0] / max(total[1], 1.0), "tokens_per_s": total[2] / elapsed,
                "completion_tokens_per_s": total[1] / elapsed}


def train_window(accelerator, model, optimizer, window, lr: float, max_grad_norm: float,
                 stats: StepStats) -> float | None:
    """One optimizer step over a window of micro-batches; returns the gradient norm before clipping
    (None where the engine does not report it: DeepSpeed ZeRO-0).

    The loss of each micro-batch is its summed completion-token loss divided by the completion
    tokens of the whole window on all ranks, rescaled so that the framework's division by the
    accumulation steps and averaging over ranks leave exactly sum(loss) / global completion tokens.
    """
    import torch

    for group in optimizer.param_groups:
        group["lr"] = lr
    local_tokens = sum(int((b["labels"] != IGNORE_INDEX).sum()) for b in window)
    global_tokens = accelerator.reduce(torch.tensor(float(local_tokens), device=accelerator.device), "sum")
    scale = accelerator.num_processes * len(window) / global_tokens.clamp(min=1.0)
    grad_norm = None
    for batch in window:
        with accelerator.accumulate(model):
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                           position_ids=batch["position_ids"], logits_to_keep=batch["logits_to_keep"]).logits
            loss_sum, n_tokens = completion_loss_sum(logits, batch["labels"], batch["weights"])
            accelerator.backward(loss_sum * scale)
            stats.add(float(loss_sum.detach()), int(n_tokens), int(batch["attention_mask"].sum()))
            if accelerator.sync_gradients:
                grad_norm = accelerator.clip_grad_norm_(model.parameters(), max_grad_norm)
                optimizer.step()
                optimizer.zero_grad()
    return float(grad_norm) if grad_norm is not None else None


def export_checkpoint(accelerator, model, tokenizer, out_dir: Path) -> None:
    """A consolidated HF checkpoint for any ZeRO stage (ZeRO-3 gathers 16-bit weights on all ranks)."""
    accelerator.wait_for_everyone()
    state_dict = accelerator.get_state_dict(model)  # a collective under ZeRO-3: every rank calls it
    if accelerator.is_main_process:
        out_dir.mkdir(parents=True, exist_ok=True)
        unwrapped = accelerator.unwrap_model(model)
        unwrapped.save_pretrained(str(out_dir), state_dict=state_dict, safe_serialization=True)
        tokenizer.save_pretrained(str(out_dir))
    accelerator.wait_for_everyone()


@dataclass
class Session:
    """Everything the loop needs, already wrapped by `accelerator.prepare`."""

    accelerator: object
    model: object
    optimizer: object
    loader: object
    tokenizer: object
    num_examples: int
    peak_lr: float
    windows_per_epoch: int
    total_steps: int


def setup(run_cfg: RunConfig, data: list[str], student_dir: Path) -> Session:
    import torch
    from accelerate.utils import set_seed
    from torch.utils.data import DataLoader
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cfg = run_cfg.training
    accelerator = make_accelerator(cfg)  # before the model exists, so ZeRO-3 can partition at init
    set_seed(cfg.seed)
    tokenizer = AutoTokenizer.from_pretrained(str(student_dir))
    model = AutoModelForCausalLM.from_pretrained(str(student_dir))
    examples = encode_rows(tokenizer, read_sft_rows(data), run_cfg.student.max_seq_len)
    loader = DataLoader(examples, batch_size=cfg.per_device_batch_size, shuffle=True,
                        collate_fn=LeftPadCollator(tokenizer.pad_token_id),
                        generator=torch.Generator().manual_seed(cfg.seed))
    peak_lr = effective_learning_rate(cfg, run_cfg.student)
    model, optimizer, loader = accelerator.prepare(model, build_optimizer(model, cfg, peak_lr), loader)
    windows_per_epoch = len(loader) // cfg.gradient_accumulation_steps
    if windows_per_epoch == 0:
        raise ValueError(f"{len(examples)} examples make {len(loader)} batches per process, fewer than "
                         f"gradient_accumulation_steps={cfg.gradient_accumulation_steps}")
    total_steps = cfg.max_steps or math.ceil(cfg.epochs * windows_per_epoch)
    return Session(accelerator, model, optimizer, loader, tokenizer, len(examples), peak_lr,
                   windows_per_epoch, total_steps)


def train_loop(session: Session, cfg: TrainingConfig, tracker: Tracker | None, job: str) -> dict:
    """Run `session.total_steps` optimizer steps; log on rank 0; return the last logged metrics."""
    accelerator, loader = session.accelerator, session.loader
    session.model.train()
    step, epoch, stats, last = 0, 0, StepStats(), {}
    while step < session.total_steps:
        if hasattr(loader, "set_epoch"):
            loader.set_epoch(epoch)  # a different shuffle each epoch, identical on every rank
        for window in accumulation_windows(loader, cfg.gradient_accumulation_steps):
            lr = lr_at(step, session.total_steps, cfg, session.peak_lr)
            grad_norm = train_window(accelerator, session.model, session.optimizer, window, lr,
                                     cfg.max_grad_norm, stats)
            step += 1
            if step == 1 or step % cfg.log_every == 0 or step == session.total_steps:
                last = {**stats.reduce(accelerator), "lr": lr, "epoch": step / session.windows_per_epoch}
                if grad_norm is not None:
                    last["grad_norm"] = grad_norm
                stats = StepStats()
                if tracker is not None:
                    tracker.log(last, step=step)
                    accelerator.print(f"[{job}] step {step}/{session.total_steps} "
                                      + " ".join(f"{k}={v:.4g}" for k, v in last.items()))
            if step >= session.total_steps:
                break
        epoch += 1
    return {**last, "steps": step}


def run(run_cfg: RunConfig, data: list[str], student_dir: Path, out_dir: Path, run_dir: Path, job: str) -> Path:
    started = time.perf_counter()
    session = setup(run_cfg, data, student_dir)
    accelerator, tracker = session.accelerator, None
    if accelerator.is_main_process:
        tracker = Tracker(run_dir, run_cfg.wandb, job, config={
            "student": run_cfg.student.model_dump(), "training": run_cfg.training.model_dump(), "data": data,
            "examples": session.num_examples, "total_steps": session.total_steps,
            "num_processes": accelerator.num_processes, "peak_lr": session.peak_lr})
        accelerator.print(f"[{job}] {session.num_examples} examples, {accelerator.num_processes} process(es), "
                          f"{session.total_steps} optimizer steps, peak lr {session.peak_lr:g}")
    loop_started = time.perf_counter()
    last = train_loop(session, run_cfg.training, tracker, job)
    loop_seconds = time.perf_counter() - loop_started
    export_checkpoint(accelerator, session.model, session.tokenizer, out_dir)
    if tracker is not None:
        summary = {"final_loss": last.get("loss"), "steps": last["steps"], "loop_seconds": loop_seconds,
                   "total_seconds": time.perf_counter() - started, "examples": session.num_examples,
                   "num_processes": accelerator.num_processes}
        tracker.summary(summary)
        (out_dir / "training_summary.json").write_text(json.dumps(summary, indent=1))
        tracker.finish()
    accelerator.end_training()
    return out_dir


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Fine-tune a student on prompt/completion parquet files.")
    parser.add_argument("--config", required=True, help="resolved run config YAML (student/training/wandb)")
    parser.add_argument("--data", required=True, nargs="+", help="parquet files or directories of them")
    parser.add_argument("--student", required=True, help="HF checkpoint directory to start from")
    parser.add_argument("--out", required=True, help="where the trained checkpoint is exported")
    parser.add_argument("--run-dir", required=True, help="run directory (metrics, W&B files)")
    parser.add_argument("--job", default="train", help="job name: W&B job type and metrics/<job>.jsonl")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    run(load_run_config(args.config), args.data, Path(args.student), Path(args.out), Path(args.run_dir), args.job)


if __name__ == "__main__":
    main()
