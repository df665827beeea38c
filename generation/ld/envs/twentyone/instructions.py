"""The 21 Points instructions, as data and as the text prompts show.

- win:   "Win the hand against the dealer."                             success: reward > 0
- reach: "Finish with a total of at least 19 without going over 21."    params {"total": 19}
- cards: "Finish holding at least 4 cards without going over 21."       params {"cards": 4}
"""

from __future__ import annotations

import random
import re

from configs.task_schema import TwentyOneConfig
from generation.ld.envs.base import Instruction

_WIN = re.compile(r"^\s*win the hand against the dealer\.?\s*$", re.IGNORECASE)
_REACH = re.compile(r"^\s*finish with a total of at least (\d+) without going over 21\.?\s*$", re.IGNORECASE)
_CARDS = re.compile(r"^\s*finish holding at least (\d+) cards without going over 21\.?\s*$", re.IGNORECASE)


def win() -> Instruction:
    return Instruction(kind="win", params={}, text="Win the hand against the dealer.")


def reach(total: int) -> Instruction:
    return Instruction(kind="reach", params={"total": int(total)},
                       text=f"Finish with a total of at least {int(total)} without going over 21.")


def cards(count: int) -> Instruction:
    return Instruction(kind="cards", params={"cards": int(count)},
                       text=f"Finish holding at least {int(count)} cards without going over 21.")


def parse_instruction(text: str) -> Instruction:
    if not isinstance(text, str):
        raise ValueError(f"instruction text must be a string, got {type(text).__name__}")
    if _WIN.match(text):
        return win()
    if m := _REACH.match(text):
        return reach(int(m.group(1)))
    if m := _CARDS.match(text):
        return cards(int(m.group(1)))
    raise ValueError(f"not a 21 Points instruction: {text!r} (expected 'Win the hand against the dealer.', "
                     "'Finish with a total of at least T without going over 21.' or "
                     "'Finish holding at least N cards without going over 21.')")


def sample_instruction(rng: random.Random, config: TwentyOneConfig) -> Instruction:
    kinds = [k for k, w in config.instruction_mix.items() if w > 0]
    kind = rng.choices(kinds, weights=[config.instruction_mix[k] for k in kinds])[0]
    if kind == "reach":
        return reach(rng.choice(config.reach_totals))
    if kind == "cards":
        return cards(rng.choice(config.card_counts))
    return win()


def check_instruction(instruction: Instruction) -> None:
    """Raise ValueError naming the problem when `instruction` is not playable."""
    p = instruction.params
    if instruction.kind == "win":
        return
    if instruction.kind == "reach":
        if not isinstance(p.get("total"), int) or not 2 <= p["total"] <= 21:
            raise ValueError(f"reach needs a target total in 2..21, got {p.get('total')!r}")
        return
    if instruction.kind == "cards":
        if not isinstance(p.get("cards"), int) or not 2 <= p["cards"] <= 11:
            raise ValueError(f"cards needs a card count in 2..11, got {p.get('cards')!r}")
        return
    raise ValueError(f"unknown 21 Points instruction kind {instruction.kind!r}")
