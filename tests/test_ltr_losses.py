"""Learn-to-Reason losses on hand-computed cases: prompt weighting, masking, the triplet loss, the batch
layout that feeds them, and the objective inside the real training loop (one process, in this interpreter)."""

import math

import pytest
import torch

from training.ltr_data import LtrCollator, LtrExample, encode_ltr_rows, prompt_weighted
from training.ltr_losses import (last_token_states, ltr_loss, prompt_weighted_mle, self_reflection_loss,
                                 triplet_loss_sum, triplet_losses)
from training.sft_data import IGNORE_INDEX, SFTExample

LN3, LN4 = math.log(3.0), math.log(4.0)


def two_token_logits():
    """Vocabulary of 2; every position gives p(token 1) = 3/4: CE(target 1) = ln 4/3, CE(target 0) = ln 4."""
    return torch.tensor([[[0.0, LN3]] * 4])


def test_mle_weights_prompt_tokens_and_divides_by_valid_tokens():
    logits = two_token_logits()  # [1, 4, 2]: positions 0..2 predict tokens 1..3
    labels = torch.tensor([[IGNORE_INDEX, 1, 0, 1]])  # token 1 = prompt, tokens 2-3 = rationale
    weights = torch.tensor([[0.1, 0.1, 1.0, 1.0]])
    ce_1, ce_0 = LN4 - LN3, LN4
    expected = (0.1 * ce_1 + 1.0 * ce_0 + 1.0 * ce_1) / 3  # 3 valid tokens, not the weight sum 2.1
    assert prompt_weighted_mle(logits, labels, weights).item() == pytest.approx(expected, rel=1e-6)


def test_mle_ignores_padding_in_sum_and_count():
    logits = torch.cat([two_token_logits(), torch.full((1, 4, 2), 7.0)])  # row 2 is garbage under padding
    labels = torch.tensor([[IGNORE_INDEX, 1, 0, 1], [IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX, 0]])
    weights = torch.tensor([[0.1, 0.1, 1.0, 1.0], [0.0, 0.0, 0.1, 1.0]])
    ce_1, ce_0 = LN4 - LN3, LN4
    row2 = math.log(2.0)  # equal logits: CE = ln 2, one valid token of weight 1
    expected = (0.1 * ce_1 + ce_0 + ce_1 + row2) / 4
    assert prompt_weighted_mle(logits, labels, weights).item() == pytest.approx(expected, rel=1e-6)


def test_prompt_weighting_of_an_encoded_example():
    example = SFTExample(input_ids=[5, 6, 7, 8, 9], labels=[IGNORE_INDEX] * 3 + [8, 9], weight=2.0)
    labels, weights = prompt_weighted(example, 0.1)
    assert labels == [5, 6, 7, 8, 9]  # prompt tokens are targets too
    assert weights == pytest.approx([0.2, 0.2, 0.2, 2.0, 2.0])


def test_last_token_states_left_and_right_padding():
    hidden = torch.arange(2 * 4 * 1, dtype=torch.float32).view(2, 4, 1)
    left = torch.tensor([[0, 1, 1, 1], [0, 0, 1, 1]])
    right = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])
    assert last_token_states(hidden, left).flatten().tolist() == [3.0, 7.0]
    assert last_token_states(hidden, right).flatten().tolist() == [2.0, 5.0]


def test_triplet_loss_by_hand():
    a = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    p = torch.tensor([[0.0, 1.0], [2.0, 0.0], [1.0, 1.0]])  # cos 0, 1, 1/sqrt2
    n = torch.tensor([[3.0, 0.0], [-1.0, 0.0], [0.0, -1.0]])  # cos 1, -1, 0
    per = triplet_losses(a, p, n, margin=1.0)
    assert per.tolist() == pytest.approx([2.0, 0.0, 1.0 - 1.0 / math.sqrt(2)], abs=1e-6)  # 1-0+1; max(0,-1); 1-.707+0
    total, count = triplet_loss_sum(a, p, n, margin=1.0)
    assert count == 3 and total.item() == pytest.approx(3.0 - 1.0 / math.sqrt(2), abs=1e-6)
    # margin 0.5: 1.5, max(0, -1.5), max(0, 0.5 - 0.707) -> mean over all three examples = 0.5
    assert self_reflection_loss(a, p, n, margin=0.5).item() == pytest.approx(0.5, abs=1e-6)
    assert self_reflection_loss(a[:0], p[:0], n[:0]).item() == 0.0


def _example(prompt_len, completion, positive=None, negative=None, pw=0.1):
    ids = list(range(1, prompt_len + 1)) + completion
    return LtrExample(input_ids=ids, labels=list(ids), weight=1.0,
                      token_weights=[pw] * prompt_len + [1.0] * len(completion),
                      positive_ids=positive, negative_ids=negative)


