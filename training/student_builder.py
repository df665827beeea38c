"""Build a student from config: a byte-level BPE tokenizer trained on our own texts + a Llama model.

No weights or vocabularies come from a hub: the tokenizer is trained on the corpus the student will
see, and the model is initialised from a size preset. The result is a normal Hugging Face checkpoint
directory that `AutoModelForCausalLM.from_pretrained` / `AutoTokenizer.from_pretrained` load offline.

Chat format (the template below): `<|bos|><|user|>PROMPT<|end|><|assistant|>COMPLETION<|eos|>`.
Every assistant turn ends with EOS, so generation stops where the teacher's answer stopped.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Iterable

from configs.training_schema import StudentConfig, load_preset

PAD, BOS, EOS, UNK = "<|pad|>", "<|bos|>", "<|eos|>", "<|unk|>"
SYSTEM, USER, ASSISTANT, END_OF_TURN = "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"
SPECIAL_TOKENS = [PAD, BOS, EOS, UNK, SYSTEM, USER, ASSISTANT, END_OF_TURN]

# Role markers are single special tokens, so the rendering of [user] + generation prompt is always a
# token-level prefix of [user, assistant] (prompt masking relies on that).
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}<|system|>{{ message['content'] }}<|end|>"
    "{% elif message['role'] == 'user' %}<|user|>{{ message['content'] }}<|end|>"
    "{% elif message['role'] == 'assistant' %}<|assistant|>{{ message['content'] }}{{ eos_token }}"
    "{% else %}{{ raise_exception('unknown chat role: ' + message['role']) }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


# The last word before a bracket, letter by letter: the name part of a call or signature
# (`move_gas(` -> m ove _ g a s) and a word in parentheses (`emergency (gas)` -> ( g a s )).
SPELLED_NAME = r"[a-z](?=[a-z]*[()])"


def train_tokenizer(texts: Iterable[str], vocab_size: int, out_dir: str | Path | None = None,
                    spell_call_names: bool = False):
    """Train a byte-level BPE tokenizer on `texts` and return it as a `PreTrainedTokenizerFast`.

    Byte-level means every string round-trips (no unknown characters). Saved to `out_dir` if given.
    With `spell_call_names`, the words matched by `SPELLED_NAME` are split into letters (see below).
    """
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    texts = list(texts)
    if not texts:
        raise ValueError("train_tokenizer: no texts to train on")
    if vocab_size < 256 + len(SPECIAL_TOKENS):
        raise ValueError(f"vocab_size {vocab_size} is too small for a byte-level tokenizer "
                         f"(needs at least {256 + len(SPECIAL_TOKENS)})")
    backend = Tokenizer(models.BPE())
    # Digits and the punctuation of calls and data (brackets, quotes, commas, `=`, `:`) become
    # tokens of their own, the same tokens wherever they stand
    # ("cell [2, 0]" in an instruction, "cell=[2, 0]" in a call): a small student can then copy
    # arguments with an induction head instead of memorising every value-in-context merge.
    # A name the student never saw in training (a function written at run time for a new kind of
    # emergency, `move_gas`) would otherwise become sub-word pieces it never learned to copy, while
    # every training name is one well-trained token. Spelled letter by letter, a new name is made of
    # the same 26 tokens as every name in training, and "copy the kind from `(gas)` into the call"
    # is one skill (an induction head) instead of one memorised token per name.
    spelled = [pre_tokenizers.Split(Regex(SPELLED_NAME), behavior="isolated")] if spell_call_names else []
    backend.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        *spelled,
        pre_tokenizers.Split(Regex(r'[\[\](){}",=:]'), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), min_frequency=2,
    )
    backend.train_from_iterator(texts, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token=BOS, eos_token=EOS, pad_token=PAD, unk_token=UNK,
        additional_special_tokens=[SYSTEM, USER, ASSISTANT, END_OF_TURN],
        padding_side="left",  # batched generation and our training collator both pad on the left
        clean_up_tokenization_spaces=False,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    if out_dir is not None:
        tokenizer.save_pretrained(str(out_dir))
    return tokenizer


def llama_config_for(cfg: StudentConfig, tokenizer):
    """The `LlamaConfig` of a preset student whose vocabulary is exactly the tokenizer's."""
    from transformers import LlamaConfig

    preset = load_preset(cfg.preset)
    return LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=preset.hidden_size,
        intermediate_size=preset.intermediate_size,
        num_hidden_layers=preset.num_hidden_layers,
        num_attention_heads=preset.num_attention_heads,
        num_key_value_heads=preset.kv_heads,
        max_position_embeddings=cfg.max_seq_len,
        rope_theta=preset.rope_theta,
        rms_norm_eps=preset.rms_norm_eps,
        tie_word_embeddings=preset.tie_word_embeddings,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )


def build_student(cfg: StudentConfig, corpus_texts: Iterable[str], out_dir: str | Path, seed: int = 0) -> Path:
    """A ready-to-train HF checkpoint directory at `out_dir` (model, tokenizer, chat template).

    `cfg.path`: the local checkpoint is copied (it must already carry a tokenizer with a chat template).
    `cfg.preset`: a tokenizer is trained on `corpus_texts` and a freshly initialised Llama is saved.
    """
    out_dir = Path(out_dir)
    if cfg.path is not None:
        return _copy_local_checkpoint(Path(cfg.path).expanduser(), out_dir)

    import torch
    from transformers import LlamaForCausalLM

    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = train_tokenizer(corpus_texts, cfg.vocab_size, spell_call_names=cfg.spell_call_names)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(llama_config_for(cfg, tokenizer))
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    model.save_pretrained(str(out_dir))
    tokenizer.save_pretrained(str(out_dir))
    return out_dir


def _copy_local_checkpoint(source: Path, out_dir: Path) -> Path:
    if not (source / "config.json").is_file():
        raise ValueError(f"student.path {source} is not a Hugging Face checkpoint directory (no config.json)")
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(source))
    if not tokenizer.chat_template:
        raise ValueError(f"student.path {source}: its tokenizer has no chat_template; prompt masking needs one")
    if source.resolve() != out_dir.resolve():
        shutil.copytree(source, out_dir, dirs_exist_ok=True)
    return out_dir
