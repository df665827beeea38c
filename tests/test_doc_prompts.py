"""Divide-or-Conquer prompts and parsers: round trips, tolerant reading, clear errors on malformed replies."""

import pytest

from generation.doc import prompts as doc
from generation.prompts.calls import ParseError


def test_decomposition_round_trip_and_no_decomposition():
    subs = ["How many marbles does Ben have?", "Who is the mentor of #1?"]
    assert doc.parse_decomposition(doc.render_decomposition(subs), 4) == subs
    assert doc.render_decomposition([]) == doc.NO_DECOMPOSITION
    assert doc.parse_decomposition("No decomposition.", 4) == []
    assert doc.parse_decomposition("This one needs no decomposition", 4) == []


@pytest.mark.parametrize("reply", [
    "Here you go:\n1. How many?\n2) Who is #1?\nHope it helps.",
    "**Sub-question 1:** How many?\n**Sub-question 2:** Who is #1?",
    "- Q1: How many?\n- Q2: Who is #1?",
])
def test_decomposition_parser_tolerates_llm_styles(reply):
    assert doc.parse_decomposition(reply, 4) == ["How many?", "Who is #1?"]


@pytest.mark.parametrize("reply, message", [
    ("", "empty decomposition"),
    ("   \n ", "empty decomposition"),
    ("I think we should first find Ben.", "no numbered sub-question"),
    ("Sub-question 2: a?\nSub-question 3: b?", r"numbered \[2, 3\], expected 1..2"),
    ("1. a?\n1. b?", r"numbered \[1, 1\]"),
    ("1. a?\n2. b?\n3. c?", "3 sub-questions, at most 2 allowed"),
    ("x" * 30_000, "longer than"),
])
def test_decomposition_parser_rejects_malformed_replies(reply, message):
    with pytest.raises(ParseError, match=message):
        doc.parse_decomposition(reply, 2)


def test_solution_parser():
    solution = doc.parse_solution("Answer 1: Ben has 17 marbles.\nCara has 34 marbles.\nFinal answer: 34")
    assert solution.sub_answers == ["Ben has 17 marbles."] and solution.final_answer == "34"
    assert doc.parse_solution("Final answer: 1\nwait\nFinal answer: 3.5.").final_answer == "3.5"
    for bad, message in (("", "empty solution"), ("The answer is 4", "no 'Final answer:'"),
                         ("Final answer:   ", "followed by nothing")):
        with pytest.raises(ParseError, match=message):
            doc.parse_solution(bad)


def test_prompts_read_back():
    question = "Ava has 3 coins. Ben has 2 more coins than Ava. How many coins does Ben have?"
    [message] = doc.decomposition_messages(question, 3)
    assert doc.read_decomposition_prompt(message["content"]) == (question, 3)
    [message] = doc.solving_messages(question, ["How many coins does Ava have?"])
    assert doc.read_solving_prompt(message["content"]) == (question, ["How many coins does Ava have?"])
    [single] = doc.solving_messages(question, [])
    assert doc.read_solving_prompt(single["content"]) == (question, [])
    assert doc.FINAL_MARKER in single["content"]
    with pytest.raises(ParseError, match="not a solving prompt"):
        doc.read_solving_prompt(message["content"].replace(doc.SOLVE_TASK, "# Task: other"))
    # the student sees no instructions or examples: most of the decomposition cost is in them
    assert len(doc.student_decomposition_prompt(question, 3)) < len(message["content"]) / 2
