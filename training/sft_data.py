"""Supervised fine-tuning data: parquet (prompt, completion[, weight]) -> masked token ids -> padded batches.

Each row is rendered with the tokenizer's chat template as one user turn and one assistant turn.
Labels are -100 on every prompt token (the rendering of [user] + generation prompt, which must be a
prefix of the full rendering), so the loss covers only the completion and the EOS that closes it.
Batches are padded on the LEFT: every completion then ends at the last position, and the model only
needs logits for the last few positions (`logits_to_keep`), which saves most of the output-head
compute on long prompts.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

IGNORE_INDEX = -100
REQUIRED_COLUMNS = ("prompt", "completion")
log = logging.getLogger(__name__)


@dataclass
class SFTExample:
    input_ids: list[int]
    labels: list[int]  # IGNORE_INDEX on prompt tokens
    weight: float = 1.0

    @property
    def num_completion_tokens(self) -> int:
        return sum(1 for label in self.labels if label != IGNORE_INDEX)


def parquet_files(data: str | Path | Sequence[str | Path]) -> list[Path]:
    """Parquet files named directly or found (recursively) in the given directories, sorted."""
    items = [data] if isinstance(data, (str, Path)) else list(data)
    files: list[Path] = []
    for item in items:
        path = Path(item).expanduser()
        if path.is_dir():
            files.extend(sorted(path.rglob("*.parquet")))
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f"training data {path} does not exist")
    if not files:
        raise FileNotFoundError(f"no .parquet files found in {[str(i) for i in items]}")
    return files


def read_sft_rows(data: str | Path | Sequence[str | Path]) -> list[dict]:
    """Rows {prompt, completion, weight} from parquet files; a clear error on missing/ill-typed columns."""
    import pyarrow.parquet as pq

    rows: list[dict] = []
    for path in parquet_files(data):
        names = pq.read_schema(path).names
        missing = [c for c in REQUIRED_COLUMNS if c not in names]
        if missing:
            raise ValueError(f"{path}: missing column(s) {missing}; SFT data needs string columns "
                             f"'prompt' and 'completion' (optional 'weight'), found {names}")
        # Record shards carry other columns too (lineage, metadata); read only ours.
        table = pq.read_table(path, columns=[c for c in (*REQUIRED_COLUMNS, "weight") if c in names])
        columns = table.to_pydict()
        weights = columns.get("weight") or [1.0] * table.num_rows
        for i, (prompt, completion) in enumerate(zip(columns["prompt"], columns["completion"])):
            if not isinstance(prompt, str) or not isinstance(completion, str):
                raise ValueError(f"{path}: row {i}: prompt and completion must be strings, "
                                 f"got {type(prompt).__name__} and {type(completion).__name__}")
            weight = 1.0 if weights[i] is None else float(weights[i])
            if weight < 0:
                raise ValueError(f"{path}: row {i}: weight must be >= 0, got {weight}")
            rows.append({"prompt": prompt, "completion": completion, "weight": weight})
    return rows


def render_chat_pair(tokenizer, prompt: str, completion: str) -> tuple[str, str]:
    """(prompt text, completion text) from the chat template: the prompt text is the rendering of
    [user] + generation prompt, the completion text what [user, assistant] adds after it."""
    user = [{"role": "user", "content": prompt}]
    prompt_text = tokenizer.apply_chat_template(user, tokenize=False, add_generation_prompt=True)
    full_text = tokenizer.apply_chat_template(user + [{"role": "assistant", "content": completion}], tokenize=False)
    if not full_text.startswith(prompt_text):
        raise ValueError("the chat template does not render [user] + generation prompt as a prefix of "
                         "[user, assistant]; prompt masking needs that. Prompt rendering ends "
                         f"{prompt_text[-80:]!r}; full rendering there: {full_text[max(0, len(prompt_text) - 80):][:160]!r}")
    return prompt_text, full_text[len(prompt_text):]


def assemble_example(prompt_ids: list[int], completion_ids: list[int], max_seq_len: int, eos_token_id: int | None,
                     weight: float = 1.0) -> SFTExample:
    """Concatenate, mask the prompt, and cut an over-long prompt from the left (BOS is kept)."""
    if eos_token_id is not None and (not completion_ids or completion_ids[-1] != eos_token_id):
        raise ValueError("the chat template does not end the assistant turn with the EOS token "
                         f"(id {eos_token_id}); generation would not know where to stop")
    if len(completion_ids) + 1 >= max_seq_len:
        raise ValueError(f"a completion of {len(completion_ids)} tokens does not fit max_seq_len={max_seq_len}")
    if len(prompt_ids) + len(completion_ids) > max_seq_len:
        keep = max_seq_len - len(completion_ids) - 1  # room for the prompt's tail after its first token
        prompt_ids = prompt_ids[:1] + prompt_ids[len(prompt_ids) - keep:]
    return SFTExample(input_ids=prompt_ids + completion_ids,
                      labels=[IGNORE_INDEX] * len(prompt_ids) + completion_ids, weight=weight)


def encode_rows(tokenizer, rows: Iterable[dict], max_seq_len: int) -> list[SFTExample]:
    """Token ids with labels masked (-100) on the prompt part, for every row.

    The prompt and the completion text are tokenized separately, exactly as at inference time
    (the model sees the prompt's tokens, then produces the completion's), in two batched calls.
    """
    rows = list(rows)
    pairs = [render_chat_pair(tokenizer, row["prompt"], row["completion"]) for row in rows]
    prompt_ids = tokenizer([p for p, _ in pairs], add_special_tokens=False)["input_ids"]
    completion_ids = tokenizer([c for _, c in pairs], add_special_tokens=False)["input_ids"]
    examples, truncated = [], 0
    for row, p_ids, c_ids in zip(rows, prompt_ids, completion_ids):
        truncated += len(p_ids) + len(c_ids) > max_seq_len
        examples.append(assemble_example(p_ids, c_ids, max_seq_len, tokenizer.eos_token_id, row.get("weight", 1.0)))
    if truncated:
        log.warning("%d of %d examples exceeded max_seq_len=%d (prompt truncated from the left)",
                    truncated, len(examples), max_seq_len)
    return examples


def encode_example(tokenizer, prompt: str, completion: str, max_seq_len: int, weight: float = 1.0) -> SFTExample:
    return encode_rows(tokenizer, [{"prompt": prompt, "completion": completion, "weight": weight}], max_seq_len)[0]


class LeftPadCollator:
    """Pads a list of SFTExample on the left into tensors the training step consumes.

    Returns input_ids, attention_mask, position_ids (0 at each sequence's first real token, so a
    padded row computes what the unpadded sequence would), labels, weights, and `logits_to_keep`:
    how many final positions hold a prediction of some completion token.
    """

    def __init__(self, pad_token_id: int) -> None:
        self.pad_token_id = pad_token_id

    def __call__(self, examples: Sequence[SFTExample]) -> dict:
        import torch

        width = max(len(e.input_ids) for e in examples)
        input_ids = torch.full((len(examples), width), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
        attention_mask = torch.zeros((len(examples), width), dtype=torch.long)
        for row, example in enumerate(examples):
            start = width - len(example.input_ids)
            input_ids[row, start:] = torch.tensor(example.input_ids)
            labels[row, start:] = torch.tensor(example.labels)
            attention_mask[row, start:] = 1
        position_ids = (attention_mask.cumsum(dim=1) - 1).clamp(min=0)
        labelled = (labels != IGNORE_INDEX).any(dim=0).nonzero()
        first_label = int(labelled.min()) if len(labelled) else width - 1
        return {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "position_ids": position_ids,
            "labels": labels,
            "weights": torch.tensor([e.weight for e in examples], dtype=torch.float32),
            # The logit at position t predicts token t+1, so keep from first_label - 1 on.
            "logits_to_keep": width - first_label + 1,
            "num_tokens": sum(len(e.input_ids) for e in examples),  # real (non-pad) tokens, for throughput
            "attention_pairs": sum(len(e.input_ids) ** 2 for e in examples),  # for the attention FLOPs
        }
