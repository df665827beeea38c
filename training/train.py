"""The one training loop: supervised fine-tuning of a student on prompt/completion parquet files.

Runs under `accelerate launch` (or torchrun, SLURM `srun`, Ray Train) on 1..N processes, CPU (gloo)
or GPU (NCCL), one node or many. Its only argument is the job file its launcher wrote
(training/job.py): the training section already resolved (ZeRO stage, the DeepSpeed JSON itself,
micro-batch, accumulation, world size) with the job's paths. Nothing here re-reads the run YAML.

    accelerate launch --config_file configs/accelerate/cpu.yaml \\
        --deepspeed_config_file configs/deepspeed/zero2.json --num_processes 2 \\
        -m training.train --job-file runs/x/jobs/train_ld.json

(`launch/train_launcher.py` resolves the job, writes the file and builds exactly this command; its
`--dry-run` does the first two only.) Re-running the launch after a kill resumes from the newest
checkpoint in `<run-dir>/checkpoints/<job>` (training.resume=auto).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from configs.training_schema import effective_learning_rate
from generation.storage.tracking import Tracker
from training import checkpoints as ckpt
from training.data_plan import DataPlan, build_rows, eval_batches, make_collate, model_inputs, split_eval
from training.distributed import make_accelerator
from training.export import export_checkpoint
from training.losses import completion_loss_sum, completion_token_hits
from training.metrics import StepStats, max_over_ranks, measure_peak_flops, peak_memory_bytes
from training.optim import build_optimizer, lr_at, set_lr
from training.job import RunConfig, TrainingJob, prepare_job, read_job, resolve_job
from training.preflight import PreflightError
from training.sft_data import IGNORE_INDEX, encode_rows, read_sft_rows


@dataclass
class Session:
    """Everything the loop needs, already wrapped by `accelerator.prepare`."""

    accelerator: object
    model: object
    optimizer: object
    tokenizer: object
    plan: DataPlan
    eval_set: list
    peak_lr: float
    total_steps: int
    start_step: int
    fingerprint: dict
    flops: object
    peak_flops: float | None
    checkpoint_root: Path
    resumed_from: Path | None = None
    saved_state: dict = field(default_factory=dict)
    objective: object | None = None  # None: completion-only SFT loss; else e.g. SelfReflectionObjective


def train_window(accelerator, model, optimizer, window: list[dict], lr: float, max_grad_norm: float,
                 stats: StepStats, objective=None) -> float | None:
    """One optimizer step over this rank's micro-batches; returns the gradient norm before clipping
    (None where the engine does not report it: DeepSpeed ZeRO-0).

    Each micro-batch's loss is its summed completion-token loss divided by the completion tokens of
    the whole step on all ranks, rescaled so that the framework's division by the accumulation
    steps and averaging over ranks leave exactly sum(loss) / global completion tokens.
    """
    import torch

    set_lr(optimizer, lr)
    local_tokens = sum(int((b["labels"] != IGNORE_INDEX).sum()) for b in window)
    global_tokens = accelerator.reduce(torch.tensor(float(local_tokens), device=accelerator.device), "sum")
    scale = accelerator.num_processes * len(window) / global_tokens.clamp(min=1.0)
    triplet_scale = objective.triplet_scale(accelerator, window) if objective is not None else None
    grad_norm = None
    for batch in window:
        with accelerator.accumulate(model):
            if objective is not None:
                loss, loss_sum, n_tokens = objective.step_loss(model, batch, accelerator.device, scale, triplet_scale)
            else:
                logits = model(**model_inputs(batch, accelerator.device)).logits
                loss_sum, n_tokens = completion_loss_sum(logits, batch["labels"].to(accelerator.device),
                                                         batch["weights"].to(accelerator.device))
                loss = loss_sum * scale
            accelerator.backward(loss)
            stats.add(float(loss_sum.detach()), int(n_tokens), batch["num_tokens"], batch["attention_pairs"])
            if accelerator.sync_gradients:
                grad_norm = accelerator.clip_grad_norm_(model.parameters(), max_grad_norm)
                optimizer.step()
                optimizer.zero_grad()
    return float(grad_norm) if grad_norm is not None else None


def evaluate(session: Session) -> dict:
    """Completion-token loss and greedy token accuracy on the held-out rows, over all ranks."""
    import torch

    accelerator, model = session.accelerator, session.model
    totals = torch.zeros(3, dtype=torch.float64, device=accelerator.device)
    model.eval()
    with torch.no_grad():
        for batch, counted in session.eval_set:
            logits = model(**model_inputs(batch, accelerator.device)).logits
            labels = batch["labels"].to(accelerator.device)
            loss_sum, n = completion_loss_sum(logits, labels, batch["weights"].to(accelerator.device))
            hits, _ = completion_token_hits(logits, labels)
            if counted:
                totals += torch.stack([loss_sum.double(), n.double(), hits.double()])
    model.train()
    loss_sum, n, hits = accelerator.reduce(totals, "sum").tolist()
    return {"eval_loss": loss_sum / max(n, 1.0), "eval_token_accuracy": hits / max(n, 1.0), "eval_tokens": n}


def _fingerprint(job: TrainingJob, peak_lr: float, total_steps: int, plan: DataPlan) -> dict:
    """What must match for a resume to continue the same run (process count and split may change)."""
    cfg = job.training.settings
    fingerprint = {
        "student": job.student.model_dump(mode="json"), "seed": cfg.seed, "peak_lr": peak_lr,
        "total_steps": total_steps, "lr_schedule": cfg.lr_schedule, "warmup_ratio": cfg.warmup_ratio,
        "min_lr_ratio": cfg.min_lr_ratio, "weight_decay": cfg.weight_decay, "max_grad_norm": cfg.max_grad_norm,
        "packing": cfg.packing, "lora": cfg.lora.model_dump(mode="json") if cfg.lora else None,
        "mixed_precision": cfg.mixed_precision, "rows_per_step": plan.rows_per_step, "train_rows": len(plan.rows)}
    if job.ltr_loss is not None:  # only then: fingerprints of plain SFT checkpoints stay as they were
        fingerprint["ltr_loss"] = job.ltr_loss.model_dump(mode="json")
    return fingerprint


def _needs_universal(saved: dict, world: int, stage: int | None) -> bool:
    """Whether a DeepSpeed checkpoint must go through its universal form: another world size or stage."""
    saved_stage = saved.get("deepspeed_stage")
    if (saved_stage is None) != (stage is None):
        was = "with" if saved_stage is not None else "without"
        now = "with" if stage is not None else "without"
        raise PreflightError(f"the checkpoint was written {was} DeepSpeed and this launch runs {now} it; resume with "
                             "the same kind of launch, or start a new run from the exported weights")
    return stage is not None and (saved["world_size"] != world or saved_stage != stage) and max(saved_stage, stage) > 0


def _check_world_size(resolved_world: int) -> int:
    """The processes this launch started. Checked on every rank because the launch that started them
    (a hand-written `accelerate launch -n 4`) may not be the one the job was resolved for."""
    world = int(os.environ.get("WORLD_SIZE", "1"))  # set by every launcher before the process starts
    if world != resolved_world:
        raise PreflightError(f"the job was resolved for {resolved_world} process(es) but this launch started "
                             f"{world}; resolve it again through launch/train_launcher.py for this process count")
    return world


def setup(job: TrainingJob, checkpoint_root: Path) -> Session:
    from accelerate.utils import set_seed
    from transformers import AutoTokenizer

    from training.model_setup import load_student
    from training.model_size import flops_model_from_hf_config

    resolved, cfg = job.training, job.training.settings
    data, student_dir = job.data, Path(job.student_dir)
    world = _check_world_size(resolved.world_size)
    resumed_from = ckpt.resolve_resume(cfg.resume, checkpoint_root)
    saved = ckpt.read_trainer_state(resumed_from) if resumed_from else {}
    universal = bool(saved) and _needs_universal(saved, world, resolved.zero_stage)
    accelerator = make_accelerator(resolved, load_universal=universal)
    if accelerator.num_processes != world:
        raise RuntimeError(f"WORLD_SIZE={world} but the process group has {accelerator.num_processes} processes")
    set_seed(cfg.seed)
    tokenizer = AutoTokenizer.from_pretrained(str(student_dir))
    if job.ltr_loss is not None:
        from training.ltr_objective import ltr_examples_and_collate

        examples, collate, objective = ltr_examples_and_collate(tokenizer, job)
    else:
        examples = encode_rows(tokenizer, read_sft_rows(data), job.student.max_seq_len)
        collate, objective = make_collate(tokenizer.pad_token_id, cfg.packing), None
    train_examples, held_out = split_eval(examples, cfg.eval_fraction, cfg.seed)
    plan = DataPlan(build_rows(train_examples, cfg.packing, job.student.max_seq_len),
                    resolved.rows_per_step, resolved.micro_batch, world, accelerator.process_index, cfg.seed, collate)
    eval_set = eval_batches(held_out, resolved.micro_batch, world, accelerator.process_index, collate,
                            cfg.packing, job.student.max_seq_len)
    peak_lr = effective_learning_rate(cfg, job.student)
    total_steps = cfg.max_steps or math.ceil(cfg.epochs * plan.steps_per_epoch)
    fingerprint = _fingerprint(job, peak_lr, total_steps, plan)
    if saved:
        differences = ckpt.fingerprint_differences(saved["fingerprint"], fingerprint)
        if differences and cfg.resume == "auto":
            raise PreflightError(f"checkpoint {resumed_from} belongs to a different run ({'; '.join(differences)}); "
                                 "delete it, set training.resume=never with another checkpoint_dir, or resume it "
                                 "explicitly with training.resume=<path>")
        if differences:
            accelerator.print(f"warning: resuming {resumed_from} although {'; '.join(differences)}")
    model = load_student(student_dir, cfg)
    flops = flops_model_from_hf_config(model.config)
    optimizer = build_optimizer(model, cfg, peak_lr, resolved.deepspeed)
    model, optimizer = accelerator.prepare(model, optimizer)
    if resumed_from:
        _restore(accelerator, model, resumed_from, universal)
    peak = cfg.peak_tflops * 1e12 if cfg.peak_tflops else None
    if peak is None and accelerator.is_main_process:
        on_gpu = accelerator.device.type == "cuda"
        peak = measure_peak_flops(accelerator.device, cfg.mixed_precision.replace("no", "fp32") if on_gpu else "fp32")
    return Session(accelerator, model, optimizer, tokenizer, plan, eval_set, peak_lr, total_steps,
                   int(saved.get("step", 0)), fingerprint, flops, peak, checkpoint_root, resumed_from, saved, objective)


def _restore(accelerator, model, checkpoint: Path, universal: bool) -> None:
    """Model, optimizer and RNG from `checkpoint`; through its universal form on another world size/stage."""
    if not universal:
        accelerator.load_state(str(checkpoint))
        return
    if accelerator.is_main_process:
        ckpt.convert_to_universal(checkpoint)
    accelerator.wait_for_everyone()
    model.load_checkpoint(str(ckpt.universal_dir(checkpoint)), tag=ckpt.DS_TAG, load_optimizer_states=True,
                          load_lr_scheduler_states=False)
    rng_file = Path(checkpoint) / f"random_states_{accelerator.process_index}.pkl"
    if rng_file.is_file():  # ranks beyond the old world size keep their seeded RNG
        _restore_rng(rng_file)


def _restore_rng(path: Path) -> None:
    """Python, NumPy and torch RNG states from accelerate's per-rank `random_states_<rank>.pkl`."""
    import random

    import numpy as np
    import torch

    states = torch.load(path, weights_only=False)
    random.setstate(states["random_state"])
    np.random.set_state(states["numpy_random_seed"])
    torch.set_rng_state(states["torch_manual_seed"])
    if torch.cuda.is_available() and "torch_cuda_manual_seed" in states:
        torch.cuda.set_rng_state_all(states["torch_cuda_manual_seed"])


