"""Which rows every process trains on at every optimizer step: a pure function of (seed, step).

The order does not depend on the number of processes: each epoch is one seeded permutation of the
rows, step s takes the s-th window of `rows_per_step` rows, and the window is cut into equal
contiguous shares, one per rank, then into micro-batches. So
- resuming at step s needs nothing but s (the data position is the step counter);
- 1 process x accumulation 2 and 2 processes x accumulation 1 see the same micro-batches;
- a resume onto another process count continues the same sequence, as long as `rows_per_step`
  (training.global_batch_size) stays the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

from training.packing import PackedCollator, pack_rows
from training.sft_data import LeftPadCollator, SFTExample


def split_eval(examples: Sequence[SFTExample], fraction: float, seed: int) -> tuple[list, list]:
    """(train, eval): a seeded `fraction` of the examples held out, the same on every rank."""
    if fraction <= 0:
        return list(examples), []
    import torch

    order = torch.randperm(len(examples), generator=torch.Generator().manual_seed(seed + 7919)).tolist()
    n_eval = max(1, int(round(fraction * len(examples))))
    held = set(order[:n_eval])
    return ([e for i, e in enumerate(examples) if i not in held], [e for i, e in enumerate(examples) if i in held])


def build_rows(examples: Sequence[SFTExample], packing: bool, capacity: int) -> list[list[SFTExample]]:
    """One example per row, or examples packed into rows of at most `capacity` tokens."""
    if not packing:
        return [[e] for e in examples]
    return [[examples[i] for i in row] for row in pack_rows([len(e.input_ids) for e in examples], capacity)]


def make_collate(pad_token_id: int, packing: bool) -> Callable[[Sequence[Sequence[SFTExample]]], dict]:
    if packing:
        return PackedCollator(pad_token_id)
    left_pad = LeftPadCollator(pad_token_id)
    return lambda rows: left_pad([row[0] for row in rows])


@dataclass
class DataPlan:
    rows: list[list[SFTExample]]
    rows_per_step: int  # over all processes
    micro_batch: int  # rows per micro-batch on one process
    world_size: int
    rank: int
    seed: int
    collate: Callable = field(repr=False)
    _epoch_cache: tuple[int, list[int]] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        share = self.rows_per_step // self.world_size
        if self.rows_per_step % self.world_size or share % self.micro_batch:
            raise ValueError(f"rows_per_step {self.rows_per_step} must split into {self.world_size} equal shares "
                             f"of whole micro-batches of {self.micro_batch}")
        if self.steps_per_epoch == 0:
            raise ValueError(f"{len(self.rows)} training rows are fewer than one optimizer step needs "
                             f"({self.rows_per_step} = per_device_batch_size x accumulation x processes); "
                             f"use more data or a smaller batch")

    @property
    def steps_per_epoch(self) -> int:
        return len(self.rows) // self.rows_per_step

    @property
    def accumulation(self) -> int:
        return self.rows_per_step // self.world_size // self.micro_batch

    def epoch_order(self, epoch: int) -> list[int]:
        if self._epoch_cache is None or self._epoch_cache[0] != epoch:
            import torch

            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._epoch_cache = (epoch, torch.randperm(len(self.rows), generator=generator).tolist())
        return self._epoch_cache[1]

    def window_rows(self, step: int) -> list[int]:
        """Row indices of optimizer step `step` (0-based) over all processes."""
        epoch, index = divmod(step, self.steps_per_epoch)
        return self.epoch_order(epoch)[index * self.rows_per_step:(index + 1) * self.rows_per_step]

    def micro_batches(self, step: int) -> list[dict]:
        """This rank's collated micro-batches for optimizer step `step`."""
        window = self.window_rows(step)
        share = self.rows_per_step // self.world_size
        mine = window[self.rank * share:(self.rank + 1) * share]
        return [self.collate([self.rows[i] for i in mine[j:j + self.micro_batch]])
                for j in range(0, share, self.micro_batch)]


def eval_batches(examples: Sequence[SFTExample], micro_batch: int, world_size: int, rank: int,
                 collate: Callable, packing: bool, capacity: int) -> list[tuple[dict, bool]]:
    """This rank's share of the held-out rows in micro-batches, as (batch, counted) pairs.

    Every rank gets the same number of batches (ZeRO-3 gathers parameters collectively, so a rank
    that ran fewer forward passes would hang the others); a rank whose share ran out repeats a batch
    with counted=False.
    """
    rows = build_rows(examples, packing, capacity)
    if not rows:
        return []
    share = -(-len(rows) // world_size)
    mine = rows[rank * share:(rank + 1) * share]
    batches = [(collate(mine[j:j + micro_batch]), True) for j in range(0, len(mine), micro_batch)]
    filler = collate(rows[:1])
    return batches + [(filler, False)] * (-(-share // micro_batch) - len(batches))


def model_inputs(batch: dict, device) -> dict:
    """The model's forward arguments from a collated batch. A packed batch has no attention mask:
    the model derives the block-diagonal mask from the restarting position ids."""
    inputs = {"input_ids": batch["input_ids"].to(device), "position_ids": batch["position_ids"].to(device),
              "use_cache": False}
    if batch.get("attention_mask") is not None:
        inputs["attention_mask"] = batch["attention_mask"].to(device)
    if batch.get("logits_to_keep"):
        inputs["logits_to_keep"] = batch["logits_to_keep"]
    return inputs
