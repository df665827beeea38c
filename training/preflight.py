"""Start-up checks that fail before any compute is spent, each with an error that names the fix.

They run once, in the launcher, on the resolved job (training/job.py `prepare_job`), before it
starts processes: one clear message instead of N rank tracebacks. The processes do not repeat them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from configs.resolved_training import ResolvedTraining


class PreflightError(ValueError):
    """A run that would fail (or silently go wrong) later; raised before any training starts."""


def check_vocab(tokenizer, model_vocab_size: int) -> None:
    """Every token id the tokenizer can produce must have an embedding row."""
    size = len(tokenizer)
    if size > model_vocab_size:
        raise PreflightError(f"tokenizer/model vocab mismatch: the tokenizer has {size} tokens but the model's "
                             f"embedding has {model_vocab_size} rows; ids >= {model_vocab_size} would index out of "
                             "range. Use the tokenizer saved with this model, or resize the embeddings first")
    for name in ("pad_token_id", "eos_token_id", "bos_token_id"):
        token_id = getattr(tokenizer, name, None)
        if token_id is not None and token_id >= model_vocab_size:
            raise PreflightError(f"tokenizer {name}={token_id} is outside the model vocab ({model_vocab_size})")


def check_chat_template(tokenizer) -> None:
    """The template must exist, keep the prompt a prefix, and close the assistant turn with EOS."""
    from training.sft_data import render_chat_pair

    if not getattr(tokenizer, "chat_template", None):
        raise PreflightError("the tokenizer has no chat_template; prompt masking and generation need one")
    if tokenizer.eos_token_id is None:
        raise PreflightError("the tokenizer has no EOS token; a trained student would never stop generating")
    try:
        _, completion_text = render_chat_pair(tokenizer, "ping", "pong")
    except ValueError as err:
        raise PreflightError(str(err)) from None
    ids = tokenizer(completion_text, add_special_tokens=False)["input_ids"]
    if not ids or ids[-1] != tokenizer.eos_token_id:
        raise PreflightError(f"missing EOS in the chat template: an assistant turn renders as {completion_text!r}, "
                             f"which does not end with the EOS token {tokenizer.eos_token!r}; the student would not "
                             "learn to stop. Append {{ eos_token }} after the assistant content in the template")


def check_deepspeed_config(ds: dict[str, Any], resolved: ResolvedTraining, source: str = "") -> None:
    """The DeepSpeed JSON leaves shared values to the training section and can export under ZeRO-3."""
    cfg, where = resolved.settings, f" ({source})" if source else ""
    for section in ("optimizer", "scheduler"):
        if section in ds:
            raise PreflightError(f"the DeepSpeed config{where} has a {section!r} section; the training loop owns the "
                                 f"optimizer and the lr schedule (training.learning_rate, lr_schedule). Remove it")
    zero = ds.get("zero_optimization") or {}
    if int(zero.get("stage", 0)) == 3 and zero.get("stage3_gather_16bit_weights_on_model_save") is not True:
        raise PreflightError(f"the ZeRO-3 DeepSpeed config{where} does not set "
                             "zero_optimization.stage3_gather_16bit_weights_on_model_save: true; without it the "
                             "final export cannot gather the sharded weights into a Hugging Face checkpoint")
    expected = {
        "train_micro_batch_size_per_gpu": resolved.micro_batch,
        "gradient_accumulation_steps": resolved.accumulation,
        "train_batch_size": resolved.rows_per_step,
        "gradient_clipping": cfg.max_grad_norm,
    }
    for key, value in expected.items():
        found = ds.get(key, "auto")
        if found != "auto" and found != value:
            raise PreflightError(f"the DeepSpeed config{where} sets {key}={found!r} but the training section implies "
                                 f"{value!r}; a value set in two places disagrees. Write \"auto\" in the JSON")
    for precision in ("bf16", "fp16"):
        enabled = (ds.get(precision) or {}).get("enabled", "auto")
        if enabled != "auto" and bool(enabled) != (cfg.mixed_precision == precision):
            raise PreflightError(f"the DeepSpeed config{where} sets {precision}.enabled={enabled} but "
                                 f"training.mixed_precision={cfg.mixed_precision!r}; write \"auto\" in the JSON")


def check_student(student_dir: str | Path) -> None:
    """Vocab and chat-template checks on a checkpoint directory, without loading its weights."""
    from transformers import AutoConfig, AutoTokenizer

    student_dir = Path(student_dir)
    if not (student_dir / "config.json").is_file():
        raise PreflightError(f"student {student_dir} is not a Hugging Face checkpoint directory (no config.json)")
    tokenizer = AutoTokenizer.from_pretrained(str(student_dir))
    config = AutoConfig.from_pretrained(str(student_dir))
    check_vocab(tokenizer, config.vocab_size)
    check_chat_template(tokenizer)


def run_preflight(resolved: ResolvedTraining, student_dir: str | Path) -> None:
    """All start-up checks for one resolved run; raises PreflightError on the first problem.
    (Batch arithmetic and the ZeRO stage were checked when the run was resolved.)"""
    if resolved.deepspeed is not None:
        check_deepspeed_config(resolved.deepspeed, resolved, source=resolved.deepspeed_source or "")
    check_student(student_dir)
