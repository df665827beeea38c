"""The training section made concrete for one launch: resolved once, by the launcher, and never again.

`resolve_training` turns what a person wrote (`TrainingConfig`: a ZeRO stage, maybe an override
DeepSpeed file, a batch said as a global size or an accumulation) into `ResolvedTraining`: the
world size, the accumulation steps, the rows per optimizer step, and the DeepSpeed JSON itself as a
dict. The launcher writes it into the job file (training/job.py); the training processes read that
object and derive nothing from the YAML again.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import ConfigDict

from configs.base import StrictModel
from configs.loader import ConfigError
from configs.training_schema import TrainingConfig, accumulation_steps, resolve_deepspeed_config


class ResolvedTraining(StrictModel):
    """One launch's training settings with every choice made: nothing left to derive in a process."""

    model_config = ConfigDict(frozen=True)

    settings: TrainingConfig  # as written (lr, schedule, seed, resume ...): the loop reads these as they are
    world_size: int
    accumulation: int  # micro-batches per optimizer step on each process
    rows_per_step: int  # per_device_batch_size x accumulation x world_size
    zero_stage: int | None  # None: this launch runs without DeepSpeed
    deepspeed: dict[str, Any] | None  # the DeepSpeed JSON, micro-batch filled in; None without DeepSpeed
    deepspeed_source: str | None  # the file it was read from, for messages
    zero3_init: bool = False  # partition parameters while the model loads (ZeRO-3 on GPUs)

    @property
    def micro_batch(self) -> int:
        return self.settings.per_device_batch_size

    def describe(self) -> str:
        engine = f"ZeRO-{self.zero_stage} ({self.deepspeed_source})" if self.deepspeed is not None else "no DeepSpeed"
        return (f"{engine}, {self.world_size} process(es) x micro-batch {self.micro_batch} x accumulation "
                f"{self.accumulation} = {self.rows_per_step} rows per step")


def read_deepspeed_file(path: Path) -> dict[str, Any]:
    try:
        ds = json.loads(Path(path).read_text())
    except json.JSONDecodeError as err:
        raise ConfigError(f"DeepSpeed config {path} is not valid JSON: {err}") from None
    if not isinstance(ds, dict):
        raise ConfigError(f"DeepSpeed config {path} must be a JSON object")
    return ds


def check_stage_agrees(cfg: TrainingConfig, ds: dict[str, Any], source: Path) -> None:
    """`zero_stage` is the one place the stage is said; an override file must say the same."""
    stage = int((ds.get("zero_optimization") or {}).get("stage", 0))
    if stage != cfg.zero_stage:
        said = "" if "zero_stage" in cfg.model_fields_set else " (the default)"
        raise ConfigError(f"training.deepspeed_config={cfg.deepspeed_config!r} ({source}) runs ZeRO stage {stage} "
                          f"but training.zero_stage is {cfg.zero_stage}{said}; set training.zero_stage: {stage}, "
                          f"or pick a DeepSpeed file of stage {cfg.zero_stage}")


def resolve_training(cfg: TrainingConfig, *, deepspeed: bool, zero3_init: bool = False,
                     world_size: int | None = None) -> ResolvedTraining:
    """The concrete settings of one launch of `world_size` processes (default training.num_processes).

    `deepspeed` says whether the launch runs DeepSpeed (the Accelerate config's choice, or always under
    Ray Train; never in-process); only then is the DeepSpeed file read, once.
    """
    world = world_size or cfg.num_processes
    try:
        accumulation = accumulation_steps(cfg, world)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    ds, source, stage = None, None, None
    if deepspeed:
        path = resolve_deepspeed_config(cfg)
        ds = read_deepspeed_file(path)
        check_stage_agrees(cfg, ds, path)
        if ds.get("train_micro_batch_size_per_gpu", "auto") == "auto":
            # We feed micro-batches ourselves (no prepared DataLoader for Accelerate to infer it from).
            ds["train_micro_batch_size_per_gpu"] = cfg.per_device_batch_size
        source, stage = str(path), cfg.zero_stage
    return ResolvedTraining(settings=cfg, world_size=world, accumulation=accumulation,
                            rows_per_step=cfg.per_device_batch_size * accumulation * world, zero_stage=stage,
                            deepspeed=ds, deepspeed_source=source, zero3_init=bool(deepspeed and zero3_init))
