"""One trial of a scaling study: its share of the teacher data -> a trained student -> held-out evaluation.

`run_trial(payload)` is the body `ray_jobs.sweep` runs as a Ray task (or a SLURM array task runs in
its own process). The trial folder is a run directory of the pipeline (`data/`, `students/`, `logs/`,
`config.resolved.yaml`), so the pipeline's own stages train and check the student. Evaluation runs
in this process: a trial already holds its CPUs, and evaluation actors could wait for them forever.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

from configs.loader import save_resolved
from configs.schema import RunConfig
from configs.training_schema import StudentPreset
from generation.storage.shards import Manifest
from training.model_size import count_parameters, training_flops_per_token

METHOD_POLICY = {"ld": "ld_student", "kd": "kd_student"}


class TrialError(RuntimeError):
    """A trial cannot run; the message says which input is missing or wrong."""


def prefix_units(data_dir: Path, seeds: set[int]) -> list[dict[str, Any]]:
    """The committed generation units whose seeds are all among `seeds` (a prefix of the training seeds)."""
    manifest = Manifest(data_dir)
    units = [e for _, e in sorted(manifest.entries.items()) if set(e["seeds"]) <= seeds]
    covered = {s for e in units for s in e["seeds"]}
    if covered != seeds:
        missing = sorted(seeds - covered)
        raise TrialError(f"{data_dir}: no whole generation units cover training seeds {missing[:5]}... "
                         f"({len(missing)} of {len(seeds)}); regenerate the study's data")
    return units


def teacher_usage(units: list[dict[str, Any]]) -> dict[str, float]:
    """Teacher tokens and dollars behind these units (cache hits cost nothing, as billed)."""
    keys = ("requests", "input_tokens", "output_tokens", "cost_usd")
    return {f"teacher_{k}": sum(t["usage"].get(k, 0) for t in units) for k in keys}


def copy_prefix_shards(data_dir: Path, units: list[dict[str, Any]], out_dir: Path) -> list[Path]:
    """Copy the units' LD and KD shards into the trial's `data/` (the pipeline's layout)."""
    Manifest(data_dir).verified_paths("ld")  # refuse shards changed since generation
    out_dir.mkdir(parents=True, exist_ok=True)
    copied = []
    for unit in units:
        for name in unit["files"]:
            if name.endswith(".parquet") and name.split("-")[0] in ("ld", "kd"):
                copied.append(Path(shutil.copy2(data_dir / name, out_dir / name)))
    return copied


def preset_of_checkpoint(checkpoint: Path) -> tuple[StudentPreset, int]:
    """The shape (as a preset) and vocabulary size of a Llama-style HF checkpoint."""
    config = json.loads((checkpoint / "config.json").read_text())
    heads = config["num_attention_heads"]
    head_dim = config.get("head_dim") or config["hidden_size"] // heads
    if head_dim * heads != config["hidden_size"]:
        raise TrialError(f"{checkpoint}: head_dim x heads != hidden_size; its size cannot be counted as a preset")
    preset = StudentPreset(hidden_size=config["hidden_size"], intermediate_size=config["intermediate_size"],
                           num_hidden_layers=config["num_hidden_layers"], num_attention_heads=heads,
                           num_key_value_heads=config.get("num_key_value_heads"),
                           tie_word_embeddings=config.get("tie_word_embeddings", True))
    return preset, config["vocab_size"]


def size_figures(checkpoint: Path, seq_len: int) -> dict[str, Any]:
    preset, vocab = preset_of_checkpoint(checkpoint)
    size = count_parameters(preset, vocab)
    return {"parameters": size.total, "non_embedding_parameters": size.non_embedding, "vocab_size": vocab,
            "flops_per_token": training_flops_per_token(preset, vocab, seq_len)}


def evaluate_in_process(cfg: RunConfig, trial_dir: Path, base_path: Path, method: str) -> dict[str, Any]:
    """Held-out episodes of the trained student, played here; episodes saved under `eval/`."""
    from generation.ld.envs.base import aggregate
    from generation.ld.envs.registry import make_env
    from generation.ld.workers import EvalWorker
    from ray_jobs.ld_data import check_function_base
    from ray_jobs.ld_evaluation import policy_specs

    check_function_base(base_path)
    name = METHOD_POLICY[method]
    [spec] = policy_specs(cfg, trial_dir).values()
    worker = EvalWorker(cfg, base_path)
    try:
        episodes = worker.run(name, spec, make_env(cfg.task).heldout_seeds(cfg.eval.episodes))
    finally:
        worker.close()
    (trial_dir / "eval").mkdir(exist_ok=True)
    with (trial_dir / "eval" / f"episodes-{name}.jsonl").open("w") as fh:
        fh.writelines(json.dumps(e) + "\n" for e in episodes)
    metrics = aggregate(episodes)
    metrics["valid_rate"] = 1.0 - metrics["invalid_rate"]
    return metrics


def run_trial(payload: dict[str, Any]) -> dict[str, Any]:
    """payload: {trial: {...}, config: resolved run config (JSON), data_dir, trial_dir} -> the trial's row."""
    from generation.ld.envs.registry import make_env
    from launch.ld import train_students

    started = time.perf_counter()
    trial, cfg = payload["trial"], RunConfig.model_validate(payload["config"])
    data_dir, trial_dir = Path(payload["data_dir"]), Path(payload["trial_dir"])
    method = trial["method"]
    save_resolved(cfg, trial_dir)
    units = prefix_units(data_dir, set(make_env(cfg.task).train_seeds(trial["data_size"])))
    copy_prefix_shards(data_dir, units, trial_dir / "data")  # again on a retry: a killed copy leaves no gap
    checkpoint = train_students(cfg, trial_dir, [method])[method]
    train_s = time.perf_counter() - started
    metrics = evaluate_in_process(cfg, trial_dir, data_dir.parent / "function_base.json", method)
    summary = json.loads((checkpoint / "training_summary.json").read_text())
    return {**trial, **metrics, **size_figures(checkpoint, cfg.student.max_seq_len),
            "train_rows": summary.get("train_rows"), "train_tokens": summary.get("train_tokens"),
            "train_flops": summary.get("train_flops"), "tokens_per_s": summary.get("tokens_per_s"),
            "final_loss": summary.get("final_loss"), "train_wall_s": round(train_s, 2),
            "wall_s": round(time.perf_counter() - started, 2), **teacher_usage(units),
            "episodes_generated": sum(len(t["seeds"]) for t in units),
            "log": str(trial_dir / "logs" / f"train_{method}.log")}
