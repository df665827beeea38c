"""The shared word-problem generator: text reads back to the same facts, answers are exact."""

import pytest
from hypothesis import given, settings, strategies as st

from generation.datasets.arithmetic import (ArithmeticDifficulty, Fact, make_problem, make_problems, parse_facts,
                                         solve_facts)


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 10**9), steps=st.integers(1, 5), distractors=st.integers(0, 2))
def test_question_text_solves_back_to_gold(seed, steps, distractors):
    problem = make_problem(seed, ArithmeticDifficulty(min_steps=steps, max_steps=steps, distractors=distractors))
    facts, target, item = parse_facts(problem.question)
    assert (target, item) == (problem.target, problem.item)
    assert solve_facts(facts, target) == problem.answer
    assert len(problem.steps) == steps and problem.steps[-1].person == target
    # every step's value follows from its sentence, and every value stays a positive integer
    for step in problem.steps:
        assert eval(step.expression.replace("/", "//")) == step.value > 0  # noqa: S307 (our own digits)
        assert f"= {step.value} {item}." in step.sentence


def test_rationale_and_sub_questions_follow_the_steps():
    problem = make_problem(3, ArithmeticDifficulty(min_steps=3, max_steps=3))
    assert problem.rationale().endswith(f"The answer is {problem.answer}.")
    assert problem.sub_questions()[-1] == f"How many {problem.item} does {problem.target} have?"


def test_generation_is_deterministic_and_splits_are_disjoint():
    assert make_problems(5, 0) == make_problems(5, 0)
    assert {p.uid for p in make_problems(50, 0)}.isdisjoint({p.uid for p in make_problems(50, 50)})


def test_missing_or_cyclic_facts_are_unknown():
    facts = [Fact("Ava", "more", 2, ("Ben",)), Fact("Ben", "more", 1, ("Ava",))]
    assert solve_facts(facts, "Ava") is None
    assert solve_facts([Fact("Ava", "base", 3, ())], "Ben") is None


@pytest.mark.parametrize("text", ["Ava has many marbles. How many marbles does Ava have?",
                                  "Ava has 3 marbles.", "Ava has 3 apples. How many marbles does Ava have?"])
def test_unreadable_text_is_refused_with_the_sentence(text):
    with pytest.raises(ValueError):
        parse_facts(text)


def test_bad_difficulty_is_refused():
    with pytest.raises(ValueError, match="min_steps"):
        ArithmeticDifficulty(min_steps=3, max_steps=2)


def test_kinds_limit_the_derived_facts():
    problems = make_problems(300, 0, ArithmeticDifficulty(min_steps=1, max_steps=4, kinds=("more", "fewer")))
    kinds = {f.kind for p in problems for f in parse_facts(p.question)[0]}
    assert kinds == {"base", "more", "fewer"}
    for p in problems:
        facts, target, _ = parse_facts(p.question)
        assert solve_facts(facts, target) == p.answer
    with pytest.raises(ValueError, match="kinds"):
        ArithmeticDifficulty(kinds=("divide",))
