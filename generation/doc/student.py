"""A trained Divide-or-Conquer student (decomposer or solver) as a text generator with token counts.

It is the pipeline's HF student policy (same chat template, same batched greedy decoding); this only
adds free-text prompts and per-prompt token counts for the cost table.
"""

from __future__ import annotations

from pathlib import Path

from generation.ld.policies.hf_student import HFStudentPolicy


class TextStudent(HFStudentPolicy):
    def __init__(self, checkpoint: str | Path, batch_size: int = 64, device: str | None = None):
        super().__init__(checkpoint, kind="text", batch_size=batch_size, device=device)

    def generate(self, prompts: list[str], max_new_tokens: int) -> list[tuple[str, int, int]]:
        """(reply, prompt tokens, generated tokens incl. the end token) per prompt."""
        self.max_new_tokens = max_new_tokens
        replies = self._generate(prompts)
        tok = self.tokenizer
        rendered = [tok.apply_chat_template([{"role": "user", "content": p}], tokenize=False,
                                            add_generation_prompt=True) for p in prompts]
        n_in = [len(ids) for ids in tok(rendered, add_special_tokens=False)["input_ids"]]
        n_out = [min(max_new_tokens, len(ids) + 1) for ids in tok(replies, add_special_tokens=False)["input_ids"]]
        return list(zip(replies, n_in, n_out))
