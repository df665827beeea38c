"""Answer metrics: exact match (text or numeric) and DROP-style token F1.

Normalisation follows the DROP evaluation script: lower case, punctuation and articles removed,
numbers written canonically ("2.0" and "2" are one token). F1 is computed on bags of tokens; as in
DROP, when the gold answer holds numbers and the prediction's numbers do not match them, F1 is 0.
Multiple gold answers: the best score over them.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from typing import Iterable

from generation.datasets.answers import format_number, parse_number

ARTICLES = re.compile(r"\b(a|an|the)\b", re.IGNORECASE)
PUNCTUATION = set(string.punctuation)


def _normalise_token(token: str) -> str:
    stripped = token.replace(",", "") if re.fullmatch(r"-?[\d,]+(\.\d+)?", token) else token
    try:
        return format_number(float(stripped))
    except ValueError:
        return "".join(ch for ch in token if ch not in PUNCTUATION)


def normalise_answer(text: str) -> str:
    """DROP-style normal form: lower case, no articles, no punctuation, canonical numbers, single spaces."""
    tokens = [_normalise_token(t) for t in ARTICLES.sub(" ", str(text).lower()).split()]
    return " ".join(t for t in tokens if t)


def exact_match(prediction: str | None, golds: str | Iterable[str]) -> float:
    """1.0 if the normalised prediction equals any normalised gold answer."""
    if prediction is None:
        return 0.0
    golds = [golds] if isinstance(golds, str) else list(golds)
    return float(any(normalise_answer(prediction) == normalise_answer(g) for g in golds))


def _is_number(token: str) -> bool:
    return parse_number(token) is not None and re.fullmatch(r"-?\d+(\.\d+)?", token) is not None


def _f1_one(prediction: str, gold: str) -> float:
    pred_tokens, gold_tokens = normalise_answer(prediction).split(), normalise_answer(gold).split()
    if not pred_tokens and not gold_tokens:
        return 1.0
    gold_numbers = {t for t in gold_tokens if _is_number(t)}
    if gold_numbers and not gold_numbers & {t for t in pred_tokens if _is_number(t)}:
        return 0.0  # DROP: a wrong number is wrong however many words around it match
    common = sum((Counter(pred_tokens) & Counter(gold_tokens)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred_tokens), common / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def token_f1(prediction: str | None, golds: str | Iterable[str]) -> float:
    """DROP-style bag-of-tokens F1 against the best of the gold answers."""
    if prediction is None:
        return 0.0
    golds = [golds] if isinstance(golds, str) else list(golds)
    if not golds:
        raise ValueError("token_f1: no gold answers given")
    return max(_f1_one(prediction, g) for g in golds)
