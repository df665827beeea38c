"""Sequence packing: several examples per row, with no attention across examples.

`pack_rows` groups examples into rows of at most `capacity` tokens (best-fit decreasing, deterministic).
`PackedCollator` lays a row out as the examples one after another with `position_ids` restarting at
0 for each, and passes no attention mask: transformers' Llama then builds a block-diagonal causal
mask from the position restarts (sdpa/eager: `masking_utils.find_packed_sequence_indices`;
flash-attention: variable-length kernels from the same positions), so a token attends only to
earlier tokens of its own example. The first token of every example is a prompt token (label -100),
so no loss term predicts across a boundary either. tests/test_training_packing.py checks both.
"""

from __future__ import annotations

from typing import Sequence

from training.sft_data import IGNORE_INDEX, SFTExample


def pack_rows(lengths: Sequence[int], capacity: int) -> list[list[int]]:
    """Example indices grouped into rows whose lengths sum to at most `capacity`.

    Best-fit decreasing: longest first, each into the fullest row that still has room. Bins are
    indexed by free space (an int <= capacity), so this is O(n x capacity) at worst, not O(n^2).
    """
    too_long = [i for i, n in enumerate(lengths) if n > capacity]
    if too_long:
        raise ValueError(f"{len(too_long)} example(s) longer than the packing capacity {capacity} "
                         f"(first: index {too_long[0]}, {lengths[too_long[0]]} tokens)")
    rows: list[list[int]] = []
    by_free: dict[int, list[int]] = {}  # free tokens -> rows with exactly that much room
    for index in sorted(range(len(lengths)), key=lambda i: (-lengths[i], i)):
        need = lengths[index]
        free = next((f for f in range(need, capacity + 1) if by_free.get(f)), None)
        if free is None:
            rows.append([])
            row, free = len(rows) - 1, capacity
        else:
            row = by_free[free].pop(0)
        rows[row].append(index)
        by_free.setdefault(free - need, []).append(row)
    return rows


class PackedCollator:
    """Rows of packed examples -> right-padded tensors with per-example position restarts.

    The padding tail is its own segment (positions restart there too) with label -100, so it
    neither attends to nor is attended by a real example.
    """

    def __init__(self, pad_token_id: int) -> None:
        self.pad_token_id = pad_token_id

    def __call__(self, rows: Sequence[Sequence[SFTExample]]) -> dict:
        import torch

        width = max(sum(len(e.input_ids) for e in row) for row in rows)
        input_ids = torch.full((len(rows), width), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
        position_ids = torch.zeros((len(rows), width), dtype=torch.long)
        weights = torch.zeros((len(rows), width), dtype=torch.float32)
        real_tokens = attention_pairs = 0
        for r, row in enumerate(rows):
            start = 0
            for example in row:
                n = len(example.input_ids)
                input_ids[r, start:start + n] = torch.tensor(example.input_ids)
                labels[r, start:start + n] = torch.tensor(example.labels)
                position_ids[r, start:start + n] = torch.arange(n)
                weights[r, start:start + n] = example.weight
                start += n
                real_tokens += n
                attention_pairs += n * n
            position_ids[r, start:] = torch.arange(width - start)
        return {"input_ids": input_ids, "attention_mask": None, "position_ids": position_ids, "labels": labels,
                "weights": weights, "logits_to_keep": 0, "num_tokens": real_tokens,
                "attention_pairs": attention_pairs}
