"""Optimizer and learning-rate schedule.

The schedule is a pure function of the optimizer step (`lr_at`), set on the optimizer before each
step; restoring the step counter on resume therefore restores the scheduler exactly, on any number
of processes, with no scheduler object to checkpoint.
"""

from __future__ import annotations

import math

from configs.training_schema import TrainingConfig


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


def offloads_optimizer(ds_config: dict | None) -> bool:
    zero = (ds_config or {}).get("zero_optimization") or {}
    return str((zero.get("offload_optimizer") or {}).get("device", "none")).lower() == "cpu"


def build_optimizer(model, cfg: TrainingConfig, lr: float, ds_config: dict | None = None):
    """AdamW without weight decay on norms and biases (only trainable parameters: LoRA freezes the rest).

    Plain torch AdamW, which needs no compiled extension; when the DeepSpeed config offloads the
    optimizer to CPU, DeepSpeed's CPU Adam (vectorised C++, JIT-built once into TORCH_EXTENSIONS_DIR),
    the one ZeRO-Offload is designed around.
    """
    import torch

    trainable = [p for p in model.parameters() if p.requires_grad]
    if not trainable:
        raise ValueError("the model has no trainable parameters")
    groups = [{"params": [p for p in trainable if p.ndim >= 2], "weight_decay": cfg.weight_decay},
              {"params": [p for p in trainable if p.ndim < 2], "weight_decay": 0.0}]
    groups = [g for g in groups if g["params"]]
    if offloads_optimizer(ds_config):
        from deepspeed.ops.adam import DeepSpeedCPUAdam

        return DeepSpeedCPUAdam(groups, lr=lr, betas=(0.9, 0.95), adamw_mode=True)
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.95))


def set_lr(optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
