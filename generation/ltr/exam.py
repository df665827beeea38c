"""The exam: a student checkpoint samples k rationales per question; each answer is extracted and checked.

`ExamWorker` is the plain class behind the Ray exam tasks (ray_jobs/ltr_rounds.py); tests call it directly.
Greedy decoding with k = 1 is the held-out evaluation; sampling at the exam temperature is the exam.
"""

from __future__ import annotations

from generation.ltr.records import ExamRecord
from generation.ld.policies.hf_student import HFStudentPolicy
from generation.ltr.prompts import student_prompt
from generation.datasets.answers import extract_numeric_answer, numbers_match, parse_number


def grade(rationale: str, gold_answer: str) -> tuple[float | None, bool]:
    """(the answer the rationale states, whether it equals the gold answer)."""
    predicted = extract_numeric_answer(rationale)
    gold = parse_number(gold_answer)
    return predicted, gold is not None and numbers_match(predicted, gold)


class RationaleSampler(HFStudentPolicy):
    """The student as a free-text reasoner: k sampled (or one greedy) rationales per prompt."""

    def sample(self, prompts: list[str], k: int, temperature: float, seed: int) -> list[list[str]]:
        import torch

        if temperature <= 0 and k != 1:
            raise ValueError(f"greedy decoding gives one rationale per question, not k={k}")
        tok, out = self.tokenizer, []
        per_batch = max(1, self.batch_size // k)
        torch.manual_seed(seed)  # the same seed and checkpoint give the same exam
        for i in range(0, len(prompts), per_batch):
            enc = tok([self._render(p) for p in prompts[i:i + per_batch]], return_tensors="pt", padding=True,
                      padding_side="left", add_special_tokens=False).to(self.device)
            sampling = {"do_sample": True, "temperature": temperature, "top_k": 0, "top_p": 1.0} \
                if temperature > 0 else {"do_sample": False}
            with torch.inference_mode():
                gen = self.model.generate(**enc, max_new_tokens=self.max_new_tokens, num_return_sequences=k,
                                          pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, **sampling)
            texts = tok.batch_decode(gen[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
            out += [[t.strip() for t in texts[j * k:(j + 1) * k]] for j in range(len(texts) // k)]
        return out


class ExamWorker:
    def __init__(self, checkpoint: str, max_new_tokens: int, batch_size: int) -> None:
        self.checkpoint = str(checkpoint)
        self.sampler = RationaleSampler(checkpoint, kind="rationale", max_new_tokens=max_new_tokens,
                                        batch_size=batch_size)

    def run(self, items: list[dict], exam: str, round_index: int, k: int, temperature: float,
            seed: int) -> list[dict]:
        """ExamRecord rows (as dicts) for `items` [{uid, question, answer}], k per question."""
        samples = self.sampler.sample([student_prompt(i["question"]) for i in items], k, temperature, seed)
        rows = []
        for item, rationales in zip(items, samples):
            for j, rationale in enumerate(rationales):
                predicted, correct = grade(rationale, item["answer"])
                rows.append(ExamRecord(exam=exam, round=round_index, question_id=item["uid"],
                                       sample_id=f"{exam}/{item['uid']}/s{j}", question=item["question"],
                                       gold_answer=item["answer"], rationale=rationale, predicted=predicted,
                                       correct=correct, temperature=temperature,
                                       checkpoint=self.checkpoint).model_dump(mode="json"))
        return rows
