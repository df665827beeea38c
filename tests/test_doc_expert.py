"""The offline Divide-or-Conquer expert: domains read back, simulated mistakes, SD-R rejection sampling."""

import asyncio

import pytest

from configs.teacher_schema import ModelPrice, TeacherConfig
from generation.doc.domains import get_domain
from generation.doc.expert import DocExpertTeacher
from generation.doc.pipelines import run_pipeline, summarise
from generation.doc.samples import (collect_samples, decomposer_rows, rejection_sample, solver_rows,
                                    substitute_final_answer)
from generation.doc.simulate import ExpertErrorModel, seeded_rng, simulate_solve
from generation.doc import prompts as doc
from generation.datasets import kbqa
from generation.teachers.base import TeacherError, TeacherRequest
from generation.teachers.service import TeacherService

ARITH = {"min_steps": 1, "max_steps": 5, "distractors": 1}
CFG = TeacherConfig(prices={"expert-v1": ModelPrice(input_per_1k=0.0015, output_per_1k=0.002)})


def _teacher(**errors):
    """The offline expert behind the one teacher service (no limiter, no cache), as DoC's workers use it."""
    return TeacherService(CFG, expert_class=DocExpertTeacher, errors=ExpertErrorModel(**errors))


def test_domains_read_their_own_questions_back():
    for name, options in (("arithmetic", ARITH), ("kbqa", {"max_hops": 4})):
        domain = get_domain(name)
        for item in domain.make_items(60, 5, options):
            read = domain.read(item.question)
            assert read.answer == item.answer and len(read.steps) == item.steps
            gold_keys = [s.key for s in read.steps[:-1]]
            assert domain.render_sub_questions(gold_keys, read) == list(item.sub_questions)


def test_kbqa_text_round_trip():
    question = kbqa.make_kb_question(3, kbqa.KBDifficulty(min_hops=3, max_hops=3))
    facts, anchor, chain = kbqa.parse_kb_question(question.question)
    assert chain == [h.relation for h in question.hops] and anchor == question.hops[0].subject
    assert kbqa.parse_sub_question("Who is the mentor of #2?") == ("mentor", "#2")
    assert kbqa.parse_sub_question("What is love?") is None
    with pytest.raises(ValueError, match="cannot read the fact"):
        kbqa.parse_passage("Ava Park likes tea.")


def test_a_perfect_expert_solves_with_gold_decomposition_and_a_wrong_order_always_fails():
    domain = get_domain("arithmetic")
    errors = ExpertErrorModel(decomposition_error_rate=0, step_error=0, error_growth_per_step=0)
    swapped_failures = 0
    chains = [i for i in domain.make_items(200, 11, ARITH) if len(i.sub_questions) >= 2][:30]
    for i, item in enumerate(chains):
        read = domain.read(item.question)
        good = simulate_solve(domain, read, list(item.sub_questions), seeded_rng(i), errors, doc.FINAL_MARKER)
        assert good.correct and good.final_answer == item.answer
        dependent = [k for k in range(len(read.steps) - 2) if read.steps[k].key in read.steps[k + 1].depends_on]
        if dependent:
            k = dependent[0]
            subs = list(item.sub_questions)
            subs[k], subs[k + 1] = subs[k + 1], subs[k]
            bad = simulate_solve(domain, read, subs, seeded_rng(i), errors, doc.FINAL_MARKER)
            assert bad.misled and not bad.correct and bad.final_answer != item.answer
            swapped_failures += 1
    assert swapped_failures >= 5


def test_unguided_solving_degrades_with_steps_and_decomposition_helps():
    teacher = _teacher()
    items = get_domain("arithmetic").make_items(300, 21, ARITH)
    single = summarise(run_pipeline({"decomposer": "none"}, items, teacher, None, 4), "exact_match")
    two_stage = run_pipeline({"decomposer": "teacher", "solver": "teacher"}, items, teacher, None, 4)
    by_steps = {}
    for r in run_pipeline({"decomposer": "none"}, items, teacher, None, 4):
        by_steps.setdefault(r["steps"], []).append(r["score"])
    accuracy = {k: sum(v) / len(v) for k, v in by_steps.items()}
    assert accuracy[1] > accuracy[3] > accuracy[5]
    summary = summarise(two_stage, "exact_match")
    assert summary["accuracy"] > single["accuracy"] + 0.1
    # cost: the decomposition is billed, and priced by the table
    assert summary["decomposition_teacher_cost_usd_per_q"] > 0
    assert summary["teacher_cost_usd_per_q"] > single["teacher_cost_usd_per_q"]
    assert single["student_input_tokens_per_q"] == 0


def test_samples_differ_and_replies_are_reproducible():
    teacher = _teacher(decomposition_error_rate=0.5)
    item = [i for i in get_domain("arithmetic").make_items(50, 2, ARITH) if len(i.sub_questions) >= 3][0]
    requests = [TeacherRequest(doc.decomposition_messages(item.question, 4), metadata={"sample": j}) for j in range(12)]
    first = [r.text for r in teacher.complete(requests)]
    assert first == [r.text for r in teacher.complete(requests)]
    assert len(set(first)) > 1 and doc.render_decomposition(list(item.sub_questions)) in first


def test_sd_r_keeps_exactly_the_decompositions_whose_solve_succeeded():
    items = get_domain("arithmetic").make_items(40, 33, ARITH) + get_domain("kbqa").make_items(20, 33, {})
    records = collect_samples(items, 3, 0.7, 4, _teacher(decomposition_error_rate=0.4))
    assert len(records) == 3 * len(items)
    kept = rejection_sample(records)
    assert 0 < len(kept) < len(records)
    assert {(r.uid, r.sample) for r in kept} == {(r.uid, r.sample) for r in records if r.parsed and r.solved}
    for r in records:  # `solved` is the gold check of the solver's own final answer
        gold = next(i for i in items if i.uid == r.uid)
        assert r.solved == (get_domain(r.domain).score(r.predicted, gold) == 1.0)
    assert len(decomposer_rows(kept, 4)) == len(kept) < len(decomposer_rows(records, 4))
    se_t, se_a = solver_rows(records, gold_answer=False), solver_rows(records, gold_answer=True)
    assert len(se_t) == len(items) == len(se_a)
    assert all(row.completion.endswith(f"{doc.FINAL_MARKER} {next(i for i in items if i.uid == row.uid).answer}")
               for row in se_a)
    assert any(a.completion != t.completion for a, t in zip(se_a, se_t))  # some teacher solutions were wrong


def test_substitute_final_answer_and_unreadable_prompt():
    assert substitute_final_answer("x\nFinal answer: 3", "4") == "x\nFinal answer: 4"
    with pytest.raises(ValueError, match="no 'Final answer:'"):
        substitute_final_answer("no marker", "4")
    teacher = DocExpertTeacher(CFG)
    bad = TeacherRequest([{"role": "user", "content": doc.SOLVE_TASK + "\n## Question\nWhat?\n## Sub-questions\nnone"}])
    with pytest.raises(TeacherError, match="cannot read the prompt"):
        asyncio.run(teacher.complete(bad))
