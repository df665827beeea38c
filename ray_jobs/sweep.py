"""Run many independent trials on Ray, each with its own resources; resumable, one failure stops nothing.

Generic: a trial is a name, a folder, a payload and a resource request; the body is any importable
function `body(payload) -> dict` (the caller's, e.g. `launch.study_trial.run_trial`). Each trial's
outcome is a marker file in its folder, written by the driver only:

    <trial dir>/result.json   finished: the body's dict (a rerun skips the trial)
    <trial dir>/error.json    failed: the error, its traceback and the trial's log path (a rerun retries)

A trial task reserves `num_cpus` / `num_gpus` for its whole life (Ray sets CUDA_VISIBLE_DEVICES to its
GPUs), so N trials run at once where N sets of resources fit. The body must not wait for other Ray
resources (actors) it cannot get while trials hold the CPUs: evaluate in-process.
"""

from __future__ import annotations

import json
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ray_jobs.cluster import ensure_ray

RESULT_NAME, ERROR_NAME = "result.json", "error.json"


@dataclass
class SweepItem:
    name: str
    folder: Path
    payload: dict[str, Any]
    num_cpus: float = 1.0
    num_gpus: float = 0.0
    log_path: Path | None = None  # where the body writes its log (quoted in error.json)


@dataclass
class SweepOutcome:
    finished: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> result (this run)
    skipped: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> result of an earlier run
    failed: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> error record


def _write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str))
    tmp.replace(path)  # a kill mid-write leaves no half marker that a rerun would trust


def finished_result(folder: Path) -> dict[str, Any] | None:
    """The result an earlier run recorded for this trial, or None when it must run (again)."""
    path = Path(folder) / RESULT_NAME
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        return None  # unreadable marker: run the trial again rather than report garbage


def record_success(item: SweepItem, result: dict[str, Any]) -> None:
    (item.folder / ERROR_NAME).unlink(missing_ok=True)
    _write_json_atomic(item.folder / RESULT_NAME, result)


def record_failure(item: SweepItem, error: str, trace: str) -> dict[str, Any]:
    record = {"name": item.name, "error": error, "traceback": trace,
              "log": str(item.log_path) if item.log_path else None, "time": time.strftime("%Y-%m-%d %H:%M:%S")}
    _write_json_atomic(item.folder / ERROR_NAME, record)
    return record


def run_local(item: SweepItem, body: Callable[[dict[str, Any]], dict[str, Any]]) -> dict[str, Any] | None:
    """One trial in this process (a SLURM array task, or a debug run): its marker, its result or None."""
    try:
        result = body(item.payload)
    except Exception as exc:  # noqa: BLE001  (any trial error is recorded, never lost)
        record_failure(item, f"{type(exc).__name__}: {exc}", traceback.format_exc())
        return None
    record_success(item, result)
    return result


def _failure_text(exc: BaseException) -> tuple[str, str]:
    """(one-line error, remote traceback) of a task's exception: Ray's RayTaskError carries the
    worker's traceback in its text and the original exception as `cause`."""
    cause = getattr(exc, "cause", None) or exc
    return f"{type(cause).__name__}: {cause}", str(exc)


def run_sweep(items: list[SweepItem], body: Callable[[dict[str, Any]], dict[str, Any]], ray_cfg: Any,
              on_done: Callable[[str, dict[str, Any] | None, dict[str, Any] | None], None] | None = None
              ) -> SweepOutcome:
    """Run every item without a result marker as a Ray task; `on_done(name, result, error)` per trial."""
    outcome = SweepOutcome()
    todo = []
    for item in items:
        previous = finished_result(item.folder)
        if previous is not None:
            outcome.skipped[item.name] = previous
        else:
            todo.append(item)
    if not todo:
        return outcome
    import ray

    ensure_ray(ray_cfg)
    remote = ray.remote(max_retries=0)(body)  # a failed trial is recorded, not silently re-run
    pending = {remote.options(num_cpus=item.num_cpus, num_gpus=item.num_gpus, name=item.name)
               .remote(item.payload): item for item in todo}
    while pending:
        [ref], _ = ray.wait(list(pending), num_returns=1)
        item = pending.pop(ref)
        try:
            result = ray.get(ref)
        except Exception as exc:  # noqa: BLE001  (RayTaskError, worker death, ...)
            error, trace = _failure_text(exc)
            outcome.failed[item.name] = record_failure(item, error, trace)
            if on_done:
                on_done(item.name, None, outcome.failed[item.name])
            continue
        record_success(item, result)
        outcome.finished[item.name] = result
        if on_done:
            on_done(item.name, result, None)
    return outcome
