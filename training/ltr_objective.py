"""The Learn-to-Reason objective inside the training loop (glue between `ltr_losses` and the Accelerator).

Both terms are sums normalised over the whole optimizer step (all micro-batches, all ranks): the
MLE by the valid tokens (the loop's own token scale), the self-reflection term by the number of
triplets. So the loss does not depend on how a step is split over processes or accumulation,
under ZeRO-2 and ZeRO-3 alike (one forward pass per micro-batch, every parameter used in it).
"""

from __future__ import annotations

from training.data_plan import model_inputs
from training.losses import completion_loss_sum
from training.ltr_losses import last_token_states, triplet_loss_sum


class SelfReflectionObjective:
    def __init__(self, reflection_weight: float, margin: float) -> None:
        self.reflection_weight = reflection_weight
        self.margin = margin
        self._sum, self._count = 0.0, 0

    def triplet_scale(self, accelerator, window: list[dict]) -> float:
        """What turns a micro-batch's triplet sum into its share of the step's mean (cf. train_window)."""
        import torch

        local = sum(int(batch["triplet_anchor_rows"].numel()) for batch in window)
        total = accelerator.reduce(torch.tensor(float(local), device=accelerator.device), "sum")
        return float(accelerator.num_processes * len(window) / total.clamp(min=1.0))

    def step_loss(self, model, batch: dict, device, token_scale, triplet_scale: float):
        """(loss to backpropagate, MLE sum, valid tokens) of one micro-batch."""
        # With lambda > 0 every micro-batch takes the triplet path, with or without triplets (an empty sum):
        # ZeRO-3 reduces gradients in the order backward produces them, which must match on all ranks.
        want_states = bool(self.reflection_weight)
        out = model(**model_inputs(batch, device), output_hidden_states=want_states)
        mle_sum, n_tokens = completion_loss_sum(out.logits, batch["labels"].to(device), batch["weights"].to(device))
        loss = mle_sum * token_scale
        if want_states:
            states = last_token_states(out.hidden_states[-1], batch["attention_mask"].to(device))
            pick = lambda key: states[batch[key].to(device)]  # noqa: E731
            total, count = triplet_loss_sum(pick("triplet_anchor_rows"), pick("triplet_positive_rows"),
                                            pick("triplet_negative_rows"), self.margin)
            loss = loss + self.reflection_weight * total * triplet_scale
            self._sum += float(total.detach())
            self._count += count
        return loss, mle_sum, n_tokens

    def pop_metrics(self, accelerator) -> dict:
        """The mean self-reflection loss since the last call, over all ranks."""
        import torch

        totals = accelerator.reduce(torch.tensor([self._sum, float(self._count)], device=accelerator.device), "sum")
        self._sum, self._count = 0.0, 0
        total, count = totals.tolist()
        return {"reflection_loss": total / count, "triplets": count} if count else {}


def check_decoder_only(student_dir) -> None:
    """Encoder-decoder students get MLE only: their "last hidden state" of prompt + rationale is not one
    sequence, so the self-reflection term is undefined for them; say so instead of guessing."""
    from transformers import AutoConfig

    if getattr(AutoConfig.from_pretrained(str(student_dir)), "is_encoder_decoder", False):
        raise ValueError(f"student {student_dir} is an encoder-decoder model: Learn-to-Reason supports MLE only for "
                         "it; set loss.reflection_weight=0")


def ltr_examples_and_collate(tokenizer, job):
    """(examples, collate, objective) of a Learn-to-Reason training job (a TrainingJob with `ltr_loss` set)."""
    from training.ltr_data import LtrCollator, encode_ltr_rows, read_ltr_rows

    settings = job.ltr_loss
    if job.training.settings.packing:
        raise ValueError("training.packing cannot be combined with the Learn-to-Reason loss (ltr_loss)")
    if settings.reflection_weight:
        check_decoder_only(job.student_dir)
    examples = encode_ltr_rows(tokenizer, read_ltr_rows(job.data), job.student.max_seq_len, settings.prompt_weight)
    collate = LtrCollator(tokenizer.pad_token_id)
    return examples, lambda rows: collate([row[0] for row in rows]), \
        SelfReflectionObjective(settings.reflection_weight, settings.margin)
