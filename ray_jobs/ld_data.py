"""Logic Distillation's data stage: the function base, then the teacher's demonstrations on Ray.

Both ask the teacher through the run's teacher services (one limiter, cache and meter); the stage reads
and writes only files under the run directory, and a rerun skips what is already there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from configs.schema import RunConfig
from generation.ld.envs.registry import make_env
from generation.ld.functions.function_base import sample_states
from generation.storage.checksums import IntegrityError, seal_file, verify_file
from generation.storage.tracking import Tracker
from ray_jobs.stages import StageError, console
from ray_jobs.teacher_services import teacher_services


def write_function_base(cfg: RunConfig, run_dir: Path, tracker: Tracker, hooks: Any = None) -> Path:
    """Ask the teacher for the function base through the teacher service (the run's limiter, cache and
    meter when `hooks` reach them); keep what passes sandbox validation."""
    from generation.ld.functions.function_base import build_function_base
    from generation.ld.functions.parse_base import parse_function_base_reply
    from generation.ld.prompts import function_base_messages
    from generation.ld.workers import teacher_service
    from generation.storage.shards import write_json, write_shard
    from generation.teachers.base import TeacherRequest
    from generation.teachers.service import Ask
    from ray_jobs.generate import FUNCTION_BASE_USAGE

    path = run_dir / "function_base.json"
    if path.exists():
        check_function_base(path)
        return path
    env = make_env(cfg.task)
    request = TeacherRequest(messages=function_base_messages(env.name, env.rules_text(), env.stages),
                             request_id="function-base", max_tokens=max(4096, cfg.teacher.max_tokens),
                             metadata={"stage": "function_base"})
    service = teacher_service(cfg, hooks, max_reasks=cfg.generation.max_reasks)
    try:
        [answer] = service.ask([Ask(request, parse=parse_function_base_reply, stage="function_base")])
        service.meter.push()  # the run's live figures include this request before the demonstrations start
        usage = service.usage
    finally:
        service.close()
    write_json(usage, run_dir / "data" / FUNCTION_BASE_USAGE)
    if not answer.ok:
        raise StageError(f"the teacher could not write the function base ({answer.rejection.reason_kind}, "
                         f"{answer.asks} asks): {answer.rejection.reason}")
    reply = answer.reply
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


def generate(cfg: RunConfig, run_dir: Path, tracker: Tracker, services: Any = None) -> dict[str, Any]:
    from ray_jobs.generate import run_generation

    own = services is None
    services = services or teacher_services(cfg, run_dir)
    try:
        since = services.totals()
        base_path = write_function_base(cfg, run_dir, tracker, services.hooks)
        env = make_env(cfg.task)
        summary = run_generation(cfg, base_path, run_dir / "data", env.train_seeds(cfg.generation.train_episodes),
                                 tracker=tracker, services=services, usage_since=since)
    finally:
        if own:
            services.stop()
    tracker.log({f"generation/{k}": v for k, v in summary.items() if not isinstance(v, list)})
    console.print(f"demonstrations: {summary['episodes']} episodes ({summary['teacher_wins']} won), "
                  f"{summary['stage_records']} stage decisions")
    return summary
