"""Learn-to-Reason prompts and parsers: the student's exam prompt, and the teacher's feedback requests.

Tailored feedback shows the teacher the question, the student's own wrong rationale and the gold
answer, and asks for several correct rationales that fix the mistake; the plain request (the
"without tailoring" ablation) shows only the question and the gold answer. Both replies have the
same format, read by `parse_rationales`; the expert teacher reads the prompts back with
`read_feedback_prompt`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from generation.prompts.calls import ParseError

TAILOR_TASK = "# Task: write rationales that correct a student's mistake"
PLAIN_TASK = "# Task: write rationales for a question"
ANSWER_PHRASE = "The answer is"
SYSTEM = "You are a patient maths teacher. You write short, correct step-by-step rationales."
RATIONALE_LINE = re.compile(r"^\s*\**\s*Rationale\s+(\d+)\s*\**\s*[:.)]\s*(.+?)\s*$", re.MULTILINE | re.IGNORECASE)


def student_prompt(question: str) -> str:
    """What the student sees, in the exam, in training and at evaluation."""
    return f"Question: {question}\nSolve it step by step."


def tailored_messages(question: str, wrong_rationale: str, gold_answer: str, n: int) -> list[dict[str, str]]:
    user = f"""{TAILOR_TASK}

## Question
{question}

## Student's rationale
{wrong_rationale}

## Gold answer
{gold_answer}

## What to write
The student's rationale above reaches a wrong answer. Find the first step where it goes wrong and
write {n} different correct rationales for the question, each one making that step explicit so the
student does not repeat the mistake. Every rationale is a few short sentences that end with
"{ANSWER_PHRASE} <number>." and reaches the gold answer. Do not mention the student.

## Reply format
One line per rationale: `Rationale 1: ...`, `Rationale 2: ...`, up to `Rationale {n}: ...`."""
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


def plain_messages(question: str, gold_answer: str, n: int) -> list[dict[str, str]]:
    user = f"""{PLAIN_TASK}

## Question
{question}

## Gold answer
{gold_answer}

## What to write
Write {n} different correct rationales for the question. Every rationale is a few short sentences
that end with "{ANSWER_PHRASE} <number>." and reaches the gold answer.

## Reply format
One line per rationale: `Rationale 1: ...`, `Rationale 2: ...`, up to `Rationale {n}: ...`."""
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


def render_rationales(rationales: list[str]) -> str:
    return "\n".join(f"Rationale {i}: {r}" for i, r in enumerate(rationales, 1))


def parse_rationales(text: str, n: int) -> list[str]:
    """The first `n` numbered rationales of a reply, in order, each ending with its answer sentence.

    ParseError when the reply has none; fewer than `n` is accepted (the teacher may run short).
    """
    found: dict[int, str] = {}
    for m in RATIONALE_LINE.finditer(text):
        found.setdefault(int(m.group(1)), m.group(2).strip())
    rationales = [found[k] for k in sorted(found)][:n]
    if not rationales:
        raise ParseError(f"no 'Rationale <i>: ...' line in {text[:120]!r}")
    missing = [r for r in rationales if ANSWER_PHRASE.lower() not in r.lower()]
    if missing:
        raise ParseError(f"rationale without '{ANSWER_PHRASE} <number>.': {missing[0][:120]!r}")
    return rationales


def rationales_followup(reason_kind: str, reason: str, max_tokens: int) -> str:
    """The re-ask turn after an unusable reply: what was wrong, and the reply format again."""
    if reason_kind == "truncated":
        return (f"Your reply was cut off at {max_tokens} tokens. Write the rationales again, shorter, "
                f"one line each: `Rationale 1: ...`, each ending with \"{ANSWER_PHRASE} <number>.\"")
    return (f"Your reply could not be used ({reason}). Reply again with one line per rationale, "
            f"`Rationale 1: ...`, `Rationale 2: ...`, each ending with \"{ANSWER_PHRASE} <number>.\"")


@dataclass(frozen=True)
class FeedbackPrompt:
    question: str
    gold_answer: str
    count: int
    wrong_rationale: str | None  # None: a plain (untailored) request


def _section(prompt: str, name: str) -> str:
    m = re.search(rf"^## {re.escape(name)}\n(.*?)(?=^## |\Z)", prompt, re.MULTILINE | re.DOTALL)
    if not m:
        raise ParseError(f"feedback prompt has no '## {name}' section")
    return m.group(1).strip()


def read_feedback_prompt(prompt: str) -> FeedbackPrompt:
    """The request back from a feedback prompt's text (what a scripted teacher reads)."""
    if not prompt.startswith((TAILOR_TASK, PLAIN_TASK)):
        raise ParseError("not a Learn-to-Reason feedback prompt")
    m = re.search(r"write (\d+) different correct rationales", _section(prompt, "What to write"), re.IGNORECASE)
    if not m:
        raise ParseError("feedback prompt states no number of rationales")
    wrong = _section(prompt, "Student's rationale") if prompt.startswith(TAILOR_TASK) else None
    return FeedbackPrompt(_section(prompt, "Question"), _section(prompt, "Gold answer"), int(m.group(1)), wrong)
