"""The single distributed seam: an `Accelerator`, with DeepSpeed when `accelerate launch` asked for it.

ZeRO stage, offload and precision come from the DeepSpeed JSON that the launch named; its "auto"
entries are filled from the training section (micro-batch size here, accumulation, clipping and
precision by Accelerate), so no value is set in two places.
"""

from __future__ import annotations

import os
from pathlib import Path

from configs.training_schema import TrainingConfig, resolve_deepspeed_config


def deepspeed_requested() -> bool:
    return os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true"


def deepspeed_json_path(cfg: TrainingConfig) -> Path | None:
    """The DeepSpeed JSON of this launch (the file `accelerate launch` was given), or None without DeepSpeed."""
    if not deepspeed_requested():
        return None
    return Path(os.environ.get("ACCELERATE_DEEPSPEED_CONFIG_FILE") or resolve_deepspeed_config(cfg))


def deepspeed_stage(ds_config: dict | None) -> int | None:
    if ds_config is None:
        return None
    return int((ds_config.get("zero_optimization") or {}).get("stage", 0))


def make_accelerator(cfg: TrainingConfig, accumulation: int, ds_config: dict | None, load_universal: bool = False):
    """An Accelerator for this run. Call before the model is loaded, so ZeRO-3 can partition at init.

    On a machine without CUDA the process group must be gloo, or each rank would train alone.
    `load_universal` makes the DeepSpeed engine read a universal checkpoint (a resume onto another
    process count or ZeRO stage).
    """
    import torch
    from accelerate import Accelerator
    from accelerate.utils import DeepSpeedPlugin, GradientAccumulationPlugin, InitProcessGroupKwargs

    launched = int(os.environ.get("LOCAL_RANK", -1)) != -1  # by accelerate/torchrun/srun/Ray: a process group
    handlers = [InitProcessGroupKwargs(backend="gloo")] if launched and not torch.cuda.is_available() else []
    plugin = None
    if ds_config is not None:
        ds = {**ds_config}
        if ds.get("train_micro_batch_size_per_gpu", "auto") == "auto":
            # We feed micro-batches ourselves (no prepared DataLoader to infer it from).
            ds["train_micro_batch_size_per_gpu"] = cfg.per_device_batch_size
        if load_universal:
            ds["checkpoint"] = {**(ds.get("checkpoint") or {}), "load_universal": True}
        plugin = DeepSpeedPlugin(hf_ds_config=ds, gradient_clipping=cfg.max_grad_norm)
    # Only whole accumulation windows are ever run, so no dataloader end forces a sync.
    accumulation_plugin = GradientAccumulationPlugin(num_steps=accumulation, sync_with_dataloader=False)
    return Accelerator(mixed_precision=cfg.mixed_precision, deepspeed_plugin=plugin,
                       gradient_accumulation_plugin=accumulation_plugin, kwargs_handlers=handlers)
