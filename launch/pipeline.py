"""The Logic Distillation pipeline as stages: function base -> demonstrations -> students -> evaluation.

Each stage reads and writes only files under the run directory, so `generate`, `train` and
`evaluate` can run separately (even on other machines) and a rerun skips what is already there.
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from configs.loader import save_resolved
from configs.schema import RunConfig
from generation.storage.checksums import (CHECKSUMS_NAME, IntegrityError, seal_directory, seal_file, verify_directory,
                                  verify_file)
from generation.ld.envs.registry import make_env
from generation.storage.tracking import Tracker

console = Console(soft_wrap=True)  # paths are printed whole, never wrapped


class StageError(RuntimeError):
    """A stage cannot run or finish; the message says what is missing and where."""


METHOD_DATA = {"ld": "ld", "kd": "kd"}  # student -> shard prefix


def new_run_dir(cfg: RunConfig) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path(cfg.run.output_dir) / f"{cfg.run.name}-{stamp}"


def sample_states(env, seeds: list[int], steps: int = 3) -> list[dict]:
    """Varied states to validate functions on: each seed's start and a few random moves later."""
    states = []
    for seed in seeds:
        env.reset(seed, env.sample_instruction(seed))
        states.append(env.state())
        rng = random.Random(seed)
        for _ in range(steps):
            if env.step(env.random_legal_decision(rng)).done:
                break
        if not env.episode_metrics()["done"]:
            states.append(env.state())
    return states


def write_function_base(cfg: RunConfig, run_dir: Path, tracker: Tracker) -> Path:
    """Ask the teacher for the function base; keep what passes sandbox validation."""
    from generation.ld.functions.function_base import build_function_base
    from generation.ld.prompts import function_base_messages
    from generation.storage.records import FunctionRecord
    from generation.storage.shards import write_shard
    from generation.teachers.base import TeacherRequest
    from generation.ld.workers import build_teacher_policy

    path = run_dir / "function_base.json"
    if path.exists():
        check_function_base(path)
        return path
    env = make_env(cfg.task)
    policy = build_teacher_policy(cfg, tag="base")
    request = TeacherRequest(messages=function_base_messages(env.name, env.rules_text(), env.stages),
                             request_id="function-base", max_tokens=max(4096, cfg.teacher.max_tokens))
    try:
        [reply] = policy.complete([request])
    finally:
        policy.close()
    if not hasattr(reply, "text"):
        raise StageError(f"the teacher could not write the function base: {reply}")
    states = sample_states(env, env.train_seeds(4))
    base, records = build_function_base(reply.text, env.stages, states, cfg.sandbox, env.check_stage_output,
                                        reply.request_id)
    write_shard(records, run_dir / "data" / "functions.parquet")
    rejected = [r for r in records if not r.accepted]
    for r in rejected:
        console.print(f"[yellow]rejected function {r.name}: {'; '.join(r.reasons)}")
    missing = [s for s in env.stages if not any(f.stage == s for f in base.functions.values())]
    if missing:
        raise StageError(f"no valid function for stage(s) {missing}; see {run_dir / 'data' / 'functions.parquet'}")
    base.save(path)
    seal_file(path)
    tracker.log({"functions_accepted": len(base.functions), "functions_rejected": len(rejected)})
    console.print(f"function base: {len(base.functions)} accepted, {len(rejected)} rejected -> {path}")
    return path


def check_function_base(path: Path) -> None:
    """Refuse a function base changed or cut short since it was written (its `.sha256` sidecar)."""
    if not path.exists():
        raise StageError(f"no function base at {path}: run `generate` first")
    try:
        verify_file(path)
    except IntegrityError as exc:
        raise StageError(f"{exc}. The demonstrations in {path.parent / 'data'} were made with the original: "
                         f"restore it, or delete it and that folder and rerun `generate`") from None


def check_checkpoint(checkpoint: Path) -> None:
    """Refuse an exported student whose files no longer match its `checksums.json`."""
    try:
        verify_directory(checkpoint)
    except IntegrityError as exc:
        raise StageError(f"student checkpoint {checkpoint} is corrupt: {exc}. Delete {checkpoint} and rerun "
                         f"`logic-distill train --run-dir {checkpoint.parent.parent}` to retrain it") from None


def generate(cfg: RunConfig, run_dir: Path, tracker: Tracker) -> dict[str, Any]:
    from ray_jobs.generate import run_generation

    base_path = write_function_base(cfg, run_dir, tracker)
    env = make_env(cfg.task)
    summary = run_generation(cfg, base_path, run_dir / "data", env.train_seeds(cfg.generation.train_episodes),
                             tracker=tracker)
    tracker.log({f"generation/{k}": v for k, v in summary.items() if not isinstance(v, list)})
    console.print(f"demonstrations: {summary['episodes']} episodes ({summary['teacher_wins']} won), "
                  f"{summary['stage_records']} stage decisions")
    return summary


