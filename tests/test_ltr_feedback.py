"""Learn-to-Reason feedback: the expert teacher's tailored rationales, the prompt parser, and the lineage
of a training record from the exam sample and the teacher request it came from."""

import pytest

from generation.ltr import tutor
from generation.ltr.exam import grade
from generation.ltr.feedback import (build_requests, collect, feedback_asks, ltr_teacher_service,
                                     warmup_requests)
from generation.ltr.records import ExamRecord, LtrTrainingRecord
from generation.prompts.calls import ParseError
from generation.storage.shards import plan_units
from generation.ltr.prompts import parse_rationales, read_feedback_prompt, student_prompt, tailored_messages
from generation.datasets.arithmetic import ArithmeticDifficulty, make_problem
from configs.teacher_schema import TeacherConfig

PROBLEM = make_problem(7, ArithmeticDifficulty(min_steps=3, max_steps=3, max_base=12, shapes=("chain",)))


def wrong_at(step_index: int) -> str:
    """The gold rationale with step `step_index`'s value off by one (later steps copied unchanged)."""
    sentences = [s.sentence for s in PROBLEM.steps]
    step = PROBLEM.steps[step_index]
    sentences[step_index] = step.sentence.replace(f"= {step.value} ", f"= {step.value + 1} ")
    return " ".join(sentences) + f" The answer is {PROBLEM.answer + 1}."


def test_expert_finds_the_first_wrong_step_and_spells_it_out():
    solution = tutor.solve_steps(PROBLEM.question)
    steps = solution.steps
    assert [s.sentence for s in steps] == [s.sentence for s in PROBLEM.steps]
    assert tutor.first_wrong_step(steps, wrong_at(1)) == 1
    assert tutor.first_wrong_step(steps, "I do not know.") == 0
    assert tutor.first_wrong_step(steps, PROBLEM.rationale().replace(f"is {PROBLEM.answer}", "is 1")) == len(steps) - 1
    rationales = tutor.tailored_rationales(solution, wrong_at(1), 3)
    assert len(set(rationales)) == 3 and rationales[2] == PROBLEM.rationale()  # the third: the gold one
    for rationale in rationales:
        assert grade(rationale, str(PROBLEM.answer)) == (PROBLEM.answer, True)
    for rationale in rationales[:2]:
        for later in steps[1:]:  # the mistaken step and every later one come with their fact restated
            assert f", so {later.sentence}" in rationale
        assert f", so {steps[0].sentence}" not in rationale  # the steps before it stay as they were
    used = solution.facts[1].refs[0]  # the second variant first recalls the count the mistaken step uses
    recall = f"{used} has {solution.values[used]} {solution.item}. "
    fact = tutor.arithmetic.fact_sentence(solution.facts[1], solution.item)[:-1]
    assert recall not in rationales[0] and f"{recall}{fact}, so {steps[1].sentence}" in rationales[1]
    # one step wrong in a one-step problem: still distinct rationales (anchor != positive)
    single = make_problem(3, ArithmeticDifficulty(min_steps=1, max_steps=1))
    assert len(set(tutor.tailored_rationales(tutor.solve_steps(single.question), "No idea.", 2))) == 2


def test_expert_steps_read_back_every_generated_problem():
    """All derived kinds and both shapes: the expert's steps, solved from the text, are the generator's."""
    difficulty = ArithmeticDifficulty(min_steps=1, max_steps=4, max_base=20, distractors=1)
    for seed in range(300):
        problem = make_problem(seed, difficulty)
        assert tutor.solve_steps(problem.question).steps == list(problem.steps), problem.question


def test_feedback_prompt_round_trip_and_parser_errors():
    messages = tailored_messages(PROBLEM.question, wrong_at(0), str(PROBLEM.answer), 3)
    request = read_feedback_prompt(messages[-1]["content"])
    assert (request.question, request.gold_answer, request.count) == (PROBLEM.question, str(PROBLEM.answer), 3)
    assert request.wrong_rationale == wrong_at(0)
    assert parse_rationales("Rationale 2: b. The answer is 2.\nRationale 1: a. The answer is 1.", 5) == \
        ["a. The answer is 1.", "b. The answer is 2."]
    with pytest.raises(ParseError, match="no 'Rationale"):
        parse_rationales("The answer is 4.", 2)
    with pytest.raises(ParseError, match="without 'The answer is"):
        parse_rationales("Rationale 1: it is four", 1)


def ask_expert(items, stage: str = "ltr_feedback"):
    """The offline expert teacher's answers, through the teacher service (no shared services: no Ray)."""
    with ltr_teacher_service(TeacherConfig()) as service:
        return service.ask(feedback_asks(items, stage))


def exam_records(exam: str = "r0") -> list[ExamRecord]:
    """Two samples of one question: the first wrong, the second right; a second question right throughout."""
    other = make_problem(8, ArithmeticDifficulty(max_steps=2, max_base=12))
    rows = []
    for qid, problem, rationales in (("q1", PROBLEM, [wrong_at(1), PROBLEM.rationale()]),
                                     ("q2", other, [other.rationale()])):
        for k, rationale in enumerate(rationales):
            predicted, correct = grade(rationale, str(problem.answer))
            rows.append(ExamRecord(exam=exam, round=0, question_id=qid, sample_id=f"{exam}/{qid}/s{k}",
                                   question=problem.question, gold_answer=str(problem.answer), rationale=rationale,
                                   predicted=predicted, correct=correct, temperature=0.7, checkpoint="students/x"))
    return rows


