"""Parameter count and training FLOPs of a Llama-shaped student, computed from its preset.

Pure arithmetic (no torch), so the CLI can size a run before building anything. The count matches
`sum(p.numel() for p in LlamaForCausalLM(cfg).parameters())` exactly (no biases, RMSNorm weights only).
"""

from __future__ import annotations

from dataclasses import dataclass

from configs.training_schema import StudentPreset


@dataclass(frozen=True)
class ModelSize:
    embedding: int  # token embedding table (shared with the output head when tied)
    per_layer: int
    final_norm: int
    lm_head: int  # 0 when tied to the embedding
    num_layers: int

    @property
    def total(self) -> int:
        return self.embedding + self.num_layers * self.per_layer + self.final_norm + self.lm_head

    @property
    def non_embedding(self) -> int:
        return self.num_layers * self.per_layer + self.final_norm


def count_parameters(preset: StudentPreset, vocab_size: int) -> ModelSize:
    d, hd = preset.hidden_size, preset.head_dim
    q_out, kv_out = preset.num_attention_heads * hd, preset.kv_heads * hd
    attention = d * q_out + 2 * d * kv_out + q_out * d  # q, k, v, o projections
    mlp = 3 * d * preset.intermediate_size  # gate, up, down
    norms = 2 * d  # input and post-attention RMSNorm
    return ModelSize(
        embedding=vocab_size * d,
        per_layer=attention + mlp + norms,
        final_norm=d,
        lm_head=0 if preset.tie_word_embeddings else vocab_size * d,
        num_layers=preset.num_hidden_layers,
    )


def training_flops_per_token(preset: StudentPreset, vocab_size: int, seq_len: int) -> int:
    """Forward + backward FLOPs per token (PaLM convention: 6·N_matmul + 12·L·H·d_head·T).

    N_matmul counts every weight used in a matrix multiply, including the output head (which is
    the embedding matrix again when tied) but not the embedding lookup or norms. The attention term
    counts QKᵀ and AV over the full context `seq_len`, not halved for causal masking.
    """
    d = preset.hidden_size
    size = count_parameters(preset, vocab_size)
    matmul_per_layer = size.per_layer - 2 * d
    matmul = preset.num_hidden_layers * matmul_per_layer + vocab_size * d
    attention = preset.num_hidden_layers * preset.num_attention_heads * preset.head_dim * seq_len
    return 6 * matmul + 12 * attention


def describe(preset: StudentPreset, vocab_size: int, seq_len: int) -> str:
    size = count_parameters(preset, vocab_size)
    flops = training_flops_per_token(preset, vocab_size, seq_len)
    return (f"{size.total / 1e6:.2f}M parameters ({size.non_embedding / 1e6:.2f}M non-embedding), "
            f"{flops / 1e6:.1f} MFLOP per training token at context {seq_len}")


@dataclass(frozen=True)
class FlopsModel:
    """Training FLOPs of a Llama-shaped model: 6·N_matmul per token + 12·L·H·d_head per attended pair.

    `attention_pairs` is sum(n²) over the examples of a batch: with packing (block-diagonal attention)
    a token attends only within its example, so n tokens of an n-token example each see n positions
    (the PaLM convention counts the full n, not n/2 for causality). For one sequence of length T this
    is exactly `training_flops_per_token(..., seq_len=T) * T`.
    """

    matmul_params: int
    attention_coeff: int  # layers x heads x head_dim

    def training_flops(self, tokens: int, attention_pairs: int) -> float:
        return 6.0 * self.matmul_params * tokens + 12.0 * self.attention_coeff * attention_pairs


def flops_model_from_hf_config(config) -> FlopsModel:
    """The FlopsModel of a loaded Llama/Qwen/Mistral-style HF config (explicit head_dim honoured)."""
    d, heads = config.hidden_size, config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or d // heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    q_out, kv_out = heads * head_dim, kv_heads * head_dim
    per_layer = d * q_out + 2 * d * kv_out + q_out * d + 3 * d * config.intermediate_size
    layers = config.num_hidden_layers
    return FlopsModel(matmul_params=layers * per_layer + config.vocab_size * d,
                      attention_coeff=layers * heads * head_dim)
