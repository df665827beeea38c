"""Multi-hop questions over a generated knowledge base: the second domain of Divide-or-Conquer.

Each question comes with a short passage of facts (the hops it needs, shuffled among distractor
facts) and asks for a chain of relations from one anchor entity:

    Orbit Labs was founded by Lena Park. The mentor of Lena Park is Omar Reyes. Omar Reyes was born
    in Port Elm. ... Question: In which city was the mentor of the founder of Orbit Labs born?

Gold decomposition, one sub-question per hop but the last, `#k` naming the answer of sub-question k:
"Who founded Orbit Labs?", "Who is the mentor of #1?". Like `arithmetic.py`, the text is built from
templates that `parse_kb_question` reads back, so the offline expert works from the text alone.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

FIRST = ("Ava", "Ben", "Cara", "Dan", "Eli", "Fay", "Gus", "Hana", "Ivan", "Jade", "Kai", "Lena", "Milo", "Nora",
         "Omar", "Pia", "Rosa", "Sam", "Tara", "Uma", "Wes", "Zoe")
LAST = ("Park", "Reyes", "Stone", "Hart", "Lund", "Moss", "Vale", "Quist", "Brook", "Fox", "Gray", "Nash")
ORG_WORDS = ("Orbit", "Cedar", "Nimbus", "Quartz", "Harbor", "Ember", "Atlas", "Juniper", "Falcon", "Summit")
ORG_KINDS = ("Labs", "Works", "Foods", "Motors", "Media", "Systems")
CITIES = ("Port Elm", "Ashford", "Brightwater", "Coldmere", "Dunmore", "Eastvale", "Fairhaven", "Glenrock")


@dataclass(frozen=True)
class Relation:
    name: str
    source: str  # entity kind it starts from: person | org
    target: str  # entity kind it leads to: person | org | city
    fact: str  # "{s} ... {o}." template of a passage sentence
    phrase: str  # "the founder of {x}" inside a question
    sub_question: str  # "Who founded {x}?"


RELATIONS = {r.name: r for r in (
    Relation("founder", "org", "person", "{s} was founded by {o}.", "the founder of {x}", "Who founded {x}?"),
    Relation("ceo", "org", "person", "The CEO of {s} is {o}.", "the CEO of {x}", "Who is the CEO of {x}?"),
    Relation("mentor", "person", "person", "The mentor of {s} is {o}.", "the mentor of {x}",
             "Who is the mentor of {x}?"),
    Relation("spouse", "person", "person", "{s} is married to {o}.", "the spouse of {x}", "Who is married to {x}?"),
    Relation("employer", "person", "org", "{s} works at {o}.", "the employer of {x}", "Where does {x} work?"),
    Relation("birthplace", "person", "city", "{s} was born in {o}.", "the birthplace of {x}",
             "Where was {x} born?"),
)}
QUESTION_PREFIX = "Question: "
FINAL_QUESTION = re.compile(r"^What is (.+)\?$")


@dataclass(frozen=True)
class KBDifficulty:
    min_hops: int = 1
    max_hops: int = 3
    distractors: int = 3  # extra facts about other entities

    def __post_init__(self) -> None:
        if not 1 <= self.min_hops <= self.max_hops <= 5:
            raise ValueError(f"need 1 <= min_hops <= max_hops <= 5, got {self.min_hops}, {self.max_hops}")
        if self.distractors < 0:
            raise ValueError(f"distractors must be >= 0, got {self.distractors}")


@dataclass(frozen=True)
class Hop:
    relation: str
    subject: str  # the entity this hop starts from (the previous hop's answer)
    answer: str
    sub_question: str  # with the subject written as `#k` after the first hop
    sentence: str  # the passage fact that answers it


@dataclass(frozen=True)
class KBQuestion:
    uid: str
    question: str  # passage + "Question: ..."
    answer: str
    hops: tuple[Hop, ...]

    def sub_questions(self) -> list[str]:
        """The gold decomposition: every hop but the last (the question itself asks that one)."""
        return [h.sub_question for h in self.hops[:-1]]


def chain_phrase(relations: list[str], anchor: str) -> str:
    """["founder", "mentor"] from "Orbit Labs" -> "the mentor of the founder of Orbit Labs"."""
    text = anchor
    for name in relations:
        text = RELATIONS[name].phrase.format(x=text)
    return text


def _entity(kind: str, rng: random.Random, used: set[str]) -> str:
    pools = {"person": lambda: f"{rng.choice(FIRST)} {rng.choice(LAST)}",
             "org": lambda: f"{rng.choice(ORG_WORDS)} {rng.choice(ORG_KINDS)}", "city": lambda: rng.choice(CITIES)}
    for _ in range(200):
        name = pools[kind]()
        if name not in used or kind == "city":
            used.add(name)
            return name
    raise RuntimeError(f"ran out of distinct {kind} names")


def _relation_chain(rng: random.Random, hops: int) -> list[str]:
    """Relations whose kinds line up; only the last hop may end in a city."""
    chain, kind = [], rng.choice(["org", "person"])
    for i in range(hops):
        options = [r for r in RELATIONS.values() if r.source == kind and (r.target != "city" or i == hops - 1)]
        relation = rng.choice(options)
        chain.append(relation.name)
        kind = relation.target
    return chain


def make_kb_question(seed: int, difficulty: KBDifficulty = KBDifficulty()) -> KBQuestion:
    rng = random.Random(seed)
    relations = _relation_chain(rng, rng.randint(difficulty.min_hops, difficulty.max_hops))
    used: set[str] = set()
    anchor = current = _entity(RELATIONS[relations[0]].source, rng, used)
    hops, facts = [], []
    for i, name in enumerate(relations):
        relation = RELATIONS[name]
        answer = _entity(relation.target, rng, used)
        subject_ref = current if i == 0 else f"#{i}"
        sentence = relation.fact.format(s=current, o=answer)
        hops.append(Hop(name, current, answer, relation.sub_question.format(x=subject_ref), sentence))
        facts.append(sentence)
        current = answer
    for _ in range(difficulty.distractors):
        relation = rng.choice([r for r in RELATIONS.values() if r.target != "city" or rng.random() < 0.5])
        facts.append(relation.fact.format(s=_entity(relation.source, rng, used), o=_entity(relation.target, rng, used)))
    rng.shuffle(facts)
    question = " ".join(facts) + f"\n{QUESTION_PREFIX}What is {chain_phrase(relations, anchor)}?"
    return KBQuestion(uid=f"kbqa-{seed}", question=question, answer=current, hops=tuple(hops))


def make_kb_questions(n: int, seed: int, difficulty: KBDifficulty = KBDifficulty()) -> list[KBQuestion]:
    return [make_kb_question(seed + i, difficulty) for i in range(n)]


# --- reading text back ------------------------------------------------------------------------------

def _template_regex(template: str, **names: str) -> re.Pattern:
    pattern = re.escape(template)
    for key, group in names.items():
        pattern = pattern.replace(re.escape("{" + key + "}"), group)
    return re.compile(f"^{pattern}$")


_ENTITY = r"([A-Z][A-Za-z]+(?: [A-Z][A-Za-z]+)?|#\d+)"
_FACTS = [(name, _template_regex(r.fact, s=_ENTITY, o=_ENTITY)) for name, r in RELATIONS.items()]
_SUB_QUESTIONS = [(name, _template_regex(r.sub_question, x=_ENTITY)) for name, r in RELATIONS.items()]


def parse_passage(passage: str) -> dict[tuple[str, str], str]:
    """{(subject, relation): object} of every fact sentence; ValueError on a sentence it cannot read."""
    facts = {}
    for sentence in re.split(r"(?<=\.)\s+", passage.strip()):
        for name, pattern in _FACTS:
            m = pattern.match(sentence.strip())
            if m:
                facts[(m.group(1), name)] = m.group(2)
                break
        else:
            raise ValueError(f"cannot read the fact {sentence!r}")
    return facts


def parse_chain(question_line: str) -> tuple[str, list[str]]:
    """"What is the mentor of the founder of Orbit Labs?" -> ("Orbit Labs", ["founder", "mentor"])."""
    m = FINAL_QUESTION.match(question_line.strip())
    if not m:
        raise ValueError(f"not a 'What is the ... of X?' question: {question_line!r}")
    text, relations = m.group(1), []
    by_phrase = {r.phrase.split("{x}")[0]: name for name, r in RELATIONS.items()}
    while True:
        prefix = next((p for p in by_phrase if text.startswith(p)), None)
        if prefix is None:
            break
        relations.append(by_phrase[prefix])
        text = text[len(prefix):]
    if not relations or not text:
        raise ValueError(f"no relation chain in {question_line!r}")
    return text, relations[::-1]


def parse_kb_question(text: str) -> tuple[dict[tuple[str, str], str], str, list[str]]:
    """(passage facts, anchor entity, relation chain) of a question's full text."""
    passage, sep, line = text.rpartition(QUESTION_PREFIX)
    if not sep:
        raise ValueError(f"no '{QUESTION_PREFIX.strip()}' line in {text[:80]!r}")
    anchor, chain = parse_chain(line)
    return parse_passage(passage), anchor, chain


def parse_sub_question(text: str) -> tuple[str, str] | None:
    """(relation, subject) of a sub-question in the hop templates ("#2" subjects kept), else None."""
    for name, pattern in _SUB_QUESTIONS:
        m = pattern.match(text.strip())
        if m:
            return name, m.group(1)
    return None