def test_training_record_lineage_through_parquet(tmp_path):
    from generation.storage.shards import read_records, write_shard
    from training.ltr_data import read_ltr_rows

    exam = exam_records()
    items = build_requests(exam, tailored=True, rationales=2, negatives_per_question=1, include_correct=True)
    assert [i.request.request_id for i in items] == ["r0/q1/tailored-0", "r0/q2/known"]
    rows, rejected, stats = collect(items, ask_expert(items), 1, "r0")
    assert not rejected and stats["train_rows"] == 3 and stats["triplets"] == 2
    path = write_shard(rows, tmp_path / "rows.parquet")
    stored = read_records([path], LtrTrainingRecord)
    tailored = [r for r in stored if r.question_id == "q1"]
    wrong_sample = exam[0]
    for row in tailored:
        assert (row.round, row.exam, row.tailored) == (1, "r0", True)
        assert row.exam_sample_id == wrong_sample.sample_id == "r0/q1/s0"
        assert row.teacher_request_id == "r0/q1/tailored-0"
        assert row.negative == wrong_sample.rationale  # verbatim: no gold answer appended
        assert not row.negative.endswith(f"The answer is {PROBLEM.answer}.")
        assert row.prompt == student_prompt(PROBLEM.question)
        assert grade(row.completion, str(PROBLEM.answer))[1] and grade(row.positive, str(PROBLEM.answer))[1]
    assert tailored[0].positive == tailored[1].completion  # the positive is the other teacher rationale
    [known] = [r for r in stored if r.question_id == "q2"]
    assert known.positive is None and known.negative is None and known.exam_sample_id == "r0/q2/s0"
    training_view = read_ltr_rows(path)  # what training.train reads from the same file
    assert [r["negative"] for r in training_view] == [r.negative for r in stored]


def test_plain_feedback_ignores_the_students_rationale():
    items = build_requests(exam_records(), tailored=False, rationales=2, negatives_per_question=1,
                           include_correct=False)
    [item] = items
    assert wrong_at(1) not in item.request.messages[-1]["content"]
    rows, _, _ = collect(items, ask_expert(items), 1, "r0")
    assert rows[0].completion == PROBLEM.rationale() and not rows[0].tailored
    assert rows[0].negative == wrong_at(1)  # the triplet still contrasts with the student's own mistake


def test_expert_refuses_questions_it_cannot_read():
    from generation.teachers.base import TeacherError

    prompt = tailored_messages("What is the capital of France?", "Paris.", "1", 2)[-1]["content"]
    with pytest.raises(TeacherError, match="arithmetic problems only"):
        tutor.task_reply(prompt)


def test_units_cut_a_batch_in_order_and_cover_it_once():
    items = build_requests(exam_records(), tailored=True, rationales=2, negatives_per_question=1,
                           include_correct=True) * 3  # 6 requests
    units = plan_units(items, 4)
    assert [(i, len(unit)) for i, unit in units] == [(0, 4), (1, 2)]
    assert [item for _, unit in units for item in unit] == items
    assert plan_units(items, 6) == [(0, items)] and plan_units([], 4) == []


class _Scripted:
    """A backend whose replies are scripted per call (a TeacherService test seam)."""

    def __init__(self, texts):
        self.texts = list(texts)
        self.asked = []

    async def complete(self, request):
        from generation.teachers.base import TeacherReply

        self.asked.append(request)
        return TeacherReply(request_id=request.request_id, text=self.texts.pop(0), finish_reason="stop",
                            input_tokens=10, output_tokens=5, model="m", latency_s=0.0, attempts=1, cost_usd=0.5)

    async def aclose(self):
        pass


def test_collect_over_answers_rows_from_values_rejections_from_the_service():
    """The service re-asks an unparseable reply (with the format reminder) and rejects one still unusable;
    collect keeps what parsed as rows and passes the rejection on, with its reason and number of asks."""
    from generation.teachers.service import TeacherService

    items = build_requests(exam_records(), tailored=True, rationales=2, negatives_per_question=1,
                           include_correct=True)
    good = "Rationale 1: A. The answer is 1.\nRationale 2: B. The answer is 1."
    # call 1 (q1, q2): garbage, good; call 2 (re-ask of q1): garbage again -> rejected after 2 asks
    backend = _Scripted(["no idea", good, "still no idea"])
    with TeacherService(TeacherConfig(), max_reasks=1, backend=backend) as service:
        answers = service.ask(feedback_asks(items, "ltr_feedback"))
    rows, rejected, stats = collect(items, answers, 2, "r0")
    [rejection] = rejected
    assert (rejection.request_id, rejection.reason_kind, rejection.asks, rejection.stage) == \
        ("r0/q1/tailored-0", "parse", 2, "ltr_feedback")
    assert rejection.last_reply == "still no idea"
    assert "`Rationale 1: ...`" in backend.asked[-1].messages[-1]["content"]  # LtR's own format reminder
    # the known question asked for one rationale: the first of the reply
    assert [(r.question_id, r.completion, r.positive, r.round) for r in rows] == \
        [("q2", "A. The answer is 1.", None, 2)]
    assert stats == {"teacher_requests": 2, "rejected": 1, "train_rows": 1, "triplets": 0, "teacher_cost_usd": 1.0,
                     "teacher_input_tokens": 20, "teacher_output_tokens": 10}


def test_warmup_answers_through_the_service_match_the_tutor():
    from generation.ltr.questions import load_splits
    from configs.ltr_schema import LtrTaskConfig

    questions = load_splits(LtrTaskConfig(warmup_questions=3, train_questions=1, heldout_questions=1))["warmup"]
    items = warmup_requests(questions, 3)
    answers = ask_expert(items, "ltr_warmup")
    assert all(a.ok and a.asks == 1 for a in answers)
    assert [a.value for a in answers] == [tutor.plain_rationales(tutor.solve_steps(q.question), 3) for q in questions]
