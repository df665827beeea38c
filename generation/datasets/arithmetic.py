"""Compositional arithmetic word problems: named quantities in chains and trees, with gold answers.

Shared by Divide-or-Conquer (gold sub-questions) and Learn-to-Reason (gold rationales). Every
problem is generated from a seed, so a split is just a range of seeds. The text is built from a
small set of sentence templates that `parse_facts` reads back, which lets the offline expert
teacher solve a question from its text alone, exactly as an LLM would have to.

    Ava has 12 marbles. Ben has 5 more marbles than Ava. Cara has 2 times as many marbles as Ben.
    How many marbles does Cara have?

Each derived quantity is one step (one sub-question, one rationale sentence); base facts need none.
All values are positive integers up to `MAX_VALUE`, so answers are exact.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

MAX_VALUE = 999
NAMES = ("Ava", "Ben", "Cara", "Dan", "Eli", "Fay", "Gus", "Hana", "Ivan", "Jade", "Kai", "Lena", "Milo",
         "Nora", "Omar", "Pia", "Quinn", "Rosa", "Sam", "Tara", "Uma", "Vic", "Wes", "Xena", "Yuri", "Zoe")
ITEMS = ("marbles", "apples", "stickers", "books", "coins", "shells", "pencils", "cards", "stamps", "beads",
         "cookies", "toys")
DERIVED_KINDS = ("more", "fewer", "times", "half", "sum")


@dataclass(frozen=True)
class ArithmeticDifficulty:
    min_steps: int = 1
    max_steps: int = 3
    max_base: int = 20  # base counts are drawn from 2..max_base
    shapes: tuple[str, ...] = ("chain", "tree")  # a tree joins two chains with a final sum (needs >= 3 steps)
    distractors: int = 0  # facts about people the question does not need
    kinds: tuple[str, ...] = DERIVED_KINDS  # which derived facts may appear (e.g. ("more", "fewer", "sum"))

    def __post_init__(self) -> None:
        if not self.kinds or set(self.kinds) - set(DERIVED_KINDS):
            raise ValueError(f"kinds must be a non-empty subset of {DERIVED_KINDS}, got {self.kinds}")
        if not 1 <= self.min_steps <= self.max_steps:
            raise ValueError(f"need 1 <= min_steps <= max_steps, got {self.min_steps}, {self.max_steps}")
        if self.max_base < 2:
            raise ValueError(f"max_base must be >= 2, got {self.max_base}")
        unknown = set(self.shapes) - {"chain", "tree"}
        if not self.shapes or unknown:
            raise ValueError(f"shapes must be a non-empty subset of ('chain', 'tree'), got {self.shapes}")
        if self.distractors < 0:
            raise ValueError(f"distractors must be >= 0, got {self.distractors}")


@dataclass(frozen=True)
class Fact:
    person: str
    kind: str  # "base" | "more" | "fewer" | "times" | "half" | "sum"
    number: int | None  # the literal in the sentence (None for half and sum)
    refs: tuple[str, ...]  # the people whose counts this one is defined by


@dataclass(frozen=True)
class Step:
    person: str
    question: str
    expression: str
    value: int
    sentence: str
    depends_on: tuple[str, ...]


@dataclass(frozen=True)
class WordProblem:
    uid: str
    question: str
    answer: int
    steps: tuple[Step, ...]
    item: str
    target: str

    def rationale(self) -> str:
        return " ".join(s.sentence for s in self.steps) + f" The answer is {self.answer}."

    def sub_questions(self) -> list[str]:
        return [s.question for s in self.steps]


# --- text <-> facts -----------------------------------------------------------------------------

def fact_sentence(fact: Fact, item: str) -> str:
    p, n, r = fact.person, fact.number, fact.refs
    return {
        "base": lambda: f"{p} has {n} {item}.",
        "more": lambda: f"{p} has {n} more {item} than {r[0]}.",
        "fewer": lambda: f"{p} has {n} fewer {item} than {r[0]}.",
        "times": lambda: f"{p} has {n} times as many {item} as {r[0]}.",
        "half": lambda: f"{p} has half as many {item} as {r[0]}.",
        "sum": lambda: f"{p} has as many {item} as {r[0]} and {r[1]} together.",
    }[fact.kind]()


def question_sentence(person: str, item: str) -> str:
    return f"How many {item} does {person} have?"


_W = r"([A-Z][a-z]+)"
_PATTERNS = (
    ("more", re.compile(rf"^{_W} has (\d+) more (\w+) than {_W}\.$")),
    ("fewer", re.compile(rf"^{_W} has (\d+) fewer (\w+) than {_W}\.$")),
    ("times", re.compile(rf"^{_W} has (\d+) times as many (\w+) as {_W}\.$")),
    ("half", re.compile(rf"^{_W} has half as many (\w+) as {_W}\.$")),
    ("sum", re.compile(rf"^{_W} has as many (\w+) as {_W} and {_W} together\.$")),
    ("base", re.compile(rf"^{_W} has (\d+) (\w+)\.$")),
)
_QUESTION = re.compile(rf"How many (\w+) does {_W} have\?\s*$")


def _parse_sentence(sentence: str) -> tuple[Fact, str]:
    for kind, pattern in _PATTERNS:
        m = pattern.match(sentence)
        if not m:
            continue
        g = m.groups()
        if kind == "base":
            return Fact(g[0], kind, int(g[1]), ()), g[2]
        if kind == "half":
            return Fact(g[0], kind, None, (g[2],)), g[1]
        if kind == "sum":
            return Fact(g[0], kind, None, (g[2], g[3])), g[1]
        return Fact(g[0], kind, int(g[1]), (g[3],)), g[2]
    raise ValueError(f"cannot read the sentence {sentence!r}")


def parse_facts(question: str) -> tuple[list[Fact], str, str]:
    """(facts, the person asked about, the item) from a question's text; ValueError on other text."""
    m = _QUESTION.search(question)
    if not m:
        raise ValueError(f"no final 'How many ... does X have?' in {question[:80]!r}")
    item, target = m.group(1), m.group(2)
    body = question[:m.start()].strip()
    sentences = [s.strip() + "." for s in body.split(".") if s.strip()]
    facts = []
    for sentence in sentences:
        fact, fact_item = _parse_sentence(sentence)
        if fact_item != item:
            raise ValueError(f"sentence {sentence!r} counts {fact_item}, the question asks about {item}")
        facts.append(fact)
    return facts, target, item


