"""Student construction: locally trained tokenizer, chat template, preset models, size arithmetic, config checks."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import pytest
from pydantic import ValidationError

from configs.training_schema import (StudentConfig, StudentPreset, TrainingConfig, available_presets,
                                     effective_learning_rate, load_preset, resolve_accelerate_config,
                                     resolve_deepspeed_config)
from training.model_size import count_parameters, training_flops_per_token
from training.student_builder import build_student, train_tokenizer

SAMPLE_TEXTS = [
    'Pursuer at (3,4), evader at (7,1). Walls: [(5,5), (5,6)].\n{"function": "step_towards", "args": {"dx": 1}}',
    "21 Points: your hand is [10, 7] = 17; dealer shows 9. Hit or stand?\nstand",
    "Q: Natalia sold clips to 48 of her friends in April, and then half as many in May?\nA: 48 / 2 = 24; 48 + 24 = 72",
    "def chase(state):\n    return min(state.moves, key=lambda m: m.distance)  # tabs\tand  double  spaces",
    "Ünïcödé — 漢字, emoji 🙂 and symbols ≤ ≥ ∑ survive a byte-level tokenizer.",
] * 20


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return train_tokenizer(SAMPLE_TEXTS, vocab_size=512, out_dir=tmp_path_factory.mktemp("tok"))


def test_tokenizer_round_trips_every_sample_text(tokenizer):
    for text in set(SAMPLE_TEXTS) | {"unseen: Ωmega ~~ 0x1F ;;", "  leading and trailing  "}:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        assert tokenizer.decode(ids) == text


def test_tokenizer_learned_merges_and_special_tokens(tokenizer):
    text = SAMPLE_TEXTS[0]
    assert len(tokenizer(text, add_special_tokens=False)["input_ids"]) < len(text.encode()) / 1.5
    for token in (tokenizer.pad_token, tokenizer.bos_token, tokenizer.eos_token, "<|user|>", "<|assistant|>"):
        assert len(tokenizer(token, add_special_tokens=False)["input_ids"]) == 1, token
    assert len({tokenizer.pad_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id}) == 3


def test_values_tokenize_alike_in_instruction_and_call(tokenizer):
    """Digits and call punctuation are their own tokens, so `[2, 0]` in a call copies `[2, 0]` in a prompt."""
    in_prompt = tokenizer.tokenize("guard cell [2, 0] now")
    in_call = tokenizer.tokenize('guard_cell(cell=[2, 0])')
    span = ["[", "2", ",", "Ġ", "0", "]"]
    for tokens in (in_prompt, in_call):
        assert any(tokens[i:i + len(span)] == span for i in range(len(tokens))), tokens


NAME_TEXTS = ["emergency (fire) 3,4\nCandidates: move_fire(state) | move_direct(state)\nCall: move_fire(pursuer=0)",
              "emergency (flood) 1,2\nCandidates: move_flood(state) | move_direct(state)\nCall: move_flood(pursuer=1)"] * 50


@pytest.mark.parametrize("spell", [True, False])
def test_a_name_never_seen_is_spelled_like_the_names_in_training(spell):
    """`move_gas` (run-time, never in the corpus) must be made of the tokens `move_fire` was trained on."""
    tok = train_tokenizer(NAME_TEXTS, vocab_size=300, spell_call_names=spell)
    in_state = tok.tokenize("emergency (gas) 5,5")
    in_call = tok.tokenize("Call: move_gas(pursuer=0)")
    trained = set(tok.tokenize(" ".join(set(NAME_TEXTS))))
    if spell:
        assert in_state[2:7] == ["(", "g", "a", "s", ")"], in_state
        assert in_call[3:7] == ["_", "g", "a", "s"], in_call
        assert tok.tokenize("move_fire(")[-6:] == ["_", "f", "i", "r", "e", "("]
        # a new name made of letters the training names used is made of tokens the student trained on
        assert set(tok.tokenize("Call: move_lid(pursuer=0)")) <= trained
        assert tok.tokenize("emergency") == ["emergency"]  # other words still merge
    else:  # without spelling, the training names are single tokens and the new one is not
        assert "fire" in tok.tokenize("move_fire(")
        assert not set(tok.tokenize("Call: move_lid(pursuer=0)")) <= trained

def test_chat_template_ends_every_assistant_turn_with_eos(tokenizer):
    messages = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
                {"role": "user", "content": "c"}, {"role": "assistant", "content": "d"}]
    ids = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=False)
    assistant_id = tokenizer.convert_tokens_to_ids("<|assistant|>")
    assert ids[0] == tokenizer.bos_token_id
    assert ids.count(tokenizer.eos_token_id) == 2 and ids[-1] == tokenizer.eos_token_id
    for start in [i for i, t in enumerate(ids) if t == assistant_id]:
        end = ids.index(tokenizer.eos_token_id, start)
        assert tokenizer.decode(ids[start + 1:end]) in {"b", "d"}
    prompt = tokenizer.apply_chat_template(messages[:1], tokenize=False, add_generation_prompt=True)
    assert prompt.endswith("<|assistant|>")
    assert tokenizer.apply_chat_template(messages[:2], tokenize=False).startswith(prompt)


def test_tokenizer_rejects_bad_input():
    with pytest.raises(ValueError, match="no texts"):
        train_tokenizer([], vocab_size=512)
    with pytest.raises(ValueError, match="too small"):
        train_tokenizer(["x"], vocab_size=100)


def test_built_student_loads_offline_and_matches_tokenizer(tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = build_student(StudentConfig(preset="tiny", vocab_size=512, max_seq_len=128), SAMPLE_TEXTS, tmp_path / "s")
    model = AutoModelForCausalLM.from_pretrained(out, local_files_only=True)
    tok = AutoTokenizer.from_pretrained(out, local_files_only=True)
    assert model.config.model_type == "llama"
    assert model.config.vocab_size == len(tok) == model.get_input_embeddings().weight.shape[0]
    assert model.config.eos_token_id == tok.eos_token_id and model.config.pad_token_id == tok.pad_token_id
    assert tok.chat_template and tok.padding_side == "left"
    preset = load_preset("tiny")
    assert sum(p.numel() for p in model.parameters()) == count_parameters(preset, len(tok)).total
    prompt = tok.apply_chat_template([{"role": "user", "content": "hi"}], add_generation_prompt=True,
                                     return_tensors="pt", return_dict=True)
    out_ids = model.generate(**prompt, max_new_tokens=5, do_sample=False)
    assert out_ids.shape[1] > prompt["input_ids"].shape[1]
    assert torch.equal(out_ids[0, :prompt["input_ids"].shape[1]], prompt["input_ids"][0])


def test_parameter_count_by_hand():
    preset = StudentPreset(hidden_size=8, intermediate_size=16, num_hidden_layers=2, num_attention_heads=2,
                           num_key_value_heads=1, tie_word_embeddings=False)
    # head_dim 4; q 8x8, k 8x4, v 8x4, o 8x8 = 192; mlp 3*8*16 = 384; two norms 16 -> 592 per layer
    size = count_parameters(preset, vocab_size=10)
    assert size.per_layer == 592
    assert size.total == 10 * 8 + 2 * 592 + 8 + 10 * 8 == 1352
    # 6 * (matmul weights 2*576 + head 80) + 12 * (layers 2 * heads 2 * head_dim 4 * T 32)
    assert training_flops_per_token(preset, 10, seq_len=32) == 6 * 1232 + 12 * 512


@pytest.mark.parametrize("name", available_presets())
def test_every_preset_count_matches_torch(name):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    preset, vocab = load_preset(name), 1000
    config = LlamaConfig(vocab_size=vocab, hidden_size=preset.hidden_size, intermediate_size=preset.intermediate_size,
                         num_hidden_layers=preset.num_hidden_layers, num_attention_heads=preset.num_attention_heads,
                         num_key_value_heads=preset.kv_heads, tie_word_embeddings=preset.tie_word_embeddings)
    with torch.device("meta"):  # sizes only; a 1B model on meta costs no memory
        model = LlamaForCausalLM(config)
    assert sum(p.numel() for p in model.parameters()) == count_parameters(preset, vocab).total


def test_presets_grow_up_to_about_a_billion():
    totals = {n: count_parameters(load_preset(n), 32000).total for n in ("tiny", "small", "base", "1b")}
    assert totals["tiny"] < totals["small"] < totals["base"] < totals["1b"]
    assert 0.8e9 < totals["1b"] < 1.3e9
    assert count_parameters(load_preset("tiny"), 32000).non_embedding < 1e6


def test_student_config_validation():
    assert StudentConfig().preset == "tiny"
    assert StudentConfig(path="/some/ckpt").preset is None
    with pytest.raises(ValidationError, match="exactly one"):
        StudentConfig(preset="tiny", path="/some/ckpt")
    with pytest.raises(ValidationError, match="not a shipped preset"):
        StudentConfig(preset="huge")
    with pytest.raises(ValidationError, match="vocab_size"):
        StudentConfig(vocab_size=3)
    with pytest.raises(ValidationError, match="Extra inputs"):
        StudentConfig(presets="tiny")


def test_training_config_validation_and_file_resolution():
    assert resolve_deepspeed_config(TrainingConfig()).name == "zero2.json"
    assert resolve_deepspeed_config(TrainingConfig(zero_stage=3)).name == "zero3.json"
    offload = TrainingConfig(zero_stage=3, deepspeed_config="zero3_offload")
    assert resolve_deepspeed_config(offload).name == "zero3_offload.json"
    assert resolve_accelerate_config(TrainingConfig(), cuda_available=False).name == "cpu.yaml"
    assert resolve_accelerate_config(TrainingConfig(), cuda_available=True).name == "gpu.yaml"
    multi = TrainingConfig(num_processes=16, num_machines=2, main_process_ip="10.0.0.1")
    assert resolve_accelerate_config(multi, cuda_available=True).name == "multinode.yaml"
    with pytest.raises(ValidationError, match="multiple"):
        TrainingConfig(num_processes=3, num_machines=2, main_process_ip="h")
    with pytest.raises(ValidationError, match="main_process_ip"):
        TrainingConfig(num_processes=2, num_machines=2)
    with pytest.raises(ValidationError, match="lr_schedule"):
        TrainingConfig(lr_schedule="exponential")
    with pytest.raises(ValueError, match="neither a shipped name"):
        resolve_deepspeed_config(TrainingConfig(deepspeed_config="zero9"))
    assert effective_learning_rate(TrainingConfig(), StudentConfig(preset="tiny")) == load_preset("tiny").learning_rate
    assert effective_learning_rate(TrainingConfig(learning_rate=0.1), StudentConfig()) == 0.1
    assert effective_learning_rate(TrainingConfig(), StudentConfig(path="/x")) == 2e-5


def test_shipped_deepspeed_files_leave_shared_values_to_accelerate():
    import json

    for name in ("zero0", "zero1", "zero2", "zero2_offload", "zero3", "zero3_offload"):
        ds = json.loads(resolve_deepspeed_config(TrainingConfig(deepspeed_config=name)).read_text())
        assert f"zero{ds['zero_optimization']['stage']}" == name[:5]  # the name says the stage it holds
        for key in ("train_micro_batch_size_per_gpu", "gradient_accumulation_steps", "gradient_clipping"):
            assert ds[key] == "auto", (name, key)
        assert "optimizer" not in ds and "scheduler" not in ds  # the loop owns both
        if ds["zero_optimization"]["stage"] == 3:
            assert ds["zero_optimization"]["stage3_gather_16bit_weights_on_model_save"] is True
