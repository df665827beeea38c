"""The 21 Points state as compact text, and back.

    hand A 6 (soft 17)
    dealer 9
    decision 1, double allowed

`total` and `soft` are derived from the cards and printed because a small student cannot add up a
hand in its head; `parse_state_text` reads them back and checks them against the cards.
"""

from __future__ import annotations

import re
from typing import Any

from generation.ld.envs.twentyone.cards import RANKS, hand_total

_HAND = re.compile(r"^hand ((?:\S+ )+)\((soft|hard) (\d+)\)$")
_DEALER = re.compile(r"^dealer (\S+)$")
_DECISION = re.compile(r"^decision (\d+), double (allowed|not allowed)$")


def render_state(state: dict[str, Any]) -> str:
    kind = "soft" if state["soft"] else "hard"
    return (f"hand {' '.join(state['player'])} ({kind} {state['total']})\n"
            f"dealer {state['dealer_up']}\n"
            f"decision {state['decisions'] + 1}, double {'allowed' if state['can_double'] else 'not allowed'}")


def parse_state_text(text: str) -> dict[str, Any]:
    """Inverse of `render_state`; raises ValueError naming the first line it cannot read."""
    if not isinstance(text, str):
        raise ValueError(f"state text must be a string, got {type(text).__name__}")
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    if len(lines) != 3:
        raise ValueError(f"21 Points state text has 3 lines (hand, dealer, decision), got {len(lines)}")
    hand, dealer, decision = _HAND.match(lines[0]), _DEALER.match(lines[1]), _DECISION.match(lines[2])
    for match, line in ((hand, lines[0]), (dealer, lines[1]), (decision, lines[2])):
        if not match:
            raise ValueError(f"cannot read state line {line!r}")
    player = hand.group(1).split()
    if any(c not in RANKS for c in [*player, dealer.group(1)]):
        raise ValueError(f"unknown card in {lines[0]!r} / {lines[1]!r}; ranks: {' '.join(RANKS)}")
    total, soft = hand_total(player)
    if total != int(hand.group(3)) or soft != (hand.group(2) == "soft"):
        raise ValueError(f"{lines[0]!r}: the cards make {'soft' if soft else 'hard'} {total}")
    return {"player": player, "total": total, "soft": soft, "dealer_up": dealer.group(1),
            "decisions": int(decision.group(1)) - 1, "can_double": decision.group(2) == "allowed"}