def test_collator_puts_anchors_then_positives_then_negatives():
    with_triplet = _example(2, [7, 8], positive=[1, 2, 9], negative=[1, 2, 3, 4])
    plain = _example(3, [7])
    batch = LtrCollator(pad_token_id=0)([plain, with_triplet])
    assert batch["input_ids"].shape == (4, 4)
    assert batch["triplet_anchor_rows"].tolist() == [1]
    assert batch["triplet_positive_rows"].tolist() == [2] and batch["triplet_negative_rows"].tolist() == [3]
    assert batch["input_ids"][2].tolist() == [0, 1, 2, 9] and batch["input_ids"][3].tolist() == [1, 2, 3, 4]
    assert (batch["labels"][2:] == IGNORE_INDEX).all() and (batch["weights"][2:] == 0).all()  # no MLE on them
    assert batch["weights"][1].tolist() == pytest.approx([0.1, 0.1, 1.0, 1.0])
    assert batch["weights"][0].tolist() == pytest.approx([0.1, 0.1, 0.1, 1.0])
    assert batch["attention_mask"][2].tolist() == [0, 1, 1, 1]


def test_ltr_loss_is_mle_plus_lambda_times_mean_triplet_over_examples_with_both():
    torch.manual_seed(0)
    batch = LtrCollator(pad_token_id=0)([_example(2, [7, 8], [1, 9], [1, 3]), _example(2, [5]),
                                         _example(1, [4, 4], [2, 2], [3, 3])])
    rows, width = batch["input_ids"].shape
    logits, hidden = torch.randn(rows, width, 10), torch.randn(rows, width, 6)
    loss = ltr_loss(logits, batch["labels"], batch["weights"], hidden, batch["attention_mask"],
                    batch["triplet_anchor_rows"], batch["triplet_positive_rows"], batch["triplet_negative_rows"],
                    reflection_weight=0.5, margin=1.0)
    last = hidden[:, -1]  # left padding: every row's last real token is the last column
    by_hand = [max(0.0, 1.0 - torch.cosine_similarity(last[a], last[p], 0).item()
                   + torch.cosine_similarity(last[a], last[n], 0).item()) for a, p, n in ((0, 3, 5), (2, 4, 6))]
    mle = prompt_weighted_mle(logits, batch["labels"], batch["weights"])
    assert loss.item() == pytest.approx(mle.item() + 0.5 * sum(by_hand) / 2, rel=1e-5)
    no_reflection = ltr_loss(logits, batch["labels"], batch["weights"], hidden, batch["attention_mask"],
                             batch["triplet_anchor_rows"], batch["triplet_positive_rows"],
                             batch["triplet_negative_rows"], reflection_weight=0.0)
    assert no_reflection.item() == pytest.approx(mle.item())


def test_encoding_weights_prompt_tokens_and_keeps_triplets(tmp_path):
    from training.student_builder import build_student
    from configs.training_schema import StudentConfig
    from transformers import AutoTokenizer

    rows = [{"prompt": "Question: Ava has 3 apples. How many?", "completion": "The answer is 3.", "weight": 1.0,
             "positive": "Ava has 3. The answer is 3.", "negative": "The answer is 4."},
            {"prompt": "Question: Ben has 2 apples.", "completion": "The answer is 2.", "weight": 1.0,
             "positive": None, "negative": None}]
    student = build_student(StudentConfig(preset="tiny", vocab_size=300, max_seq_len=64),
                            [r["prompt"] + r["completion"] for r in rows] * 4, tmp_path / "s")
    tokenizer = AutoTokenizer.from_pretrained(str(student))
    first, second = encode_ltr_rows(tokenizer, rows, 64, prompt_weight=0.1)
    n_completion = len(tokenizer(tokenizer.apply_chat_template(
        [{"role": "user", "content": rows[0]["prompt"]}, {"role": "assistant", "content": rows[0]["completion"]}],
        tokenize=False)[len(tokenizer.apply_chat_template([{"role": "user", "content": rows[0]["prompt"]}],
                                                          tokenize=False, add_generation_prompt=True)):],
        add_special_tokens=False)["input_ids"])
    assert first.labels == first.input_ids
    assert first.token_weights == pytest.approx([0.1] * (len(first.input_ids) - n_completion) + [1.0] * n_completion)
    assert first.has_triplet and not second.has_triplet
    assert tokenizer.decode(first.negative_ids).endswith("The answer is 4.<|eos|>")
    n_prompt = len(first.input_ids) - n_completion
    assert first.negative_ids[:n_prompt] == first.input_ids[:n_prompt]  # the same prompt, then the wrong rationale