def _log_row(session: Session, stats: StepStats, lr: float, step: int, grad_norm: float | None) -> dict:
    accelerator = session.accelerator
    row = {**stats.reduce(accelerator, session.flops, session.peak_flops), "lr": lr,
           "epoch": step / session.plan.steps_per_epoch,
           "peak_memory_gb": max_over_ranks(accelerator, peak_memory_bytes(accelerator.device)) / 2**30}
    if grad_norm is not None:
        row["grad_norm"] = grad_norm
    return row


def train_loop(session: Session, training_job: TrainingJob, tracker: Tracker | None) -> dict:
    """Optimizer steps from `session.start_step` to `session.total_steps`; logs, evals and saves on the way."""
    cfg, accelerator, job = training_job.training.settings, session.accelerator, training_job.name
    session.model.train()
    step, stats, last = session.start_step, StepStats(), {}
    totals = {"tokens": 0.0, "flops": 0.0}  # over the whole loop (every step is inside some log window)
    while step < session.total_steps:
        lr = lr_at(step, session.total_steps, cfg, session.peak_lr)
        grad_norm = train_window(accelerator, session.model, session.optimizer, session.plan.micro_batches(step),
                                 lr, cfg.max_grad_norm, stats, session.objective)
        step += 1
        if step == 1 or step % cfg.log_every == 0 or step == session.total_steps:
            last = _log_row(session, stats, lr, step, grad_norm)
            if session.objective is not None:
                last.update(session.objective.pop_metrics(accelerator))
            for key in totals:
                totals[key] += last.pop(key, 0.0)
            stats = StepStats()
            if tracker is not None:
                tracker.log(last, step=step)
                accelerator.print(f"[{job}] step {step}/{session.total_steps} "
                                  + " ".join(f"{k}={v:.4g}" for k, v in last.items()))
        if session.eval_set and cfg.eval_every and step % cfg.eval_every == 0 and step < session.total_steps:
            metrics = evaluate(session)
            if tracker is not None:
                tracker.log(metrics, step=step)
        if cfg.save_every and step % cfg.save_every == 0:
            state = {"world_size": accelerator.num_processes, "fingerprint": session.fingerprint,
                     "deepspeed_stage": training_job.training.zero_stage,
                     "wandb_run_id": tracker.run_id if tracker else None, "job": job}
            ckpt.save_checkpoint(accelerator, session.checkpoint_root, step, state, cfg.keep_last)
    return {**last, "steps": step, "train_tokens": totals["tokens"], "train_flops": totals["flops"]}


