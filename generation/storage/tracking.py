"""Experiment tracking: W&B (offline by default) plus a JSON-lines side log that tests and reports can read.

wandb has no public reader for `.wandb` files, so every logged scalar is also appended to
`<run_dir>/metrics/<job>.jsonl`. Only the process that owns the run (rank 0) creates a Tracker.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from configs.tracking_schema import WandbConfig
from generation.storage.secrets import redact_data, secret_values


class Tracker:
    """One W&B run per job, continued (not duplicated) when the job resumes with the same run id."""

    def __init__(self, run_dir: str | Path, cfg: WandbConfig, job: str, config: dict | None = None,
                 run_id: str | None = None) -> None:
        self.run_dir = Path(run_dir)
        self.job = job
        self.side_log = self.run_dir / "metrics" / f"{job}.jsonl"
        self.side_log.parent.mkdir(parents=True, exist_ok=True)
        self._run = None
        # Nothing a tracker writes (config, strings, tables) may carry an API key.
        self._secrets = secret_values(config)
        config = redact_data(config or {}, self._secrets)
        if cfg.mode != "disabled":
            import wandb

            os.environ.setdefault("WANDB_SILENT", "true")
            self._run = wandb.init(
                project=cfg.project, entity=cfg.entity, group=cfg.group or self.run_dir.name,
                name=f"{self.run_dir.name}-{job}", job_type=job, dir=str(self.run_dir),
                mode=cfg.mode, config=config or {}, id=run_id, resume="allow" if run_id else None,
                reinit="finish_previous",
            )

    @property
    def run_id(self) -> str | None:
        return self._run.id if self._run is not None else None

    def log(self, metrics: dict[str, Any], step: int | None = None) -> None:
        metrics = redact_data(metrics, self._secrets)
        row = {k: v for k, v in metrics.items() if isinstance(v, (int, float, str, bool))}
        with self.side_log.open("a") as fh:
            fh.write(json.dumps({"step": step, **row}) + "\n")
        if self._run is not None:
            self._run.log(metrics, step=step)

    def log_table(self, name: str, columns: list[str], rows: list[list[Any]]) -> None:
        """A table of rows (e.g. sample decisions); also written as JSON beside the side log."""
        path = self.side_log.parent / f"{self.job}-{name}.json"
        rows = redact_data(rows, self._secrets)
        path.write_text(json.dumps({"columns": columns, "rows": rows}, indent=1, default=str))
        if self._run is not None:
            import wandb

            self._run.log({name: wandb.Table(columns=columns, data=rows)})

    def log_image(self, name: str, path: str | Path) -> None:
        if self._run is not None:
            import wandb

            self._run.log({name: wandb.Image(str(path))})

    def summary(self, values: dict[str, Any]) -> None:
        if self._run is not None:
            self._run.summary.update(redact_data(values, self._secrets))

    def finish(self) -> None:
        if self._run is not None:
            self._run.finish()
            self._run = None


def read_side_log(run_dir: str | Path, job: str) -> list[dict[str, Any]]:
    """The rows a Tracker logged for `job`, in order."""
    path = Path(run_dir) / "metrics" / f"{job}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
