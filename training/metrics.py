"""Training metrics: loss and throughput between two log lines, MFU, peak memory.

Counters are per process and summed over all ranks when a log line is written, so every figure is
for the whole job: tokens/s is total, tokens/s per device is that over the process count, and MFU
is achieved FLOP/s over (peak FLOP/s per device x devices).
"""

from __future__ import annotations

import resource
import time

from training.model_size import FlopsModel


class StepStats:
    """Loss / token / FLOP counters between two log lines."""

    def __init__(self) -> None:
        self.loss_sum = self.completion_tokens = self.tokens = self.attention_pairs = 0.0
        self.started = time.perf_counter()

    def add(self, loss_sum: float, completion_tokens: int, tokens: int, attention_pairs: int) -> None:
        self.loss_sum += loss_sum
        self.completion_tokens += completion_tokens
        self.tokens += tokens
        self.attention_pairs += attention_pairs

    def reduce(self, accelerator, flops: FlopsModel | None, peak_flops_per_device: float | None) -> dict:
        """The window's metrics over all ranks (a collective: every rank must call it)."""
        import torch

        local = torch.tensor([self.loss_sum, self.completion_tokens, self.tokens, self.attention_pairs],
                             device=accelerator.device, dtype=torch.float64)
        loss_sum, completion, tokens, pairs = accelerator.reduce(local, reduction="sum").tolist()
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        world = accelerator.num_processes
        out = {"loss": loss_sum / max(completion, 1.0), "tokens": tokens, "tokens_per_s": tokens / elapsed,
               "tokens_per_s_per_device": tokens / elapsed / world,
               "completion_tokens_per_s": completion / elapsed}
        if flops is not None:
            out["flops"] = flops.training_flops(int(tokens), int(pairs))
            achieved = out["flops"] / elapsed
            out["tflops_per_device"] = achieved / world / 1e12
            if peak_flops_per_device:
                out["mfu"] = achieved / (peak_flops_per_device * world)
        return out


def peak_memory_bytes(device) -> int:
    """Peak memory of this process: allocated GPU memory on CUDA, else the peak resident set size."""
    import torch

    if getattr(device, "type", str(device)) == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024  # Linux reports KiB


def max_over_ranks(accelerator, value: float) -> float:
    import torch

    tensor = torch.tensor([float(value)], device=accelerator.device, dtype=torch.float64)
    return float(accelerator.gather(tensor).max().item()) if accelerator.num_processes > 1 else float(value)


def measure_peak_flops(device, dtype_name: str = "fp32", seconds: float = 0.3) -> float:
    """Dense matmul FLOP/s this device reaches in this process: the MFU denominator when no datasheet
    figure is configured (training.peak_tflops). On CPU it is the rate of this process's threads."""
    import torch

    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[dtype_name]
    n = 8192 if getattr(device, "type", str(device)) == "cuda" else 512
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)

    def sync() -> None:
        if getattr(device, "type", str(device)) == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(3):  # warm-up: kernels, clocks, allocator
        a @ b
    sync()
    # Best of several short rounds: on a shared machine the best round is the closest to the peak.
    best, deadline = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < deadline or best == 0.0:
        started = time.perf_counter()
        for _ in range(4):
            a @ b
        sync()
        best = max(best, 2.0 * n ** 3 * 4 / (time.perf_counter() - started))
    return best
