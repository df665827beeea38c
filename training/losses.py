"""Completion-only token losses (pure functions on tensors, unit-tested alone).

Position t of the logits predicts token t+1. Labels are IGNORE_INDEX on prompt tokens, on padding,
and on the first token of every packed example, so no loss ever crosses an example boundary.
"""

from __future__ import annotations

from training.sft_data import IGNORE_INDEX


def _aligned_targets(logits, labels):
    """The labels that the kept logits predict: `logits` covers the last K positions of the row."""
    keep = logits.shape[1]
    return labels[:, labels.shape[1] - keep + 1:]


def completion_loss_sum(logits, labels, weights):
    """Sum over completion tokens of (weight x cross-entropy), and the number of those tokens.

    `weights` is per example ([B], one weight for the whole row) or per token ([B, T], packed rows
    hold several examples with their own weights); the per-token form is aligned like `labels`.
    Dividing the sum by the completion tokens of the whole optimizer step (all micro-batches, all
    ranks) gives a loss that does not depend on how the step was split.
    """
    import torch.nn.functional as F

    targets = _aligned_targets(logits, labels)
    per_token = F.cross_entropy(
        logits[:, :-1].float().reshape(-1, logits.shape[-1]), targets.reshape(-1),
        ignore_index=IGNORE_INDEX, reduction="none",
    ).view(targets.shape)
    mask = targets != IGNORE_INDEX
    if weights.dim() == 1:
        token_weights = weights[:, None]
    else:
        token_weights = _aligned_targets(logits, weights)
    return (per_token * token_weights * mask).sum(), mask.sum()


def completion_token_hits(logits, labels):
    """(correct greedy predictions, completion tokens): the eval token accuracy's numerator and denominator."""
    targets = _aligned_targets(logits, labels)
    mask = targets != IGNORE_INDEX
    hits = (logits[:, :-1].argmax(dim=-1) == targets) & mask
    return hits.sum(), mask.sum()
