"""21 Points: a blackjack-like card game against a scripted dealer (our own rules, docs/twentyone.md).

The player gets two cards, the dealer one open card (and one hidden). Each decision is "hit" (take a
card), "stand" (stop; the dealer then plays), or, as the first decision only, "double" (take exactly
one more card, then stand, at twice the stake). Going over 21 is a bust: the hand is lost at once.
The dealer draws to 17 or more. Reward: +stake for a win, 0 for a push, -stake for a loss.
An illegal decision counts as invalid and becomes "stand".
"""

from __future__ import annotations

import random
from typing import Any

from configs.task_schema import TwentyOneConfig
from generation.ld.envs.base import DecisionEnv, Instruction, StepResult
from generation.ld.envs.twentyone import instructions as ins
from generation.ld.envs.twentyone.cards import Shoe, dealer_plays, hand_total
from generation.ld.envs.twentyone.text import parse_state_text, render_state

DECISIONS = ("hit", "stand", "double")
PLAN_KEYS = {"stand_at": int, "min_cards": int, "double": bool}


class TwentyOneEnv(DecisionEnv):
    name = "twentyone"
    stages = ["goal", "action"]

    def __init__(self, config: TwentyOneConfig | None = None):
        self.config = config or TwentyOneConfig()
        self._player: list[str] | None = None

    # ---- episode setup -------------------------------------------------------------------------
    def sample_instruction(self, seed: int) -> Instruction:
        return ins.sample_instruction(random.Random(f"twentyone:{seed}:instruction"), self.config)

    def parse_instruction(self, text: str) -> Instruction:
        return ins.parse_instruction(text)

    def reset(self, seed: int, instruction: Instruction) -> None:
        ins.check_instruction(instruction)
        self.seed, self.instruction = seed, instruction
        self._shoe = Shoe(seed)
        first, up, second, hole = (self._shoe.draw() for _ in range(4))
        self._player, self._dealer = [first, second], [up, hole]
        self._decisions = self._invalid = 0
        self._stake = 1
        self._done = self._success = False
        self._outcome, self._reward = "", 0

    def _require_episode(self) -> list[str]:
        if self._player is None:
            raise RuntimeError("call reset(seed, instruction) before using the 21 Points env")
        return self._player

    # ---- views ---------------------------------------------------------------------------------
    def rules_text(self) -> str:
        soft17 = "hits a soft 17 and stands on a hard 17" if self.config.dealer_hits_soft_17 else "stands on every 17"
        double = (' As the first decision only, "double": take exactly one more card and stand, at twice the '
                  "stake.") if self.config.allow_double else ""
        return (
            "21 Points, a blackjack-like card game against a dealer. Cards 2-10 count their number, J, Q and K "
            "count 10, an ace counts 11 unless that takes the hand over 21, then 1 (a hand counting an ace as "
            "11 is 'soft'). Cards come from an endless shoe (every rank equally likely). You get two cards, the "
            "dealer one open card and one hidden card. Each decision is \"hit\" (take a card) or \"stand\" "
            f"(stop).{double} Going over 21 is a bust: you lose at once. When you stand, the dealer shows the "
            f"hidden card and draws until the dealer's total is 17 or more (the dealer {soft17}); a dealer "
            "over 21 busts and you win. Otherwise the higher total wins and equal totals push. Reward: +1 for "
            "a win, 0 for a push, -1 for a loss (twice that after a double). Anything but a legal decision is "
            "invalid and counts as \"stand\". Instructions: 'Win the hand against the dealer.' (success: "
            "you win); 'Finish with a total of at least T without going over 21.' (success: your final total "
            "is T..21, whatever the dealer does); 'Finish holding at least N cards without going over 21.' "
            "(success: N or more cards and no bust). State lines: 'hand A 6 (soft 17)' your cards and total; "
            "'dealer 9' the dealer's open card; 'decision 1, double allowed' which decision this is."
        )

    def state(self) -> dict[str, Any]:
        player = self._require_episode()
        total, soft = hand_total(player)
        return {"player": list(player), "total": total, "soft": soft, "dealer_up": self._dealer[0],
                "decisions": self._decisions, "can_double": self._can_double()}

    def _can_double(self) -> bool:
        return self.config.allow_double and self._decisions == 0 and not self._done

    def render(self) -> str:
        return render_state(self.state())

    def parse_state_text(self, text: str) -> dict[str, Any]:
        return parse_state_text(text)

    # ---- decisions -----------------------------------------------------------------------------
    def legal_decisions(self) -> list[str]:
        return ["hit", "stand", "double"] if self._can_double() else ["hit", "stand"]

    def is_legal(self, decision: Any) -> bool:
        return isinstance(decision, str) and decision in self.legal_decisions()

    def default_decision(self) -> str:
        return "stand"

    def random_legal_decision(self, rng: random.Random) -> str:
        return rng.choice(self.legal_decisions())

    def check_stage_output(self, stage: str, state: dict[str, Any], output: Any) -> str | None:
        if stage == "action":  # legality read from the given state, not from the env's own episode
            legal = ["hit", "stand"] + (["double"] if state.get("can_double") else [])
            return None if isinstance(output, str) and output in legal else \
                f"action result must be one of {legal} in this state, got {output!r}"
        if stage != "goal":
            return super().check_stage_output(stage, state, output)
        if not isinstance(output, dict) or set(output) != set(PLAN_KEYS):
            return f"goal result must be a plan with exactly the keys {sorted(PLAN_KEYS)}, got {output!r}"
        for key, kind in PLAN_KEYS.items():
            if type(output[key]) is not kind:
                return f"plan[{key!r}] must be {kind.__name__}, got {output[key]!r}"
        return None

    def step(self, decision: Any) -> StepResult:
        player = self._require_episode()
        if self._done:
            raise RuntimeError("the episode is over; call reset before stepping again")
        decision, invalid = self._admit(decision)
        if decision in ("hit", "double"):
            player.append(self._shoe.draw())
            self._stake = 2 if decision == "double" else self._stake
        total, _ = hand_total(player)
        if total > 21:
            self._settle("bust", -self._stake)
        elif decision in ("stand", "double"):
            self._dealer = dealer_plays(self._dealer, self._shoe, self.config.dealer_hits_soft_17)
            dealer, _ = hand_total(self._dealer)
            if dealer > 21 or total > dealer:
                self._settle("win", self._stake)
            else:
                self._settle("push" if total == dealer else "loss", 0 if total == dealer else -self._stake)
        return StepResult(self._done, self._success, invalid, {"outcome": self._outcome})

    def _settle(self, outcome: str, reward: int) -> None:
        self._done, self._outcome, self._reward = True, outcome, reward
        total, _ = hand_total(self._player)
        p = self.instruction.params
        if self.instruction.kind == "win":
            self._success = reward > 0
        elif self.instruction.kind == "reach":
            self._success = p["total"] <= total <= 21
        else:
            self._success = len(self._player) >= p["cards"] and total <= 21

    # ---- metrics -------------------------------------------------------------------------------
    def episode_metrics(self) -> dict[str, Any]:
        player = self._require_episode()
        done = self._done
        return {"env": self.name, "seed": self.seed, "kind": self.instruction.kind, "success": self._success,
                "done": done, "steps": self._decisions, "decisions": self._decisions, "invalid": self._invalid,
                "reason": self._outcome, "player_total": hand_total(player)[0], "cards": len(player),
                "dealer_total": hand_total(self._dealer)[0] if done else None,
                "scores": {"win_rate": float(self._outcome == "win"), "bust_rate": float(self._outcome == "bust"),
                           "mean_reward": float(self._reward)}}