def apply_fact(fact: Fact, ref_values: list[int]) -> int:
    a = ref_values[0] if ref_values else 0
    return {"base": lambda: fact.number, "more": lambda: a + fact.number, "fewer": lambda: a - fact.number,
            "times": lambda: a * fact.number, "half": lambda: a // 2,
            "sum": lambda: a + ref_values[1]}[fact.kind]()


def solve_facts(facts: list[Fact], person: str) -> int | None:
    """The count `person` has under `facts`; None when it is not determined (missing or cyclic)."""
    by_person = {f.person: f for f in facts}
    memo: dict[str, int | None] = {}

    def value(name: str, visiting: frozenset) -> int | None:
        if name in memo:
            return memo[name]
        fact = by_person.get(name)
        if fact is None or name in visiting:
            return None
        refs = [value(r, visiting | {name}) for r in fact.refs]
        memo[name] = None if any(v is None for v in refs) else apply_fact(fact, refs)
        return memo[name]

    return value(person, frozenset())


# --- generation -----------------------------------------------------------------------------------

_OPERATOR = {"more": "+", "fewer": "-", "times": "*", "half": "/", "sum": "+"}


def _step(fact: Fact, values: dict[str, int], item: str) -> Step:
    refs = [values[r] for r in fact.refs]
    value = apply_fact(fact, refs)
    right = {"half": 2, "sum": refs[1] if len(refs) > 1 else None}.get(fact.kind, fact.number)
    expression = f"{refs[0]} {_OPERATOR[fact.kind]} {right}"
    return Step(person=fact.person, question=question_sentence(fact.person, item), expression=expression,
                value=value, sentence=f"{fact.person} has {expression} = {value} {item}.", depends_on=fact.refs)


