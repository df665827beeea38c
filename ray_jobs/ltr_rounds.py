"""Learn-to-Reason distribution: exams and held-out evaluations over Ray workers, and the stage log
that lets a run of rounds resume at the last finished stage.

Each stage (warm-up, an exam, a feedback batch, a round's training, an evaluation) writes its outputs
first and its marker `<run_dir>/stages/<name>.json` (its summary) last, atomically. A rerun of the
same run directory skips every stage with a marker and redoes the one that was cut off (a feedback
stage keeps the units it committed: `ray_jobs/ltr_feedback.py`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from generation.ltr.exam import ExamWorker
from generation.ltr.records import ExamRecord
from generation.storage.shards import write_json
from ray_jobs.cluster import ensure_ray


class StageLog:
    def __init__(self, run_dir: Path) -> None:
        self.directory = Path(run_dir) / "stages"
        self.directory.mkdir(parents=True, exist_ok=True)

    def _path(self, name: str) -> Path:
        return self.directory / f"{name.replace('/', '__')}.json"

    def done(self, name: str) -> dict | None:
        path = self._path(name)
        return json.loads(path.read_text()) if path.is_file() else None

    def mark(self, name: str, summary: dict[str, Any]) -> dict:
        write_json(summary, self._path(name))
        return summary

    def run(self, name: str, stage: Callable[[], dict[str, Any]], on_skip: Callable[[str], None] | None = None
            ) -> dict:
        """The stage's summary: from its marker when it already ran, else by running it now."""
        summary = self.done(name)
        if summary is not None:
            if on_skip:
                on_skip(name)
            return summary
        return self.mark(name, stage())

    def finished(self) -> list[str]:
        return sorted(p.stem.replace("__", "/") for p in self.directory.glob("*.json"))


def _chunks(items: list, parts: int) -> list[list]:
    return [chunk for chunk in (items[i::parts] for i in range(parts)) if chunk]


def exam_chunk(checkpoint: str, max_new_tokens: int, batch_size: int, items: list[dict], exam: str,
               round_index: int, k: int, temperature: float, seed: int) -> list[dict]:
    """One worker's share of an exam (a Ray task: workers are reused, so torch is imported once per run)."""
    return ExamWorker(checkpoint, max_new_tokens, batch_size).run(items, exam, round_index, k, temperature, seed)


def run_exam(ray_cfg, exam_cfg, checkpoint: str | Path, items: list[dict], exam: str, round_index: int,
             k: int, temperature: float, seed: int) -> list[ExamRecord]:
    """Every item answered k times by the checkpoint, the items spread over `exam_cfg.num_workers` tasks."""
    import ray

    ensure_ray(ray_cfg)
    task = ray.remote(num_cpus=1, max_retries=0)(exam_chunk)
    chunks = _chunks(items, exam_cfg.num_workers)
    parts = ray.get([task.remote(str(checkpoint), exam_cfg.max_new_tokens, exam_cfg.batch_size, chunk, exam,
                                 round_index, k, temperature, seed + i) for i, chunk in enumerate(chunks)])
    order = {item["uid"]: i for i, item in enumerate(items)}
    rows = sorted((r for part in parts for r in part), key=lambda r: (order[r["question_id"]], r["sample_id"]))
    return [ExamRecord.model_validate(r) for r in rows]


def accuracy(records: list[ExamRecord]) -> float:
    """Share of correct samples (with k = 1 greedy samples: the share of questions solved)."""
    return sum(r.correct for r in records) / max(len(records), 1)


def solved_share(records: list[ExamRecord]) -> float:
    """Share of questions with at least one correct sample."""
    by_question: dict[str, bool] = {}
    for r in records:
        by_question[r.question_id] = by_question.get(r.question_id, False) or r.correct
    return sum(by_question.values()) / max(len(by_question), 1)