def _truncate_side_log(run_dir: Path, job: str, step: int) -> None:
    """Drop rows a killed run logged after its last checkpoint; the resumed run logs those steps again."""
    path = run_dir / "metrics" / f"{job}.jsonl"
    if path.is_file():
        rows = [line for line in path.read_text().splitlines() if line.strip()]
        path.write_text("".join(line + "\n" for line in rows if (json.loads(line).get("step") or 0) <= step))


def _start_tracker(session: Session, training_job: TrainingJob) -> Tracker:
    """Rank 0's W&B run: the id stored in the checkpoint (or run.json) continues the same run."""
    root, run_dir, job = session.checkpoint_root, Path(training_job.run_dir), training_job.name
    run_info = root / ckpt.RUN_INFO
    run_id = session.saved_state.get("wandb_run_id")
    if run_id is None and run_info.is_file():
        run_id = json.loads(run_info.read_text()).get("wandb_run_id")
    if session.start_step:
        _truncate_side_log(run_dir, job, session.start_step)
    tracker = Tracker(run_dir, training_job.wandb, job, run_id=run_id, config={
        "student": training_job.student.model_dump(), "training": training_job.training.model_dump(),
        "data": training_job.data,
        "train_rows": len(session.plan.rows), "total_steps": session.total_steps, "peak_lr": session.peak_lr,
        "num_processes": session.accelerator.num_processes, "rows_per_step": session.plan.rows_per_step})
    root.mkdir(parents=True, exist_ok=True)
    ckpt.write_json_atomic(run_info, {"wandb_run_id": tracker.run_id, "job": job})
    return tracker


