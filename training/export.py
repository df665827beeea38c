"""Export the trained student as a consolidated Hugging Face checkpoint, for every ZeRO stage.

`accelerator.get_state_dict` gathers the full weights (under ZeRO-3 with the 16-bit gather that the
preflight insists on; it is a collective, so every rank calls it). Rank 0 writes them with
`save_pretrained` (LoRA adapters merged first), then reloads the export with `from_pretrained` and
compares its logits on a probe batch with the live model's: the export is known to reproduce the
trained model before the job reports success.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path

from training.data_plan import model_inputs

FP32_TOLERANCE = 1e-3  # max |logit difference| / max(1, |logit|) accepted between live model and export


def probe_logits(accelerator, model, batch: dict):
    """Logits of the live (possibly sharded) model on `batch`; every rank must call it under ZeRO-3."""
    import torch

    was_training = model.training
    model.eval()
    with torch.no_grad():
        logits = model(**model_inputs(batch, accelerator.device)).logits.float().cpu()
    model.train(was_training)
    return logits


def export_checkpoint(accelerator, model, tokenizer, out_dir: Path, *, student_dir: Path, lora=None,
                      probe_batch: dict | None = None, strict: bool = True) -> dict:
    """Write `out_dir` (model + tokenizer) and return the export check {max_abs_logit_diff, ...}."""
    out_dir = Path(out_dir)
    live = probe_logits(accelerator, model, probe_batch) if probe_batch is not None else None
    accelerator.wait_for_everyone()
    state_dict = accelerator.get_state_dict(model)  # a collective under ZeRO-3
    check: dict = {}
    if accelerator.is_main_process:
        with outside_zero3_init(accelerator):
            check = _write_and_check(accelerator, model, tokenizer, out_dir, state_dict, student_dir, lora,
                                     probe_batch, live, strict)
    accelerator.wait_for_everyone()
    return check


@contextmanager
def outside_zero3_init(accelerator):
    """Rank 0 alone loads models here; under ZeRO-3 transformers would partition them at load time
    (a collective the other ranks never join: a hang), so the DeepSpeed hook is lifted meanwhile."""
    plugin = accelerator.state.deepspeed_plugin
    if plugin is None:
        yield
        return
    from transformers.integrations import unset_hf_deepspeed_config

    unset_hf_deepspeed_config()
    try:
        yield
    finally:
        plugin.set_deepspeed_weakref()


def _write_and_check(accelerator, model, tokenizer, out_dir: Path, state_dict, student_dir, lora, probe_batch,
                     live, strict: bool) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    if lora is not None:
        from training.model_setup import merged_lora_model

        merged_lora_model(student_dir, lora, state_dict).save_pretrained(str(out_dir), safe_serialization=True)
    else:
        unwrapped = accelerator.unwrap_model(model)
        unwrapped.save_pretrained(str(out_dir), state_dict=state_dict, safe_serialization=True)
    tokenizer.save_pretrained(str(out_dir))
    if live is None:
        return {}
    check = _compare_with_reloaded(out_dir, probe_batch, live)
    tolerance = FP32_TOLERANCE * max(1.0, check["logit_scale"])  # GPU and CPU fp32 kernels differ slightly
    if strict and check["max_abs_logit_diff"] > tolerance:
        raise RuntimeError(f"the export at {out_dir} does not reproduce the trained model: max |logit difference| "
                           f"on a probe batch is {check['max_abs_logit_diff']:.3g} (> {tolerance:.3g})")
    return check


def _compare_with_reloaded(out_dir: Path, probe_batch: dict, live) -> dict:
    import torch
    from transformers import AutoModelForCausalLM

    reloaded = AutoModelForCausalLM.from_pretrained(str(out_dir), dtype=torch.float32).eval()
    with torch.no_grad():
        logits = reloaded(**model_inputs(probe_batch, "cpu")).logits.float()
    diff = float((logits - live).abs().max())
    check = {"max_abs_logit_diff": diff, "probe_rows": int(probe_batch["input_ids"].shape[0]),
             "logit_scale": float(live.abs().max())}
    (out_dir / "export_check.json").write_text(json.dumps(check, indent=1))
    return check
