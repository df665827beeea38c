"""Constrained function choice: the LD student names one of the retrieved candidates, by its own likelihood."""

from __future__ import annotations

import pytest

from configs.training_schema import StudentConfig
from generation.ld.policies.base import SelectionRequest
from generation.ld.policies.candidate_scoring import best_continuation, continuation_logprobs
from generation.prompts.calls import parse_call
from generation.ld.prompts import Candidate

CORPUS = ["Stage: move\nCandidates: move_direct() | move_ambush() | move_fire()", "Call: move_direct()",
          "Call: target_evader(evader=\"E2\")", "emergency (fire) 3,4"] * 40


@pytest.fixture(scope="module")
def student(tmp_path_factory):
    from generation.ld.policies.hf_student import HFStudentPolicy
    from training.student_builder import build_student

    path = build_student(StudentConfig(preset="tiny", vocab_size=320, max_seq_len=256), CORPUS,
                         tmp_path_factory.mktemp("student"), seed=0)
    return path, HFStudentPolicy(path, kind="select", max_new_tokens=12, device="cpu")


def test_scores_equal_the_log_probabilities_of_one_full_forward_pass(student):
    import torch

    _, policy = student
    prefix = policy._render("Stage: move")
    options = ["Call: move_direct(", "Call: move_gas("]
    scores = continuation_logprobs(policy.model, policy.tokenizer, prefix, options, "cpu")
    for option, score in zip(options, scores):
        n_prefix = len(policy.tokenizer(prefix, add_special_tokens=False)["input_ids"])
        ids = policy.tokenizer(prefix + option, add_special_tokens=False)["input_ids"]
        with torch.inference_mode():
            logp = torch.log_softmax(policy.model(input_ids=torch.tensor([ids])).logits[0].float(), -1)
        expected = sum(float(logp[i - 1, ids[i]]) for i in range(n_prefix, len(ids)))
        assert score == pytest.approx(expected, abs=1e-4)
    assert best_continuation(policy.model, policy.tokenizer, prefix, options, "cpu") == \
        max(range(2), key=lambda i: scores[i])


def test_an_untrained_student_always_names_a_candidate_when_constrained(student):
    path, policy = student
    candidates = [Candidate("move_gas", [], "gas"), Candidate("target_evader", ["evader"], "one evader")]
    requests = [SelectionRequest("rules", "Capture all evaders.", f"step {i}/40", "move", "none", candidates)
                for i in range(6)]
    signatures = {c.name: c.params for c in candidates}
    for reply in policy.select(requests):
        name = reply.text.split("Call:", 1)[1].split("(", 1)[0].strip()
        assert name in signatures  # the arguments may still be wrong: those are decoded freely
    policy.constrain_to_candidates = False
    try:
        free = policy.select(requests)
    finally:
        policy.constrain_to_candidates = True
    names_free = []
    for reply in free:  # a random student decoding freely rarely produces a valid call at all
        try:
            names_free.append(parse_call(reply.text, signatures).name)
        except Exception:  # noqa: BLE001 - any parse failure counts as "no candidate named"
            pass
    assert len(names_free) < len(requests)


def test_no_continuations_is_an_error(student):
    _, policy = student
    with pytest.raises(ValueError, match="no continuations"):
        best_continuation(policy.model, policy.tokenizer, "x", [], "cpu")
