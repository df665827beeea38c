"""Load the student for training: optional gradient checkpointing and LoRA adapters (peft).

LoRA keeps the base weights frozen and trains low-rank adapters; the export (training/export.py)
merges them back, so what comes out is a plain Hugging Face checkpoint either way.
"""

from __future__ import annotations

from pathlib import Path

from configs.training_schema import LoraSettings, TrainingConfig


def peft_lora_config(settings: LoraSettings):
    from peft import LoraConfig

    return LoraConfig(r=settings.r, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
                      target_modules=settings.target_modules, bias="none", task_type="CAUSAL_LM")


def load_student(student_dir: str | Path, cfg: TrainingConfig):
    """The model to train. Call after the Accelerator exists, so ZeRO-3 can partition at load time."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(student_dir))
    model.config.use_cache = False  # a KV cache during training also disables packed-sequence masking
    if cfg.gradient_checkpointing:
        # Non-reentrant checkpointing needs no input that requires grad, so it composes with LoRA.
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if cfg.lora is not None:
        from peft import get_peft_model

        model = get_peft_model(model, peft_lora_config(cfg.lora))
    return model


def merged_lora_model(student_dir: str | Path, settings: LoraSettings, state_dict: dict):
    """A plain HF model: the base from `student_dir` + the trained adapters in `state_dict`, merged.

    `state_dict` is the gathered (consolidated) state of the PEFT model, so this works the same for
    every ZeRO stage, including ZeRO-3 where the live modules hold only shards.
    """
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(str(student_dir))
    peft_model = get_peft_model(base, peft_lora_config(settings))
    missing, unexpected = peft_model.load_state_dict(state_dict, strict=False)
    lora_missing = [k for k in missing if "lora_" in k]
    if lora_missing or unexpected:
        raise RuntimeError(f"LoRA export: adapter weights missing {lora_missing[:3]} / unexpected {unexpected[:3]}")
    return peft_model.merge_and_unload()