def run(training_job: TrainingJob) -> Path:
    """Train the resolved job in this process (one rank of its launch); return the exported checkpoint."""
    started = time.perf_counter()
    cfg, job = training_job.training.settings, training_job.name
    out_dir, student_dir = Path(training_job.out_dir), Path(training_job.student_dir)
    checkpoint_root = Path(cfg.checkpoint_dir or Path(training_job.run_dir) / "checkpoints" / job)
    session = setup(training_job, checkpoint_root)
    accelerator, tracker = session.accelerator, None
    if accelerator.is_main_process:
        ckpt.clean_partial_saves(checkpoint_root)
        tracker = _start_tracker(session, training_job)
        where = f", resuming at step {session.start_step} from {session.resumed_from}" if session.resumed_from else ""
        accelerator.print(f"[{job}] {len(session.plan.rows)} rows, {accelerator.num_processes} process(es), "
                          f"{session.total_steps} optimizer steps, peak lr {session.peak_lr:g}{where}")
    loop_started = time.perf_counter()
    last = train_loop(session, training_job, tracker)
    loop_seconds = time.perf_counter() - loop_started
    run_rates = _run_rates(last, loop_seconds, accelerator.num_processes, session.peak_flops)
    final_eval = evaluate(session) if session.eval_set else {}
    if tracker is not None and final_eval:
        tracker.log(final_eval, step=last["steps"])
    probe = session.plan.collate(session.plan.rows[:2])
    check = export_checkpoint(accelerator, session.model, session.tokenizer, out_dir, student_dir=student_dir,
                              lora=cfg.lora, probe_batch=probe, strict=cfg.mixed_precision == "no")
    if tracker is not None:
        summary = {"final_loss": last.get("loss"), "steps": last["steps"], "loop_seconds": loop_seconds,
                   "total_seconds": time.perf_counter() - started, "train_rows": len(session.plan.rows),
                   "num_processes": accelerator.num_processes, "resumed_from_step": session.start_step,
                   "peak_memory_gb": last.get("peak_memory_gb"), **run_rates,
                   **final_eval, **{f"export_{k}": v for k, v in check.items()}}
        tracker.summary(summary)
        (out_dir / "training_summary.json").write_text(json.dumps(summary, indent=1))
        tracker.finish()
    accelerator.end_training()
    return out_dir