def _corpus(run_dir: Path) -> list[str]:
    from generation.storage.records import RawActionRecord, StageDecisionRecord
    from generation.storage.shards import read_records, shard_paths

    data = run_dir / "data"
    records = read_records(shard_paths(data, "ld"), StageDecisionRecord) + \
        read_records(shard_paths(data, "kd"), RawActionRecord)
    return [t for r in records for t in (r.prompt, r.completion)]


STUDENT_SETTINGS_NAME = "student_settings.json"


def record_student_settings(init: Path, student) -> None:
    """Write the `student` settings the initial student was built with next to it."""
    import json

    (init / STUDENT_SETTINGS_NAME).write_text(json.dumps(student.model_dump(mode="json"), sort_keys=True, indent=1))


def check_student_settings(init: Path, student) -> None:
    """Refuse to reuse an initial student built with other `student` settings (a rerun would otherwise
    fine-tune the old tokenizer and size and report them under the new config). Runs made before the
    settings were recorded are not checked."""
    import json

    path = init / STUDENT_SETTINGS_NAME
    if not path.exists():
        return
    built = json.loads(path.read_text())
    wanted = student.model_dump(mode="json")
    changed = {k: (built.get(k), wanted.get(k)) for k in sorted(set(built) | set(wanted)) if built.get(k) != wanted.get(k)}
    if changed:
        said = ", ".join(f"student.{k}: built with {old!r}, config asks for {new!r}" for k, (old, new) in changed.items())
        raise StageError(f"the students in {init.parent} were built with other settings ({said}). Use a new "
                         f"--run-dir, or delete {init.parent} to rebuild them (the demonstrations are kept)")


def train_students(cfg: RunConfig, run_dir: Path, methods: list[str]) -> dict[str, Path]:
    """Build the initial student once (tokenizer trained on the corpus), then fine-tune one per method."""
    from generation.storage.shards import shard_paths
    from launch.train_launcher import run_training
    from training.student_builder import build_student

    init = run_dir / "students" / "init"
    if not (init / "config.json").exists():
        build_student(cfg.student, _corpus(run_dir), init, seed=cfg.run.seed)
        record_student_settings(init, cfg.student)
    check_student_settings(init, cfg.student)
    out = {}
    for method in methods:
        target = run_dir / "students" / method
        if not (target / "config.json").exists():
            shards = shard_paths(run_dir / "data", METHOD_DATA[method])
            if not shards:
                raise StageError(f"no {method} training shards in {run_dir / 'data'}: run `generate` first")
            console.rule(f"training the {method.upper()} student")
            run_training(run_dir / "config.resolved.yaml", shards, init, target, run_dir, f"train_{method}")
        if not (target / CHECKSUMS_NAME).exists():
            seal_directory(target)  # evaluation verifies these before it loads the weights
        out[method] = target
    return out


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


def evaluate(cfg: RunConfig, run_dir: Path, tracker: Tracker) -> dict[str, Any]:
    import json

    from launch.report import by_kind_table, markdown_table, plot_results, write_results
    from ray_jobs.evaluate import EvaluationFailed, evaluate_policies

    env = make_env(cfg.task)
    seeds = env.heldout_seeds(cfg.eval.episodes)
    check_function_base(run_dir / "function_base.json")
    try:
        per_policy = evaluate_policies(cfg, str(run_dir / "function_base.json"), policy_specs(cfg, run_dir), seeds)
    except EvaluationFailed as exc:
        raise StageError(str(exc)) from None
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


def run_all(cfg: RunConfig, run_dir: Path) -> dict[str, Any]:
    """The whole pipeline; prints the results table and the run directory."""
    run_dir.mkdir(parents=True, exist_ok=True)
    save_resolved(cfg, run_dir)
    console.print(f"run directory: [bold]{run_dir}")
    tracker = Tracker(run_dir, cfg.wandb, "pipeline", config=cfg.model_dump(mode="json"))
    try:
        started = time.perf_counter()
        generate(cfg, run_dir, tracker)
        methods = list(dict.fromkeys(p.split("_")[0] for p in cfg.eval.policies if "_student" in p))
        if methods:
            train_students(cfg, run_dir, methods)
        results = evaluate(cfg, run_dir, tracker)
        tracker.log({"wall_time_s": time.perf_counter() - started})
    finally:
        tracker.finish()
    console.print((run_dir / "results.md").read_text())
    console.print(f"results: {run_dir / 'results.json'}  plot: {run_dir / 'results.png'}")
    console.print(f"run directory: [bold]{run_dir}")
    return results
