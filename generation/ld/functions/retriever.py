"""BM25 retrieval of the top-K functions for (stage, instruction, state).

Each function is indexed by its name (split at underscores), stage, docstring and manual entry.
The index is rebuilt when functions join at run time; it is small, so that costs microseconds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rank_bm25 import BM25Okapi

TOKEN = re.compile(r"[a-z0-9]+")


def tokenize(text: str) -> list[str]:
    return TOKEN.findall(text.lower().replace("_", " "))


@dataclass(frozen=True)
class Indexed:
    name: str
    stage: str
    text: str


class FunctionRetriever:
    def __init__(self, entries: list[Indexed]):
        self.entries: list[Indexed] = []
        self._bm25: BM25Okapi | None = None
        self.add(entries)

    def add(self, entries: list[Indexed]) -> None:
        """New functions (e.g. written for an emergency mid-episode) become retrievable at once."""
        known = {e.name for e in entries}
        self.entries = [e for e in self.entries if e.name not in known] + list(entries)
        corpus = [tokenize(f"{e.name} {e.stage} {e.stage} {e.text}") for e in self.entries]
        self._bm25 = BM25Okapi(corpus) if corpus else None

    def top_k(self, query: str, k: int, stage: str | None = None, exclude: set[str] | frozenset = frozenset()
              ) -> list[str]:
        """Names of the k best functions; with `stage`, only that stage's functions compete; names in
        `exclude` never do (e.g. functions of an emergency that is not in force).

        Ties keep index order so retrieval is deterministic.
        """
        if self._bm25 is None or k <= 0:
            return []
        scores = self._bm25.get_scores(tokenize(query))
        ranked = sorted(range(len(self.entries)), key=lambda i: (-scores[i], i))
        names = [self.entries[i].name for i in ranked
                 if (stage is None or self.entries[i].stage == stage) and self.entries[i].name not in exclude]
        return names[:k]
