"""Choose among a closed set of continuations by the model's own likelihood.

An LD student's reply must name one of the retrieved candidates. Greedy decoding can name a
function the student memorised in training instead (e.g. `move_fire` when the candidates offer the
never-seen `move_gas`), which the parser then rejects. Scoring each allowed `Call: <name>(` prefix
and decoding only the arguments is the usual closed-vocabulary tool choice (as with an enum in a
JSON schema): the student still decides, but only among the names it was offered.
"""

from __future__ import annotations

from typing import Sequence


def continuation_logprobs(model, tokenizer, prefix: str, continuations: Sequence[str], device) -> list[float]:
    """Sum of token log-probabilities of each continuation after `prefix`, in one padded batch."""
    import torch

    prefix_ids = tokenizer(prefix, add_special_tokens=False)["input_ids"]
    rows, spans = [], []
    for text in continuations:
        ids = tokenizer(prefix + text, add_special_tokens=False)["input_ids"]
        # BPE may merge across the boundary; score from the first token that differs from the prefix's
        start = next((i for i, (a, b) in enumerate(zip(ids, prefix_ids)) if a != b), min(len(ids), len(prefix_ids)))
        rows.append(ids)
        spans.append((max(start, 1), len(ids)))
    width = max(len(r) for r in rows)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    input_ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, ids in enumerate(rows):  # right padding: positions of real tokens stay 0..n-1
        input_ids[i, :len(ids)] = torch.tensor(ids)
        mask[i, :len(ids)] = 1
    with torch.inference_mode():
        logits = model(input_ids=input_ids.to(device), attention_mask=mask.to(device)).logits.float()
    logprobs = torch.log_softmax(logits, dim=-1)
    scores = []
    for i, (start, end) in enumerate(spans):
        targets = input_ids[i, start:end].to(device)
        scores.append(float(logprobs[i, start - 1:end - 1].gather(1, targets[:, None]).sum()))
    return scores


def best_continuation(model, tokenizer, prefix: str, continuations: Sequence[str], device) -> int:
    """Index of the most likely continuation (ties: the first, i.e. the retriever's higher rank)."""
    if not continuations:
        raise ValueError("no continuations to choose from")
    scores = continuation_logprobs(model, tokenizer, prefix, continuations, device)
    return max(range(len(scores)), key=lambda i: (scores[i], -i))
