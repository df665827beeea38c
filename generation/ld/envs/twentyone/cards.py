"""Cards of 21 Points: ranks, values and hand totals (aces count 11 unless that would bust)."""

from __future__ import annotations

import random

RANKS = ("A", "2", "3", "4", "5", "6", "7", "8", "9", "10", "J", "Q", "K")
VALUES = {"A": 1, "J": 10, "Q": 10, "K": 10, **{str(v): v for v in range(2, 11)}}


def hand_total(cards: list[str]) -> tuple[int, bool]:
    """(best total, soft): one ace counts 11 when that keeps the total at or below 21 ("soft")."""
    total = sum(VALUES[c] for c in cards)
    if "A" in cards and total + 10 <= 21:
        return total + 10, True
    return total, False


class Shoe:
    """An endless, seeded shoe: every card is drawn uniformly from the 13 ranks (no card counting)."""

    def __init__(self, seed: int):
        self._rng = random.Random(f"twentyone:{seed}:cards")

    def draw(self) -> str:
        return self._rng.choice(RANKS)


def dealer_plays(cards: list[str], shoe: Shoe, hits_soft_17: bool) -> list[str]:
    """The dealer's policy: draw until the total is 17 or more (hitting a soft 17 only if configured)."""
    cards = list(cards)
    while True:
        total, soft = hand_total(cards)
        if total > 17 or (total == 17 and not (soft and hits_soft_17)):
            return cards
        cards.append(shoe.draw())
