"""Learn-to-Reason teacher feedback, committed exactly once: the warm-up's rationales and every round's
tailored (or plain) feedback, asked through the one teacher service with the run's shared services.

    with LtrTeacher(cfg, run_dir) as teacher:
        summary = teacher.write_feedback(items, round_index, exam_name, folder, stage="ltr_feedback")

One `TeacherServices` per `logic-distill ltr` command (started when the first batch needs the teacher;
cache at `<run_dir>/data/teacher_cache.sqlite`, the rate limiter when `teacher.limits` is set) serves
every arm and round. A batch is cut into units of `feedback.requests_per_unit` requests; each unit's
rows and rejections are written as shards in the batch's folder, then committed by one manifest line
(`generation/storage/shards.py`). A rerun skips committed units and reads their rows back from the
manifest's shards; the unit a kill cut off is asked again and the cache answers what was already paid.

Where it runs: on the driver, one unit at a time, `teacher.concurrency` requests in flight. The requests
are independent and I/O-bound, so one event loop keeps the configured concurrency busy; Ray actors would
add start-up and pickling and no throughput. The limiter is still the cluster-wide actor (hooks).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from generation.ltr.feedback import FeedbackRequest, collect, feedback_asks, ltr_teacher_service
from generation.storage.shards import Manifest, commit_unit, plan_units, shard_paths
from ray_jobs.generation_progress import GenerationProgress
from ray_jobs.stages import StageError

FIGURES = ("teacher_requests", "rejected", "train_rows", "triplets", "teacher_cost_usd", "teacher_input_tokens",
           "teacher_output_tokens")
# what the invocation that committed a unit paid for, took from the cache and re-asked
USAGE = {"requests": "teacher_paid_requests", "cache_hits": "teacher_cache_hits", "reasks": "teacher_reasks"}


def feedback_shards(folder: Path) -> list[Path]:
    """The committed `rows-*.parquet` shards of a feedback batch (checksums verified)."""
    return shard_paths(folder, "rows")


def batch_summary(manifest: Manifest) -> dict[str, Any]:
    """The batch's figures summed over its committed units (the same for a fresh and a resumed batch)."""
    entries = list(manifest.entries.values())
    summary: dict[str, Any] = {key: sum(e["stats"][key] for e in entries) for key in FIGURES}
    summary.update({name: sum(e["usage"][key] for e in entries) for key, name in USAGE.items()})
    summary["units"] = len(entries)
    return summary


class LtrTeacher:
    """The run's teacher: its `TeacherServices` and the driver's `TeacherService`, both made on first use."""

    def __init__(self, cfg: Any, run_dir: Path):
        self.cfg, self.run_dir = cfg, Path(run_dir)
        self.services = None
        self._service = None

    def service(self):
        if self._service is None:
            from ray_jobs.teacher_services import teacher_services

            self.services = teacher_services(self.cfg, self.run_dir)
            self._service = ltr_teacher_service(self.cfg.teacher, self.services.hooks, self.cfg.feedback.max_reasks)
        return self._service

    def write_feedback(self, items: list[FeedbackRequest], round_index: int, exam_name: str, folder: Path,
                       stage: str) -> dict[str, Any]:
        """Every unit of the batch committed in `folder` (those already committed skipped); the batch's figures."""
        folder.mkdir(parents=True, exist_ok=True)
        manifest = Manifest(folder)
        units = plan_units(items, self.cfg.feedback.requests_per_unit)
        todo = [(i, unit) for i, unit in units if not manifest.done(i, _ids(unit))]
        # the same live panel as every teacher-data job; figures from the driver's own meter, where every LtR
        # request is asked (the stats hub, an async actor, may apply the last push after a query)
        with GenerationProgress(len(units), len(units) - len(todo), title=f"LtR feedback {folder.name}") as progress:
            for n, (index, unit) in enumerate(todo, 1):
                service = self.service()
                service.begin()
                answers = service.ask(feedback_asks(unit, stage))
                rows, rejections, stats = collect(unit, answers, round_index, exam_name)
                usage = service.usage
                commit_unit(folder, index, _ids(unit), {"rows": rows, "rejections": rejections},
                            info={"stats": stats, "usage": {key: usage[key] for key in USAGE}}, manifest=manifest)
                service.meter.push()  # the stats hub (run totals) sees the unit before the next starts
                progress.update(service.meter.snapshot(), len(units) - len(todo) + n)
        summary = batch_summary(manifest)
        if not summary["train_rows"]:
            raise StageError(f"feedback on {exam_name}: no usable teacher rationale ({summary['rejected']} "
                             f"rejected, see {folder}); see the teacher settings")
        return summary

    def close(self) -> None:
        if self._service is not None:
            self._service.close()
            self.services.stop()
            self._service = self.services = None

    def __enter__(self) -> LtrTeacher:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _ids(unit: list[FeedbackRequest]) -> list[str]:
    return [item.request.request_id for item in unit]
