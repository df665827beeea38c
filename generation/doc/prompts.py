"""Divide-or-Conquer prompts: decompose a question, then solve it, and the parsers of both replies.

Two stages (Wu et al. 2024): the decomposer lists at most N sub-questions (or says "No
decomposition."), the solver answers them in order and then the question, ending with the fixed
marker `Final answer:`. The teacher gets instructions and worked examples; a student gets a short
prompt (it learned the format in training), which is where most of the teacher's cost goes away.

The same parsers read the expert teacher, a real LLM and a student, and the expert reads its own
prompts back with `read_decomposition_prompt` / `read_solving_prompt`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from generation.prompts.calls import MAX_REPLY_CHARS, ParseError
from generation.datasets.answers import after_marker

DECOMPOSE_TASK = "# Task: decompose the question"
SOLVE_TASK = "# Task: solve the question"
NO_DECOMPOSITION = "No decomposition."
FINAL_MARKER = "Final answer:"
SUB_PREFIX = "Sub-question"

DECOMPOSE_EXAMPLES = """Question: Ava has 12 marbles. Ben has 5 more marbles than Ava. Cara has 2 times as many marbles as Ben. How many marbles does Cara have?
Sub-question 1: How many marbles does Ben have?

Question: Orbit Labs was founded by Lena Park. The mentor of Lena Park is Omar Reyes. Omar Reyes was born in Ashford.
Question: What is the birthplace of the mentor of the founder of Orbit Labs?
Sub-question 1: Who founded Orbit Labs?
Sub-question 2: Who is the mentor of #1?

Question: Sam has 4 coins. Tara has 3 more coins than Sam. How many coins does Tara have?
No decomposition."""

SUB_LINE = re.compile(r"^\s*(?:[-*]\s*)?(?:\**\s*)?(?:sub-?\s*question\s*|q\s*)?(\d+)\s*[.:)\-]\**\s*(.+?)\s*$",
                      re.IGNORECASE)


def decomposition_messages(question: str, max_sub_questions: int) -> list[dict[str, str]]:
    """The teacher's decomposition prompt (instructions + worked examples)."""
    prompt = (f"{DECOMPOSE_TASK}\n"
              f"Break the question into at most {max_sub_questions} simpler sub-questions. Answered in order, "
              "they must lead to the answer of the question; leave out the question itself. Write the answer of "
              "sub-question k as #k when a later one needs it. If the question needs no decomposition, reply "
              f"exactly \"{NO_DECOMPOSITION}\"\nReply with one line per sub-question: "
              f"\"{SUB_PREFIX} 1: ...\", and nothing else.\n\n## Examples\n{DECOMPOSE_EXAMPLES}\n\n"
              f"## Question\n{question.strip()}")
    return [{"role": "user", "content": prompt}]


def student_decomposition_prompt(question: str, max_sub_questions: int) -> str:
    return f"Decompose into at most {max_sub_questions} sub-questions:\n{question.strip()}"


def render_decomposition(sub_questions: list[str]) -> str:
    if not sub_questions:
        return NO_DECOMPOSITION
    return "\n".join(f"{SUB_PREFIX} {i}: {q}" for i, q in enumerate(sub_questions, 1))


def parse_decomposition(text: str, max_sub_questions: int) -> list[str]:
    """The sub-questions of a decomposer's reply, in order ([] for "No decomposition.").

    Tolerates numbering styles ("Sub-question 2:", "2.", "Q2)"), bullets, bold and surrounding prose;
    rejects an empty reply, one without any numbered line, numbering out of order, or more than
    `max_sub_questions`.
    """
    if not isinstance(text, str) or not text.strip():
        raise ParseError("empty decomposition")
    if len(text) > MAX_REPLY_CHARS:
        raise ParseError(f"decomposition longer than {MAX_REPLY_CHARS} characters")
    found = [(int(m.group(1)), m.group(2).strip().strip("*").strip()) for m in map(SUB_LINE.match, text.splitlines())
             if m]
    if not found:
        if "no decomposition" in text.lower():
            return []
        raise ParseError(f"no numbered sub-question and no '{NO_DECOMPOSITION}' in {text[:80]!r}")
    numbers = [n for n, _ in found]
    if numbers != list(range(1, len(found) + 1)):
        raise ParseError(f"sub-questions numbered {numbers}, expected 1..{len(found)} in order")
    if len(found) > max_sub_questions:
        raise ParseError(f"{len(found)} sub-questions, at most {max_sub_questions} allowed")
    empty = [n for n, q in found if not q]
    if empty:
        raise ParseError(f"sub-question {empty[0]} is empty")
    return [q for _, q in found]


def _sub_question_block(sub_questions: list[str]) -> str:
    return render_decomposition(sub_questions) if sub_questions else "none"


def solving_messages(question: str, sub_questions: list[str]) -> list[dict[str, str]]:
    """The teacher's solving prompt; with no sub-questions it is the single-stage prompt."""
    how = ("Answer the sub-questions in order, one line each (\"Answer 1: ...\"), using earlier answers for #k, "
           "then answer the question." if sub_questions else "Reason step by step, then answer the question.")
    prompt = (f"{SOLVE_TASK}\n{how} End with one line \"{FINAL_MARKER} <answer>\" holding only the answer.\n\n"
              f"## Question\n{question.strip()}\n\n## Sub-questions\n{_sub_question_block(sub_questions)}")
    return [{"role": "user", "content": prompt}]


def student_solving_prompt(question: str, sub_questions: list[str]) -> str:
    return f"Solve:\n{question.strip()}\nSub-questions:\n{_sub_question_block(sub_questions)}"


@dataclass(frozen=True)
class Solution:
    sub_answers: list[str]
    final_answer: str


def parse_solution(text: str) -> Solution:
    """The "Answer k:" lines and the final answer of a solver's reply (the last `Final answer:` line)."""
    if not isinstance(text, str) or not text.strip():
        raise ParseError("empty solution")
    final = after_marker(text, (FINAL_MARKER,))
    if final is None:
        raise ParseError(f"no '{FINAL_MARKER}' line in {text[-80:]!r}")
    if not final:
        raise ParseError(f"'{FINAL_MARKER}' is followed by nothing")
    answers = [m.group(1).strip() for m in re.finditer(r"^\s*Answer \d+:\s*(.*)$", text, re.MULTILINE)]
    return Solution(sub_answers=answers, final_answer=final)


def _section(prompt: str, name: str) -> str:
    m = re.search(rf"^## {re.escape(name)}\n(.*?)(?=^## |\Z)", prompt, re.MULTILINE | re.DOTALL)
    if not m:
        raise ParseError(f"prompt has no '## {name}' section")
    return m.group(1).strip()


def read_decomposition_prompt(prompt: str) -> tuple[str, int]:
    """(question, max sub-questions) of a decomposition prompt."""
    if not prompt.startswith(DECOMPOSE_TASK):
        raise ParseError("not a decomposition prompt")
    m = re.search(r"at most (\d+) simpler sub-questions", prompt)
    if not m:
        raise ParseError("decomposition prompt states no maximum number of sub-questions")
    return _section(prompt, "Question"), int(m.group(1))


def read_solving_prompt(prompt: str) -> tuple[str, list[str]]:
    """(question, sub-questions) of a solving prompt."""
    if not prompt.startswith(SOLVE_TASK):
        raise ParseError("not a solving prompt")
    block = _section(prompt, "Sub-questions")
    return _section(prompt, "Question"), [] if block == "none" else parse_decomposition(block, 99)