def _derive(rng: random.Random, person: str, ref: str, values: dict[str, int], partner: str | None,
            kinds: tuple[str, ...]) -> Fact:
    """A valid derived fact for `person` from `ref` (and `partner` for a sum); values stay in range."""
    a = values[ref]
    options = []
    if a + 2 <= MAX_VALUE:
        options.append(Fact(person, "more", rng.randint(2, min(30, MAX_VALUE - a)), (ref,)))
    if a > 3:
        options.append(Fact(person, "fewer", rng.randint(1, min(30, a - 1)), (ref,)))
    if a * 2 <= MAX_VALUE:
        options.append(Fact(person, "times", rng.randint(2, max(2, min(4, MAX_VALUE // a))), (ref,)))
    if a % 2 == 0 and a >= 4:
        options.append(Fact(person, "half", None, (ref,)))
    if partner is not None and a + values[partner] <= MAX_VALUE:
        options.append(Fact(person, "sum", None, (ref, partner)))
    allowed = [f for f in options if f.kind in kinds]
    if allowed:
        return rng.choice(allowed)
    # only kinds that cannot apply here (e.g. "half" of an odd count): the smallest step that always can
    return Fact(person, "more", 1, (ref,)) if a < MAX_VALUE else Fact(person, "fewer", 1, (ref,))


def _chain(rng, names, values, facts, start: str, length: int, item: str, steps: list,
           kinds: tuple[str, ...]) -> str:
    current = start
    for _ in range(length):
        person = names.pop()
        partner = None
        if "sum" in kinds and rng.random() < 0.25:  # a sum with a fresh base quantity keeps chains varied
            partner = names.pop()
            values[partner] = rng.randint(2, 20)
            facts.append(Fact(partner, "base", values[partner], ()))
        fact = _derive(rng, person, current, values, partner, kinds)
        if fact.kind != "sum" and partner is not None:
            facts.remove(Fact(partner, "base", values.pop(partner), ()))
        steps.append(_step(fact, values, item))
        values[person] = steps[-1].value
        facts.append(fact)
        current = person
    return current


def make_problem(seed: int, difficulty: ArithmeticDifficulty = ArithmeticDifficulty()) -> WordProblem:
    rng = random.Random(seed)
    names = list(NAMES)
    rng.shuffle(names)
    item = rng.choice(ITEMS)
    num_steps = rng.randint(difficulty.min_steps, difficulty.max_steps)
    tree_ok = num_steps >= 3 and "sum" in difficulty.kinds  # a tree joins its two chains with a sum
    shape = rng.choice([s for s in difficulty.shapes if s == "chain" or tree_ok] or ["chain"])
    values: dict[str, int] = {}
    facts: list[Fact] = []
    steps: list[Step] = []

    def base() -> str:
        person = names.pop()
        values[person] = rng.randint(2, difficulty.max_base)
        facts.append(Fact(person, "base", values[person], ()))
        return person

    if shape == "chain":
        target = _chain(rng, names, values, facts, base(), num_steps, item, steps, difficulty.kinds)
    else:
        left_len = rng.randint(1, num_steps - 2)
        left = _chain(rng, names, values, facts, base(), left_len, item, steps, difficulty.kinds)
        right = _chain(rng, names, values, facts, base(), num_steps - 1 - left_len, item, steps,
                       difficulty.kinds)
        target = names.pop()
        fact = Fact(target, "sum", None, (left, right))
        steps.append(_step(fact, values, item))
        values[target] = steps[-1].value
        facts.append(fact)
    sentences = [fact_sentence(f, item) for f in facts]
    for _ in range(difficulty.distractors):
        person = names.pop()
        sentences.insert(rng.randint(0, len(sentences)), f"{person} has {rng.randint(2, difficulty.max_base)} {item}.")
    question = " ".join(sentences + [question_sentence(target, item)])
    return WordProblem(uid=f"arith-{seed}", question=question, answer=values[target], steps=tuple(steps),
                       item=item, target=target)


def make_problems(n: int, seed: int, difficulty: ArithmeticDifficulty = ArithmeticDifficulty()) -> list[WordProblem]:
    """Problems for seeds seed, seed+1, ...: disjoint seed ranges give disjoint splits."""
    return [make_problem(seed + i, difficulty) for i in range(n)]
