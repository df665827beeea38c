"""The two built-in Divide-or-Conquer domains as the expert and the pipelines see them.

A domain makes `DocItem`s (question text, gold answer, gold sub-questions), scores a solver's final
answer, and - for the offline expert - reads a question's text back into `GoldStep`s and matches a
sub-question's text to the step it asks for. Arithmetic is scored by numeric exact match, kbqa by
DROP-style token F1 (the metric of multi-hop QA sets such as Bamboogle).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Protocol

from generation.datasets import arithmetic, kbqa
from generation.datasets.answers import extract_numeric_answer, numbers_match
from generation.datasets.metrics import exact_match, token_f1


@dataclass(frozen=True)
class DocItem:
    uid: str
    domain: str
    question: str
    answer: str
    sub_questions: tuple[str, ...]  # the gold decomposition (empty for dataset files: none is known)
    steps: int  # reasoning steps the question needs (0: unknown)
    alternatives: tuple[str, ...] = ()  # further accepted answers (DROP's validated answers)


@dataclass(frozen=True)
class GoldStep:
    key: str
    depends_on: tuple[str, ...]  # keys of the steps whose answers it needs
    answer: str
    sentence: str  # how a solver states this step's answer in its reply


@dataclass(frozen=True)
class ReadQuestion:
    """A question read back from its text: the steps in dependency order, the last one answers it."""

    steps: tuple[GoldStep, ...]
    context: dict[str, Any] = field(default_factory=dict)

    @property
    def answer(self) -> str:
        return self.steps[-1].answer


class Domain(Protocol):
    name: str
    metric: str

    def make_items(self, n: int, seed: int, options: dict[str, Any]) -> list[DocItem]: ...

    def read(self, question: str) -> ReadQuestion: ...

    def render_sub_questions(self, keys: list[str], read: ReadQuestion) -> list[str]:
        """The sub-question text of each step key, in the given order."""

    def match(self, sub_question: str, read: ReadQuestion, matched: list[str | None]) -> tuple[str | None, bool]:
        """(key of the step the sub-question asks for or None, whether it misleads the solver)."""

    def wrong_answer(self, step: GoldStep, read: ReadQuestion, rng: random.Random) -> str: ...

    def score(self, predicted: str | None, item: DocItem) -> float: ...


class ArithmeticDomain:
    name, metric = "arithmetic", "exact_match"

    def make_items(self, n: int, seed: int, options: dict[str, Any]) -> list[DocItem]:
        difficulty = arithmetic.ArithmeticDifficulty(**options)
        return [DocItem(p.uid, self.name, p.question, str(p.answer), tuple(p.sub_questions()[:-1]), len(p.steps))
                for p in arithmetic.make_problems(n, seed, difficulty)]

    def read(self, question: str) -> ReadQuestion:
        facts, target, item = arithmetic.parse_facts(question)
        by_person = {f.person: f for f in facts}
        order: list[str] = []

        def visit(person: str) -> None:  # derived people the target needs, inputs first
            fact = by_person.get(person)
            if fact is None:
                raise ValueError(f"the question never says how many {item} {person} has")
            if fact.kind != "base" and person not in order:
                for ref in fact.refs:
                    visit(ref)
                order.append(person)

        visit(target)
        if not order:  # the answer is stated outright: a single look-up step
            order = [target]
        steps = []
        for person in order:
            value = arithmetic.solve_facts(facts, person)
            if value is None:
                raise ValueError(f"cannot determine {person}'s {item}")
            deps = tuple(r for r in by_person[person].refs if by_person[r].kind != "base")
            steps.append(GoldStep(person, deps, str(value), f"{person} has {value} {item}."))
        return ReadQuestion(tuple(steps), {"item": item})

    def render_sub_questions(self, keys: list[str], read: ReadQuestion) -> list[str]:
        return [arithmetic.question_sentence(key, read.context["item"]) for key in keys]

    def match(self, sub_question: str, read: ReadQuestion, matched: list[str | None]) -> tuple[str | None, bool]:
        words = sub_question.replace("?", " ").split()
        person = words[words.index("does") + 1] if "does" in words[:-1] else None
        keys = {s.key for s in read.steps}
        return (person if person in keys else None), False

    def wrong_answer(self, step: GoldStep, read: ReadQuestion, rng: random.Random) -> str:
        value = int(step.answer)
        return str(max(1, value + rng.choice([-1, 1]) * rng.randint(1, max(2, value // 3))) if value > 1 else value + 1)

    def score(self, predicted: str | None, item: DocItem) -> float:
        return float(numbers_match(extract_numeric_answer(predicted or ""), float(item.answer)))


class KBQADomain:
    name, metric = "kbqa", "f1"

    def make_items(self, n: int, seed: int, options: dict[str, Any]) -> list[DocItem]:
        difficulty = kbqa.KBDifficulty(**options)
        return [DocItem(q.uid, self.name, q.question, q.answer, tuple(q.sub_questions()), len(q.hops))
                for q in kbqa.make_kb_questions(n, seed, difficulty)]

    def read(self, question: str) -> ReadQuestion:
        facts, entity, chain = kbqa.parse_kb_question(question)
        steps, subjects = [], []
        for i, relation in enumerate(chain):
            answer = facts.get((entity, relation))
            phrase = kbqa.chain_phrase([relation], entity)
            if answer is None:
                raise ValueError(f"the passage does not say {phrase}")
            steps.append(GoldStep(f"hop{i + 1}", (f"hop{i}",) if i else (), answer,
                                  f"{phrase[0].upper()}{phrase[1:]} is {answer}."))
            subjects.append(entity)
            entity = answer
        return ReadQuestion(tuple(steps), {"chain": chain, "subjects": subjects,
                                           "entities": sorted(set(facts.values()))})

    def render_sub_questions(self, keys: list[str], read: ReadQuestion) -> list[str]:
        """A hop whose input is not asked for points at the sub-question before it (as a hasty decomposer would)."""
        texts = []
        for i, key in enumerate(keys):
            position = int(key[3:]) - 1
            relation = kbqa.RELATIONS[read.context["chain"][position]]
            if position == 0:
                subject = read.context["subjects"][0]
            else:
                dep = f"hop{position}"
                subject = f"#{keys.index(dep) + 1}" if dep in keys else (f"#{i}" if i else read.context["subjects"][0])
            texts.append(relation.sub_question.format(x=subject))
        return texts

    def match(self, sub_question: str, read: ReadQuestion, matched: list[str | None]) -> tuple[str | None, bool]:
        parsed = kbqa.parse_sub_question(sub_question)
        if parsed is None:
            return None, False
        relation, subject = parsed
        if subject.startswith("#"):  # "#k": the step sub-question k asked for, if it asked for one
            k = int(subject[1:])
            if not 1 <= k <= len(matched) or matched[k - 1] is None:
                return None, False
            position = int(matched[k - 1][3:])  # the answer of hop<k> is the subject of hop<k+1>
        elif subject in read.context["subjects"]:
            position = read.context["subjects"].index(subject)
        else:
            return None, False
        if position >= len(read.steps):
            return None, False
        # right subject, wrong relation: the solver takes this answer for the hop and is led astray
        return f"hop{position + 1}", relation != read.context["chain"][position]

    def wrong_answer(self, step: GoldStep, read: ReadQuestion, rng: random.Random) -> str:
        others = [e for e in read.context["entities"] if e != step.answer]
        return rng.choice(others) if others else "unknown"

    def score(self, predicted: str | None, item: DocItem) -> float:
        return token_f1(predicted, item.answer)


class DatasetDomain:
    """Questions from a dataset file (generation/datasets/loaders.py): scored by the dataset's metric.

    Only an LLM teacher can decompose or solve them; the offline expert reads built-in domains only."""

    def __init__(self, name: str, metric: str) -> None:
        self.name, self.metric = name, metric

    def items_from(self, qa_items: list) -> list[DocItem]:
        return [DocItem(q.uid, self.name, q.question, q.answer, (), 0, tuple(q.answers[1:])) for q in qa_items]

    def read(self, question: str) -> ReadQuestion:
        raise ValueError(f"{self.name} questions are not a built-in domain the offline expert can read")

    def score(self, predicted: str | None, item: DocItem) -> float:
        if self.metric == "numeric_em":
            return float(numbers_match(extract_numeric_answer(predicted or ""), float(item.answer)))
        golds = [item.answer, *item.alternatives]
        return token_f1(predicted, golds) if self.metric == "f1" else exact_match(predicted, golds)


DOMAINS: dict[str, Domain] = {"arithmetic": ArithmeticDomain(), "kbqa": KBQADomain(),
                              "gsm8k": DatasetDomain("gsm8k", "numeric_em"),
                              "svamp": DatasetDomain("svamp", "numeric_em"),
                              "drop": DatasetDomain("drop", "f1"), "bamboogle": DatasetDomain("bamboogle", "f1")}


def get_domain(name: str) -> Domain:
    if name not in DOMAINS:
        raise ValueError(f"unknown Divide-or-Conquer domain {name!r}; expected one of {', '.join(DOMAINS)}")
    return DOMAINS[name]


def domain_of_question(question: str) -> Domain:
    """The domain whose parser reads this question (the expert sees only text)."""
    for domain in DOMAINS.values():
        try:
            domain.read(question)
            return domain
        except ValueError:
            continue
    raise ValueError(f"no built-in domain can read the question {question[:80]!r}")


def exact(predicted: str | None, item: DocItem) -> float:
    """Exact match whatever the domain's main metric (reported beside it)."""
    if get_domain(item.domain).metric in ("exact_match", "numeric_em"):
        return get_domain(item.domain).score(predicted, item)
    return exact_match(predicted, [item.answer, *item.alternatives])

