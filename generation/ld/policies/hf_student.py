"""A Hugging Face causal LM as a policy: batched greedy generation over the chat template.

Used for both students: the LD student answers selection prompts, the KD student action prompts.
Prompts are built by the same functions that built its training data.
"""

from __future__ import annotations

from pathlib import Path

from generation.ld.policies.base import ActionRequest, PolicyReply, SelectionRequest
from generation.ld import kd_prompts as kd, prompts as ld
from generation.prompts.calls import CALL_PREFIX


class HFStudentPolicy:
    def __init__(self, checkpoint: str | Path, kind: str, max_new_tokens: int = 48, batch_size: int = 64,
                 device: str | None = None, constrain_to_candidates: bool = True):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.kind = kind  # "select" (LD student) or "action" (KD student)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.tokenizer = AutoTokenizer.from_pretrained(str(checkpoint))
        self.model = AutoModelForCausalLM.from_pretrained(str(checkpoint)).to(self.device).eval()
        self.max_new_tokens = max_new_tokens
        self.batch_size = batch_size
        self.generated_tokens = 0
        # LD: the function name is chosen among the retrieved candidates by likelihood, then the
        # arguments are decoded (generation/ld/policies/candidate_scoring.py says why)
        self.constrain_to_candidates = constrain_to_candidates

    def _render(self, prompt: str) -> str:
        return self.tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                                  add_generation_prompt=True)

    def _generate(self, prompts: list[str], forced: list[str] | None = None) -> list[str]:
        """Greedy replies; `forced[i]`, when given, is the start of reply i (decoding continues after it)."""
        import torch

        tok = self.tokenizer
        forced = forced or [""] * len(prompts)
        texts = [self._render(p) + f for p, f in zip(prompts, forced)]
        out: list[str] = []
        for i in range(0, len(texts), self.batch_size):
            enc = tok(texts[i:i + self.batch_size], return_tensors="pt", padding=True, padding_side="left",
                      add_special_tokens=False).to(self.device)
            with torch.inference_mode():
                gen = self.model.generate(**enc, max_new_tokens=self.max_new_tokens, do_sample=False,
                                          pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
            new = gen[:, enc["input_ids"].shape[1]:]
            self.generated_tokens += int((new != tok.pad_token_id).sum())
            out += tok.batch_decode(new, skip_special_tokens=True)
        return [f + o for f, o in zip(forced, out)]

    def _choose_names(self, prompts: list[str], requests: list[SelectionRequest]) -> list[str]:
        """`Call: <name>(` for each request: its most likely candidate, all pairs scored in batches."""
        from generation.ld.policies.candidate_scoring import argmax_first, pair_logprobs

        options = [[f"{CALL_PREFIX} {c.name}(" for c in r.candidates] for r in requests]
        pairs = [(self._render(p), o) for p, opts in zip(prompts, options) for o in opts]
        scores = iter(pair_logprobs(self.model, self.tokenizer, pairs, self.device, self.batch_size))
        starts = []
        for opts in options:
            mine = [next(scores) for _ in opts]
            starts.append(opts[argmax_first(mine)] if opts else "")
        return starts

    def select(self, requests: list[SelectionRequest]) -> list[PolicyReply]:
        prompts = [ld.student_selection_prompt(r.instruction, r.state_text, r.stage, r.stage_input,
                                               r.candidates) for r in requests]
        forced = self._choose_names(prompts, requests) if self.constrain_to_candidates else None
        return [PolicyReply(t) for t in self._generate(prompts, forced)]

    def act(self, requests: list[ActionRequest]) -> list[PolicyReply]:
        prompts = [kd.student_action_prompt(r.instruction, r.state_text, r.question) for r in requests]
        return [PolicyReply(t) for t in self._generate(prompts)]
