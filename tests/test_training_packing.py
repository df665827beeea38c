"""Sequence packing: bins respect the capacity, and a packed row computes exactly what its examples
compute alone (no attention or loss across example boundaries)."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from training.losses import completion_loss_sum
from training.packing import PackedCollator, pack_rows
from training.sft_data import IGNORE_INDEX, LeftPadCollator, encode_rows
from training.student_builder import train_tokenizer
from training_helpers import synthetic_rows


@given(st.lists(st.integers(min_value=1, max_value=64), min_size=1, max_size=200), st.integers(64, 200))
@settings(max_examples=60, deadline=None)
def test_pack_rows_is_a_partition_within_capacity(lengths, capacity):
    rows = pack_rows(lengths, capacity)
    assert sorted(i for row in rows for i in row) == list(range(len(lengths)))
    assert all(sum(lengths[i] for i in row) <= capacity for row in rows)
    # Best fit decreasing never leaves two rows that could have been one: a row was only opened for
    # an item that fitted in no earlier row.
    loads = sorted(sum(lengths[i] for i in row) for row in rows)
    assert len(loads) < 2 or loads[0] + loads[1] > capacity
    assert pack_rows(lengths, capacity) == rows  # deterministic


def test_pack_rows_rejects_an_example_longer_than_a_row():
    with pytest.raises(ValueError, match="longer than the packing capacity"):
        pack_rows([10, 300, 20], capacity=256)


@pytest.fixture(scope="module")
def tokenizer_and_examples():
    rows = synthetic_rows(40)
    tokenizer = train_tokenizer([r["prompt"] + r["completion"] for r in rows], vocab_size=400)
    examples = encode_rows(tokenizer, rows[:5], max_seq_len=128)
    for weight, example in zip([1.0, 0.5, 2.0, 1.0, 0.25], examples):
        example.weight = weight
    return tokenizer, examples


def tiny_llama(vocab: int, attn: str):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, max_position_embeddings=1024,
                         initializer_range=0.3)  # peaky attention: leakage, if any, moves the loss visibly
    config._attn_implementation = attn
    return LlamaForCausalLM(config).eval()


def per_example_losses(logits, batch, spans):
    """Summed weighted completion loss of each (row, start, end) span of a batch."""
    import torch.nn.functional as F

    out = []
    for row, start, end in spans:
        logit = logits[row:row + 1, start:end]
        labels = batch["labels"][row:row + 1, start:end]
        weights = batch["weights"][row:row + 1, start:end] if batch["weights"].dim() == 2 else \
            batch["weights"][row:row + 1]
        out.append(float(completion_loss_sum(logit, labels, weights)[0]))
        # Sanity: the segment's own masked loss, computed plainly.
        assert F.cross_entropy(logit[0, :-1], labels[0, 1:], ignore_index=IGNORE_INDEX, reduction="sum") >= 0
    return out


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_packed_row_computes_each_example_as_if_alone(tokenizer_and_examples, attn):
    import torch

    tokenizer, examples = tokenizer_and_examples
    model = tiny_llama(len(tokenizer), attn)
    packed = PackedCollator(tokenizer.pad_token_id)([examples[:3], examples[3:]])
    assert packed["attention_mask"] is None and packed["labels"].shape[0] == 2
    spans, ends = [], {0: 0, 1: 0}
    for row, group in ((0, examples[:3]), (1, examples[3:])):
        for example in group:
            spans.append((row, ends[row], ends[row] + len(example.input_ids)))
            ends[row] += len(example.input_ids)
    # The first token of each example has label -100: no loss term predicts across a boundary.
    assert all(packed["labels"][row, start] == IGNORE_INDEX for row, start, _ in spans)
    with torch.no_grad():
        packed_logits = model(input_ids=packed["input_ids"], position_ids=packed["position_ids"],
                              use_cache=False).logits
        alone = []
        for example in examples:
            single = LeftPadCollator(tokenizer.pad_token_id)([example])
            logits = model(input_ids=single["input_ids"], use_cache=False).logits
            alone.append(float(completion_loss_sum(logits, single["labels"], single["weights"])[0]))
    got = per_example_losses(packed_logits, packed, spans)
    assert got == pytest.approx(alone, rel=1e-5, abs=1e-5)
    # The whole packed batch's loss is the sum of the examples' losses (weights per token).
    total, n_tokens = completion_loss_sum(packed_logits, packed["labels"], packed["weights"])
    assert float(total) == pytest.approx(sum(alone), rel=1e-5)
    assert int(n_tokens) == sum(e.num_completion_tokens for e in examples)

    # Control: the same row with positions that do NOT restart lets later examples see earlier
    # ones, and their losses change. Without this the comparison above could pass vacuously.
    leaky_positions = torch.arange(packed["input_ids"].shape[1]).expand_as(packed["input_ids"])
    with torch.no_grad():
        leaky = model(input_ids=packed["input_ids"], position_ids=leaky_positions, use_cache=False).logits
    leaky_losses = per_example_losses(leaky, packed, spans)
    assert leaky_losses[0] == pytest.approx(alone[0], rel=1e-5)  # the first example has nothing to see
    assert all(leaky != pytest.approx(ok, rel=1e-3) for leaky, ok in zip(leaky_losses[1:3], alone[1:3]))


def test_packed_collator_counts_tokens_and_attention_pairs(tokenizer_and_examples):
    tokenizer, examples = tokenizer_and_examples
    batch = PackedCollator(tokenizer.pad_token_id)([examples[:2], examples[2:3]])
    lengths = [len(e.input_ids) for e in examples[:3]]
    assert batch["num_tokens"] == sum(lengths)
    assert batch["attention_pairs"] == sum(n * n for n in lengths)
    width = batch["input_ids"].shape[1]
    assert width == lengths[0] + lengths[1]
    row1 = batch["position_ids"][1].tolist()
    assert row1[:lengths[2]] == list(range(lengths[2])) and row1[lengths[2]:] == list(range(width - lengths[2]))
    assert (batch["labels"][1, lengths[2]:] == IGNORE_INDEX).all()
    assert float(batch["weights"][0, 0]) == examples[0].weight and float(batch["weights"][0, -1]) == examples[1].weight
