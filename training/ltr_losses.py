"""Learn-to-Reason losses (Wang, Sun et al. 2023), as pure functions on tensors, unit-tested alone.

- MLE over prompt + rationale: every non-padding token after the first is a target; prompt tokens
  weigh `prompt_weight` (0.1 by default), rationale tokens 1. The sum is divided by the number of
  valid (target) tokens, not by the sum of weights. The per-token weights are built by
  `training.ltr_data`; the sum itself is `training.losses.completion_loss_sum` with per-token weights.
- Self-reflection: a triplet loss with cosine distance on the last non-padding hidden state,
  max(0, margin - cos(anchor, positive) + cos(anchor, negative)), averaged over the examples that have
  both a positive and a negative. Anchor = the rationale being trained on, positive = another teacher
  rationale for the same question, negative = the student's own wrong rationale.
"""

from __future__ import annotations

from training.losses import completion_loss_sum

DEFAULT_PROMPT_WEIGHT = 0.1
DEFAULT_MARGIN = 1.0
DEFAULT_REFLECTION_WEIGHT = 0.5


def prompt_weighted_mle(logits, labels, token_weights):
    """Mean over valid tokens of (token weight x cross-entropy); `token_weights` is [B, T] like `labels`."""
    total, valid = completion_loss_sum(logits, labels, token_weights)
    return total / valid.clamp(min=1)


def last_token_states(hidden, attention_mask):
    """The hidden state of each row's last non-padding token ([B, T, H] -> [B, H]), for left or right padding."""
    import torch

    width = attention_mask.shape[1]
    last = width - 1 - attention_mask.flip(dims=[1]).to(torch.long).argmax(dim=1)
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]


def triplet_losses(anchor, positive, negative, margin: float = DEFAULT_MARGIN):
    """Per-example max(0, margin - cos(anchor, positive) + cos(anchor, negative)); inputs [K, H] -> [K]."""
    import torch.nn.functional as F

    a, p, n = anchor.float(), positive.float(), negative.float()
    return (margin - F.cosine_similarity(a, p, dim=-1) + F.cosine_similarity(a, n, dim=-1)).clamp(min=0)


def triplet_loss_sum(anchor, positive, negative, margin: float = DEFAULT_MARGIN):
    """(sum of the per-example triplet losses, number of examples): summed, so that the training loop
    can divide by the count of the whole optimizer step over all micro-batches and ranks."""
    losses = triplet_losses(anchor, positive, negative, margin)
    return losses.sum(), losses.shape[0]


def self_reflection_loss(anchor, positive, negative, margin: float = DEFAULT_MARGIN):
    """The mean triplet loss over the given examples (0 when there are none)."""
    total, count = triplet_loss_sum(anchor, positive, negative, margin)
    return total / max(count, 1)


def ltr_loss(logits, labels, token_weights, hidden, attention_mask, anchor_rows, positive_rows, negative_rows,
             reflection_weight: float = DEFAULT_REFLECTION_WEIGHT, margin: float = DEFAULT_MARGIN):
    """The whole objective of one batch: MLE + reflection_weight x self-reflection.

    `hidden`/`attention_mask` cover every row of the batch (anchors, positives, negatives); the
    `*_rows` index tensors pick the rows of each triplet. Rows without labels add nothing to the MLE.
    """
    mle = prompt_weighted_mle(logits, labels, token_weights)
    if reflection_weight == 0 or anchor_rows.numel() == 0:
        return mle
    states = last_token_states(hidden, attention_mask)
    reflection = self_reflection_loss(states[anchor_rows], states[positive_rows], states[negative_rows], margin)
    return mle + reflection_weight * reflection
