"""Choose among a closed set of continuations by the model's own likelihood.

An LD student's reply must name one of the retrieved candidates. Greedy decoding can name a
function the student memorised in training instead (e.g. `move_fire` when the candidates offer the
never-seen `move_gas`), which the parser then rejects. Scoring each allowed `Call: <name>(` prefix
and decoding only the arguments is the usual closed-vocabulary tool choice (as with an enum in a
JSON schema): the student still decides, but only among the names it was offered.
"""

from __future__ import annotations

from typing import Sequence


def _scored_ids(tokenizer, prefix: str, continuation: str) -> tuple[list[int], int]:
    """Token ids of prefix + continuation and the index of the first continuation token."""
    prefix_ids = tokenizer(prefix, add_special_tokens=False)["input_ids"]
    ids = tokenizer(prefix + continuation, add_special_tokens=False)["input_ids"]
    # BPE may merge across the boundary: score from the first token that differs from the prefix's
    start = next((i for i, (a, b) in enumerate(zip(ids, prefix_ids)) if a != b), min(len(ids), len(prefix_ids)))
    return ids, max(start, 1)


def pair_logprobs(model, tokenizer, pairs: Sequence[tuple[str, str]], device, batch_rows: int = 64) -> list[float]:
    """Sum of token log-probabilities of each (prefix, continuation) pair's continuation."""
    import torch

    encoded = [_scored_ids(tokenizer, prefix, text) for prefix, text in pairs]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    scores: list[float] = []
    for lo in range(0, len(encoded), batch_rows):
        chunk = encoded[lo:lo + batch_rows]
        width = max(len(ids) for ids, _ in chunk)
        input_ids = torch.full((len(chunk), width), pad, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for i, (ids, _) in enumerate(chunk):  # right padding: positions of real tokens stay 0..n-1
            input_ids[i, :len(ids)] = torch.tensor(ids)
            mask[i, :len(ids)] = 1
        with torch.inference_mode():
            logits = model(input_ids=input_ids.to(device), attention_mask=mask.to(device)).logits.float()
        logprobs = torch.log_softmax(logits, dim=-1)
        for i, (ids, start) in enumerate(chunk):
            targets = input_ids[i, start:len(ids)].to(device)
            scores.append(float(logprobs[i, start - 1:len(ids) - 1].gather(1, targets[:, None]).sum()))
    return scores


def continuation_logprobs(model, tokenizer, prefix: str, continuations: Sequence[str], device) -> list[float]:
    return pair_logprobs(model, tokenizer, [(prefix, c) for c in continuations], device)


def argmax_first(scores: Sequence[float]) -> int:
    """Index of the best score; ties go to the first (the retriever's higher rank)."""
    if not scores:
        raise ValueError("no continuations to choose from")
    return max(range(len(scores)), key=lambda i: (scores[i], -i))


def best_continuation(model, tokenizer, prefix: str, continuations: Sequence[str], device) -> int:
    return argmax_first(continuation_logprobs(model, tokenizer, prefix, continuations, device))
