"""Training throughput: our loop vs TRL's SFTTrainer, same model, data and machine, side by side; plus MFU.

    .venv/bin/pip install -c launch/constraints-cpu.txt trl      # the peer, once
    .venv/bin/python tests/benchmarks/bench_training.py           # preset small, 1 epoch of 256 examples
    .venv/bin/python tests/benchmarks/bench_training.py --preset tiny --examples 256 --quick

Every row trains the same freshly built student (a preset, tokenizer trained locally) for one epoch on
the same prompt/completion pairs (short structured prompts of varying length, the shape of our LD
records), fp32, batch `--batch` rows, AdamW, completion-only loss, one process using every core, in
a process of its own. Rows: ours padded (left padding, logits only where completions are), ours
packed (rows of max_seq_len, attention per example), TRL padded (`completion_only_loss`) and TRL
packed (`packing=True`, its best-fit strategy). tokens/s = real (non-pad) tokens trained / wall
seconds of the training loop (setup, tokenisation and export excluded for both). MFU = the FLOPs
of those tokens (training/model_size.FlopsModel: 6·N per token + attention per example) / seconds
/ the dense-matmul peak measured on this machine with the same thread count.
On a GPU machine the same script runs there (CUDA is used when present):
    .venv/bin/python tests/benchmarks/bench_training.py --preset 1b --precision bf16 --batch 8 --max-seq-len 1024
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("WANDB_MODE", "disabled")

SYSTEMS = ["ours-padded", "ours-packed", "trl-padded", "trl-packed"]


def build_inputs(root: Path, preset: str, examples: int, max_seq_len: int) -> tuple[Path, Path, list[dict]]:
    from configs.training_schema import StudentConfig
    from training.student_builder import build_student
    from training_helpers import synthetic_rows, write_parquet

    rows = synthetic_rows(examples, seed=7)
    data = write_parquet(rows, root / "data" / "part-0.parquet").parent
    student = build_student(StudentConfig(preset=preset, vocab_size=1024, max_seq_len=max_seq_len),
                            [r["prompt"] + r["completion"] for r in rows], root / "student")
    return student, data, rows


def example_lengths(student: Path, rows: list[dict], max_seq_len: int) -> list[int]:
    from transformers import AutoTokenizer

    from training.sft_data import encode_rows

    tokenizer = AutoTokenizer.from_pretrained(str(student))
    return [len(e.input_ids) for e in encode_rows(tokenizer, rows, max_seq_len)]


def run_ours(student: Path, data: Path, work: Path, args, packing: bool) -> dict:
    from configs.training_schema import StudentConfig, TrainingConfig
    from generation.storage.tracking import WandbConfig
    from training.job import RunConfig
    from training.train import run_in_process

    training = TrainingConfig(epochs=1, per_device_batch_size=args.batch, learning_rate=1e-3, warmup_ratio=0.0,
                              packing=packing, save_every=None, log_every=10**6, seed=1,
                              mixed_precision="bf16" if args.precision == "bf16" else "no")
    cfg = RunConfig(student=StudentConfig(preset=args.preset, vocab_size=1024, max_seq_len=args.max_seq_len),
                    training=training, wandb=WandbConfig(mode="disabled"))
    run_in_process(cfg, [str(data)], student, work / "out", work, "bench")
    summary = json.loads((work / "out" / "training_summary.json").read_text())
    return {"seconds": summary["loop_seconds"], "tokens": summary["train_tokens"], "steps": summary["steps"],
            "final_loss": summary["final_loss"]}


def run_trl(student: Path, work: Path, rows: list[dict], args, packing: bool) -> dict:
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    tokenizer = AutoTokenizer.from_pretrained(str(student))
    model = AutoModelForCausalLM.from_pretrained(str(student))
    dataset = Dataset.from_list([{"prompt": [{"role": "user", "content": r["prompt"]}],
                                  "completion": [{"role": "assistant", "content": r["completion"]}]} for r in rows])
    config = SFTConfig(output_dir=str(work / "trl"), per_device_train_batch_size=args.batch, num_train_epochs=1,
                       learning_rate=1e-3, warmup_steps=0, lr_scheduler_type="cosine", max_grad_norm=1.0,
                       optim="adamw_torch", logging_steps=10**6, save_strategy="no", report_to="none",
                       max_length=args.max_seq_len, packing=packing, completion_only_loss=True,
                       use_cpu=not torch.cuda.is_available(), dataloader_num_workers=0, seed=1,
                       bf16=args.precision == "bf16", fp16=False,
                       gradient_checkpointing=False)  # TRL's default is on; ours is off: compare like with like
    trainer = SFTTrainer(model=model, args=config, train_dataset=dataset, processing_class=tokenizer)
    tokens = sum(len(ids) for ids in trainer.train_dataset["input_ids"])
    started = time.perf_counter()
    output = trainer.train()
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "tokens": tokens, "steps": output.global_step, "final_loss": output.training_loss}


def worker(args) -> None:
    """One system in this process; prints one JSON line."""
    import torch

    torch.set_num_threads(args.threads)
    work = Path(args.work)
    student, data = work.parent / "student", work.parent / "data"  # built once by the parent
    rows = json.loads((work.parent / "rows.json").read_text())
    packing = args.worker.endswith("packed")
    if args.worker.startswith("ours"):
        result = run_ours(student, data, work, args, packing)
    else:
        result = run_trl(student, work, rows, args, packing)
    print("RESULT " + json.dumps(result), flush=True)


def run_system(system: str, root: Path, repeat: int, args) -> dict:
    """One system in a fresh process (no shared allocator, thread pool or accelerate state)."""
    work = root / f"{system}-{repeat}"
    work.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    done = subprocess.run([sys.executable, __file__, "--worker", system, "--work", str(work), "--preset",
                           args.preset, "--batch", str(args.batch), "--max-seq-len", str(args.max_seq_len),
                           "--threads", str(args.threads), "--precision", args.precision],
                          capture_output=True, text=True, env=env)
    line = next((x for x in done.stdout.splitlines() if x.startswith("RESULT ")), None)
    if done.returncode != 0 or line is None:
        return {"error": (done.stdout + done.stderr)[-2000:]}
    return json.loads(line[len("RESULT "):])


def flops_and_peak(student: Path, lengths: list[int], threads: int, precision: str) -> tuple[float, float]:
    import torch
    from transformers import AutoConfig

    from training.metrics import measure_peak_flops
    from training.model_size import flops_model_from_hf_config

    torch.set_num_threads(threads)
    flops = flops_model_from_hf_config(AutoConfig.from_pretrained(str(student)))
    epoch_flops = flops.training_flops(sum(lengths), sum(n * n for n in lengths))
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return epoch_flops, measure_peak_flops(device, precision, seconds=2.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="small")
    parser.add_argument("--examples", type=int, default=256)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--max-seq-len", type=int, default=256)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32", help="bf16 on a GPU")
    parser.add_argument("--systems", nargs="+", default=SYSTEMS, choices=SYSTEMS)
    parser.add_argument("--repeats", type=int, default=2, help="runs per system; the best is reported")
    parser.add_argument("--quick", action="store_true", help="tiny preset, 128 examples")
    parser.add_argument("--out", default=str(ROOT / "runs" / "bench_training.json"))
    parser.add_argument("--worker", choices=SYSTEMS, help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.preset, args.examples, args.repeats = "tiny", 128, 1
    if args.worker:
        return worker(args)

    root = Path(tempfile.mkdtemp(prefix="bench-training-"))
    student, _, rows = build_inputs(root, args.preset, args.examples, args.max_seq_len)
    (root / "rows.json").write_text(json.dumps(rows))
    lengths = example_lengths(student, rows, args.max_seq_len)
    epoch_flops, peak = flops_and_peak(student, lengths, args.threads, args.precision)
    print(f"{args.preset} student, {args.examples} examples ({sum(lengths)} tokens, mean {sum(lengths) / len(lengths):.0f}),"
          f" batch {args.batch}, {args.threads} thread(s); measured {args.precision} matmul peak {peak / 1e9:.1f} GFLOP/s")
    runs: dict[str, list[dict]] = {system: [] for system in args.systems}
    for repeat in range(args.repeats):  # interleaved, so a busy minute on a shared machine hits every system
        for system in args.systems:
            result = run_system(system, root, repeat, args)
            if "error" in result:
                print(f"{system:12s} FAILED:\n{result['error']}")
                continue
            # FLOPs of the tokens this system trained (a dropped last partial step is not counted).
            result["tokens_per_s"] = result["tokens"] / result["seconds"]
            result["mfu"] = epoch_flops * result["tokens"] / sum(lengths) / result["seconds"] / peak
            runs[system].append(result)
    results = {}
    print(f"best of {args.repeats} run(s) per system:")
    for system, done in runs.items():
        if not done:
            continue
        best = max(done, key=lambda r: r["tokens_per_s"])
        results[system] = {**best, "all_tokens_per_s": [r["tokens_per_s"] for r in done]}
        print(f"{system:12s} {best['tokens_per_s']:9.0f} tokens/s  MFU {100 * best['mfu']:5.1f}%  "
              f"{best['steps']:4d} steps  {best['seconds']:6.1f} s  final loss {best['final_loss']:.3f}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"args": vars(args), "peak_flops": peak, "results": results}, indent=1))
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
