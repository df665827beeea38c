"""Logic Distillation's evaluation stage: every policy on the same held-out episodes, on Ray; results as
JSON, Markdown tables, a PNG plot and W&B entries."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from configs.schema import RunConfig
from generation.ld.envs.registry import make_env
from generation.storage.checksums import IntegrityError, verify_directory
from generation.storage.tracking import Tracker
from ray_jobs.ld_data import check_function_base
from ray_jobs.teacher_services import teacher_services
from ray_jobs.stages import StageError


def check_checkpoint(checkpoint: Path) -> None:
    """Refuse an exported student whose files no longer match its `checksums.json`."""
    try:
        verify_directory(checkpoint)
    except IntegrityError as exc:
        raise StageError(f"student checkpoint {checkpoint} is corrupt: {exc}. Delete {checkpoint} and rerun "
                         f"`logic-distill train --run-dir {checkpoint.parent.parent}` to retrain it") from None


def policy_specs(cfg: RunConfig, run_dir: Path) -> dict[str, dict[str, Any]]:
    from generation.ld.policies.majority import MajorityPolicy
    from generation.storage.records import StageDecisionRecord
    from generation.storage.shards import read_records, shard_paths

    specs: dict[str, dict[str, Any]] = {}
    for name in cfg.eval.policies:
        if name == "teacher":
            specs[name] = {"kind": "teacher"}
        elif name == "majority":
            records = read_records(shard_paths(run_dir / "data", "ld"), StageDecisionRecord)
            specs[name] = {"kind": "majority",
                           "completion_per_stage": MajorityPolicy.from_records(records).completion_per_stage}
        else:
            method = name.split("_")[0]
            checkpoint = run_dir / "students" / method
            if not (checkpoint / "config.json").exists():
                raise StageError(f"{name}: no trained checkpoint at {checkpoint}; run `train` first")
            check_checkpoint(checkpoint)
            # ld_student_no_runtime: the same LD student, but emergencies get no new functions
            specs[name] = {"kind": "hf", "mode": "select" if method == "ld" else "action",
                           "checkpoint": str(checkpoint), "runtime_functions": not name.endswith("_no_runtime")}
    return specs


def _sample_rows(per_policy: dict[str, dict[str, Any]]) -> list[list[Any]]:
    rows = []
    for name, res in per_policy.items():
        episode = next((e for e in res["episodes"] if e["trace"]), None)
        for t in (episode["trace"] if episode else []):
            rows.append([name, episode["seed"], episode["instruction"], t["step"], t["stage"], t["candidates"],
                         t["reply"], t["outcome"]])
    return rows


def _runtime_use(episodes: list[dict[str, Any]]) -> dict[str, float]:
    """Among episodes that got run-time (emergency) functions: the share whose policy called one."""
    offered = [e for e in episodes if e.get("runtime_functions")]
    if not offered:
        return {}
    return {"runtime_use_rate": sum(e["runtime_calls"] > 0 for e in offered) / len(offered)}


def _breakdowns(env, res: dict[str, Any]) -> dict[str, Any]:
    """Results per value of each of the env's breakdown keys (`by_kind`, `by_emergency`, ...)."""
    from generation.ld.envs.base import aggregate_by

    return {f"by_{key}": res["by_kind"] if key == "kind" else aggregate_by(res["episodes"], key)
            for key in env.breakdown_keys}


def evaluate(cfg: RunConfig, run_dir: Path, tracker: Tracker, services: Any = None) -> dict[str, Any]:
    import json

    from ray_jobs.report import by_kind_table, markdown_table, plot_results, write_results
    from ray_jobs.evaluate import EvaluationFailed, evaluate_policies

    env = make_env(cfg.task)
    seeds = env.heldout_seeds(cfg.eval.episodes)
    check_function_base(run_dir / "function_base.json")
    own = services is None
    services = services or teacher_services(cfg, run_dir)
    try:
        per_policy = evaluate_policies(cfg, str(run_dir / "function_base.json"), policy_specs(cfg, run_dir), seeds,
                                       services.hooks)
    except EvaluationFailed as exc:
        raise StageError(str(exc)) from None
    finally:
        if own:
            services.stop()
    (run_dir / "eval").mkdir(exist_ok=True)
    for name, res in per_policy.items():
        with (run_dir / "eval" / f"episodes-{name}.jsonl").open("w") as fh:
            fh.writelines(json.dumps(e) + "\n" for e in res["episodes"])
        res["metrics"].update(_runtime_use(res["episodes"]))
        tracker.log({f"eval/{name}/{k}": v for k, v in res["metrics"].items() if v is not None})
    results = {name: {**res["metrics"], **_breakdowns(env, res)} for name, res in per_policy.items()}
    write_results(run_dir, results, {"run_dir": str(run_dir), "heldout_seeds": [seeds[0], seeds[-1]]})
    plot = plot_results(results, run_dir / "results.png", f"{env.name}: Logic Distillation")
    sections = [markdown_table(results)]
    for key in env.breakdown_keys:
        label = "instruction kind" if key == "kind" else key
        table = by_kind_table({n: r[f"by_{key}"] for n, r in results.items()})
        sections.append(f"Success rate by {label}:\n\n{table}")
    (run_dir / "results.md").write_text("\n\n".join(sections) + "\n")
    tracker.log_table("sample_decisions", ["policy", "seed", "instruction", "step", "stage", "candidates",
                                           "reply", "outcome"], _sample_rows(per_policy))
    tracker.log_image("results_plot", plot)
    tracker.summary({f"{n}/{k}": v for n, m in results.items() for k, v in m.items() if not isinstance(v, dict)})
    return results
