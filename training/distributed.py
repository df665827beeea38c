"""The single distributed seam: an `Accelerator`, with DeepSpeed when the resolved job carries a JSON.

ZeRO stage, offload and precision come from the DeepSpeed JSON that the launcher resolved into the
job (configs/resolved_training.py), not from the launch's environment; its "auto" entries are
filled from the training section (micro-batch size at resolution, accumulation, clipping and
precision by Accelerate), so no value is set in two places.
"""

from __future__ import annotations

import os

from configs.resolved_training import ResolvedTraining


def make_accelerator(resolved: ResolvedTraining, load_universal: bool = False):
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
    cfg, plugin = resolved.settings, None
    if resolved.deepspeed is not None:
        ds = {**resolved.deepspeed}
        if load_universal:
            ds["checkpoint"] = {**(ds.get("checkpoint") or {}), "load_universal": True}
        # zero3_init given here, or the plugin would read it from the launch's environment.
        plugin = DeepSpeedPlugin(hf_ds_config=ds, gradient_clipping=cfg.max_grad_norm,
                                 zero3_init_flag=resolved.zero3_init)
    # Only whole accumulation windows are ever run, so no dataloader end forces a sync.
    accumulation_plugin = GradientAccumulationPlugin(num_steps=resolved.accumulation, sync_with_dataloader=False)
    return Accelerator(mixed_precision=cfg.mixed_precision, deepspeed_plugin=plugin,
                       gradient_accumulation_plugin=accumulation_plugin, kwargs_handlers=handlers)