def _run_rates(last: dict, seconds: float, world: int, peak_flops: float | None) -> dict:
    """Throughput and MFU over the whole loop (this run's steps only, when resumed)."""
    seconds = max(seconds, 1e-9)
    rates = {"train_tokens": last["train_tokens"], "tokens_per_s": last["train_tokens"] / seconds,
             "tokens_per_s_per_device": last["train_tokens"] / seconds / world, "train_flops": last["train_flops"]}
    if peak_flops:
        rates["mfu"] = last["train_flops"] / seconds / (peak_flops * world)
    return rates


def run_in_process(run_cfg: RunConfig, data, student_dir, out_dir, run_dir, job: str) -> Path:
    """Train `job` in this interpreter, one process without DeepSpeed: this is its own launcher, so it
    resolves, checks and writes the job once, then runs the object it resolved."""
    training_job = resolve_job(run_cfg, data, student_dir, out_dir, run_dir, job, deepspeed=False, world_size=1)
    prepare_job(training_job)
    return run(training_job)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Fine-tune a student: one rank of a launch of a resolved job.")
    parser.add_argument("--job-file", required=True, type=Path,
                        help="the resolved job a launcher wrote (<run-dir>/jobs/<job>.json, training/job.py)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    run(read_job(args.job_file))


if __name__ == "__main__":
    main()
