"""Learn-to-Reason training data: parquet rows -> prompt-weighted examples with optional triplets -> batches.

A row is {prompt, completion[, weight][, positive][, negative]}: `completion` is the rationale trained
on (the anchor), `positive` another teacher rationale for the same question, `negative` the student's
own wrong rationale. Unlike plain SFT, prompt tokens are targets too, at weight `prompt_weight`.
A batch holds the anchors first, then the positives, then the negatives of the rows that have both,
all left-padded together, so one forward pass gives the MLE logits and every triplet's hidden states
(one forward per micro-batch keeps ZeRO-3's parameter gathering simple).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from training.sft_data import IGNORE_INDEX, LeftPadCollator, SFTExample, encode_rows, parquet_files, read_sft_rows

TRIPLET_COLUMNS = ("positive", "negative")


@dataclass
class LtrExample(SFTExample):
    """An anchor example: labels on prompt and rationale, a weight per token, and its triplet (if any)."""

    token_weights: list[float] = field(default_factory=list)
    positive_ids: list[int] | None = None
    negative_ids: list[int] | None = None

    @property
    def has_triplet(self) -> bool:
        return self.positive_ids is not None and self.negative_ids is not None


def read_ltr_rows(data: str | Path | Sequence[str | Path]) -> list[dict]:
    """Rows {prompt, completion, weight, positive, negative} (the last two None where absent or empty)."""
    import pyarrow.parquet as pq

    extras: list[dict] = []
    for path in parquet_files(data):
        names = pq.read_schema(path).names
        columns = pq.read_table(path, columns=[c for c in TRIPLET_COLUMNS if c in names]).to_pydict()
        n_rows = pq.read_metadata(path).num_rows
        for i in range(n_rows):
            values = {c: (columns[c][i] if c in columns else None) for c in TRIPLET_COLUMNS}
            for name, value in values.items():
                if value is not None and not isinstance(value, str):
                    raise ValueError(f"{path}: row {i}: column {name!r} must be a string or null, "
                                     f"got {type(value).__name__}")
            extras.append({c: v or None for c, v in values.items()})
    return [{**row, **extra} for row, extra in zip(read_sft_rows(data), extras)]


def prompt_weighted(example: SFTExample, prompt_weight: float) -> tuple[list[int], list[float]]:
    """(labels, token weights) with the prompt unmasked: prompt tokens weigh `prompt_weight`, the rest 1,
    both times the row's weight. The first token is never a target (nothing predicts it)."""
    n_prompt = sum(1 for label in example.labels if label == IGNORE_INDEX)
    weights = [prompt_weight * example.weight] * n_prompt + [example.weight] * (len(example.labels) - n_prompt)
    return list(example.input_ids), weights


def encode_ltr_rows(tokenizer, rows: Iterable[dict], max_seq_len: int, prompt_weight: float) -> list[LtrExample]:
    """Token ids of every anchor (prompt-weighted labels) and of its positive/negative sequences."""
    rows = list(rows)
    anchors = encode_rows(tokenizer, rows, max_seq_len)
    with_triplet = [i for i, row in enumerate(rows) if row.get("positive") and row.get("negative")]
    sides = {}
    for side in TRIPLET_COLUMNS:
        encoded = encode_rows(tokenizer, [{"prompt": rows[i]["prompt"], "completion": rows[i][side]}
                                          for i in with_triplet], max_seq_len) if with_triplet else []
        sides[side] = {i: e.input_ids for i, e in zip(with_triplet, encoded)}
    out = []
    for i, anchor in enumerate(anchors):
        labels, weights = prompt_weighted(anchor, prompt_weight)
        out.append(LtrExample(input_ids=anchor.input_ids, labels=labels, weight=anchor.weight, token_weights=weights,
                              positive_ids=sides["positive"].get(i), negative_ids=sides["negative"].get(i)))
    return out


class LtrCollator:
    """Left-pads anchors, then positives, then negatives into one batch (see the module docstring).

    Adds to LeftPadCollator's keys: `weights` per token ([R, T], 0 on triplet-only rows) and the index
    tensors `triplet_anchor_rows`, `triplet_positive_rows`, `triplet_negative_rows`.
    """

    def __init__(self, pad_token_id: int) -> None:
        self.left_pad = LeftPadCollator(pad_token_id)

    def __call__(self, examples: Sequence[LtrExample]) -> dict:
        import torch

        anchors = [i for i, e in enumerate(examples) if e.has_triplet]
        unlabelled = lambda ids: SFTExample(input_ids=ids, labels=[IGNORE_INDEX] * len(ids), weight=0.0)  # noqa: E731
        extra = [unlabelled(examples[i].positive_ids) for i in anchors] + \
            [unlabelled(examples[i].negative_ids) for i in anchors]
        batch = self.left_pad([*examples, *extra])
        width = batch["input_ids"].shape[1]
        weights = torch.zeros((len(examples) + len(extra), width), dtype=torch.float32)
        for row, example in enumerate(examples):
            weights[row, width - len(example.token_weights):] = torch.tensor(example.token_weights)
        n, k = len(examples), len(anchors)
        batch.update(weights=weights, triplet_anchor_rows=torch.tensor(anchors, dtype=torch.long),
                     triplet_positive_rows=torch.arange(n, n + k), triplet_negative_rows=torch.arange(n + k, n + 2 * k))
        return batch
