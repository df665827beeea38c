"""The offline expert's simulated mistakes: how it decomposes and how it solves (documented as simulated).

The expert reads the question back into gold steps, so left alone it would never err. An LLM does,
and Divide-or-Conquer is about where: this module injects errors with a documented model, driven by
a random stream seeded from the prompt (and the sample index), so every run is reproducible.

Decomposer: with probability `decomposition_error_rate` one sample is wrong - a needed sub-question
dropped (incomplete) or two dependent ones swapped (wrong order). Solver, answering in order:
- a sub-question whose inputs are known is answered wrongly with probability `step_error`;
- a sub-question asked before its inputs are known, or one that asks the wrong thing about the
  right entity, misleads it: it answers wrongly and trusts that answer later;
- every step no sub-question guided is reasoned out alone; the j-th such step fails with
  probability step_error + (j - 1) * error_growth_per_step (long unguided chains break), so the
  single-stage solver gets worse with every step and a wrong or incomplete decomposition can fail.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

from generation.doc.domains import Domain, GoldStep, ReadQuestion


@dataclass(frozen=True)
class ExpertErrorModel:
    decomposition_error_rate: float = 0.25
    step_error: float = 0.03
    error_growth_per_step: float = 0.15
    max_step_error: float = 0.9

    def __post_init__(self) -> None:
        for name in ("decomposition_error_rate", "step_error", "error_growth_per_step", "max_step_error"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"expert error model: {name} must be in [0, 1], got {getattr(self, name)}")

    def unguided_error(self, j: int) -> float:
        """Failure probability of the j-th (1-based) step reasoned without a sub-question."""
        return min(self.max_step_error, self.step_error + (j - 1) * self.error_growth_per_step)


def seeded_rng(*parts: object) -> random.Random:
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode("utf-8")).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def expert_decomposition(read: ReadQuestion, max_sub_questions: int, rng: random.Random,
                         errors: ExpertErrorModel) -> tuple[list[str], str]:
    """(step keys to ask for, in order; what went wrong: "" | "drop" | "swap")."""
    keys = [s.key for s in read.steps[:-1]][:max_sub_questions]
    if not keys or rng.random() >= errors.decomposition_error_rate:
        return keys, ""
    depends = {s.key: s.depends_on for s in read.steps}
    swappable = [i for i in range(len(keys) - 1) if keys[i] in depends[keys[i + 1]]]
    if swappable and rng.random() < 0.5:
        i = rng.choice(swappable)
        keys[i], keys[i + 1] = keys[i + 1], keys[i]
        return keys, "swap"
    del keys[rng.randrange(len(keys))]
    return keys, "drop"


@dataclass(frozen=True)
class SolveOutcome:
    text: str  # the solver's reply, ending with the final-answer line
    final_answer: str
    correct: bool
    misled: bool  # a sub-question led it astray


def _stated(step: GoldStep, value: str) -> str:
    cut = step.sentence.rfind(step.answer)
    if value == step.answer:
        return step.sentence
    return step.sentence[:cut] + value + step.sentence[cut + len(step.answer):]


def simulate_solve(domain: Domain, read: ReadQuestion, sub_questions: list[str], rng: random.Random,
                   errors: ExpertErrorModel, final_marker: str) -> SolveOutcome:
    """Answer the sub-questions in order, then the question, under the error model above."""
    by_key = {s.key: s for s in read.steps}
    correct: dict[str, bool] = {}
    values: dict[str, str] = {}
    matched: list[str | None] = []
    lines, misled = [], False

    def settle(step: GoldStep, ok: bool) -> str:
        correct[step.key] = ok
        values[step.key] = step.answer if ok else domain.wrong_answer(step, read, rng)
        return _stated(step, values[step.key])

    for i, question in enumerate(sub_questions, 1):
        key, misleading = domain.match(question, read, matched)
        matched.append(key)
        if key is None:
            lines.append(f"Answer {i}: the question does not say.")
            continue
        step = by_key[key]
        if key in correct:
            lines.append(f"Answer {i}: {_stated(step, values[key])}")
            continue
        early = not all(d in correct for d in step.depends_on)
        misled |= misleading or early
        ok = not (misleading or early) and all(correct[d] for d in step.depends_on) \
            and rng.random() >= errors.step_error
        lines.append(f"Answer {i}: {settle(step, ok)}")
    unguided = 0
    for step in read.steps:
        if step.key not in correct:
            unguided += 1
            ok = all(correct.get(d) for d in step.depends_on) and rng.random() >= errors.unguided_error(unguided)
            lines.append(settle(step, ok))
    last = read.steps[-1].key
    lines.append(f"{final_marker} {values[last]}")
    return SolveOutcome("\n".join(lines), values[last], correct[last], misled)
