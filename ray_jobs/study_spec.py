"""A study's trials, from its axes: expansion, names, each trial's run config, and shared data groups.

Pure (no Ray, no torch): `expand_study` turns `grid` (crossed) x `zip` (varied together) into trials
named after what they are (`ld-tiny-d400-s0`), and `plan_data_groups` finds the trials that can
train on the same teacher data, so the teacher is asked once per group for its largest data size.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from configs.loader import ConfigError, apply_override, validate_config
from configs.schema import RunConfig
from configs.study_schema import StudyConfig
from configs.training_schema import available_presets

# Generation knobs that change how the work is spread, not which records come out.
NOT_DATA = ("train_episodes", "num_actors", "actor_num_cpus", "episodes_per_unit", "progress", "log_every_s",
            "cache", "unit_retries")


@dataclass(frozen=True)
class Trial:
    name: str
    method: str
    student: str  # preset name or checkpoint directory
    data_size: int  # training episodes
    seed: int
    extra: dict[str, Any] = field(default_factory=dict)  # dotted run-config keys set by other axes

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "method": self.method, "student": self.student, "data_size": self.data_size,
                "seed": self.seed, **self.extra}


def load_base_raw(study: StudyConfig, study_path: Path | None = None) -> dict:
    """The base run config as a raw mapping (YAML + overrides), before any axis is applied."""
    raw: dict = {}
    if study.base.config:
        path = Path(study.base.config)
        if not path.is_absolute() and not path.exists() and study_path is not None:
            path = study_path.parent / path
        if not path.is_file():
            raise ConfigError(f"base.config: run config not found: {study.base.config}")
        raw = yaml.safe_load(path.read_text()) or {}
    for key, value in flatten_keys(study.base.overrides):
        apply_override(raw, key.split("."), value)
    return raw


def flatten_keys(mapping: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """{'training': {'epochs': 2}} and {'training.epochs': 2} both -> [('training.epochs', 2)]: a nested
    override merges into its section instead of replacing it."""
    out = []
    for key, value in mapping.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out += flatten_keys(value, f"{dotted}.")
        else:
            out.append((dotted, value))
    return out


def axis_points(grid: dict[str, list[Any]], zipped: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Every combination: the product of the grid axes, each crossed with one row of the zip axes."""
    names = list(grid)
    rows = [dict(zip(zipped, values)) for values in zip(*zipped.values())] if zipped else [{}]
    return [{**dict(zip(names, combo)), **row} for combo in itertools.product(*grid.values()) for row in rows]


def _label(value: Any) -> str:
    """A value as a short name part: a path by its last folder, floats compact, odd characters dropped."""
    if isinstance(value, str) and ("/" in value or Path(value).is_dir()):
        value = Path(value.rstrip("/")).name
    text = f"{value:g}" if isinstance(value, float) else str(value)
    return re.sub(r"[^A-Za-z0-9_.]+", "", text.replace("-", "_")) or "x"  # "-" separates the name's parts


def trial_name(method: str, student: str, data_size: int, seed: int, extra: dict[str, Any]) -> str:
    parts = [method, _label(student), f"d{data_size}", f"s{seed}"]
    parts += [f"{key.split('.')[-1].replace('_', '')}{_label(v)}" for key, v in extra.items()]
    return "-".join(parts)


def check_student(student: str) -> None:
    if student not in available_presets() and not (Path(student) / "config.json").is_file():
        raise ConfigError(f"student {student!r} is neither a shipped preset ({', '.join(available_presets())}) "
                          f"nor a local checkpoint directory with a config.json")


def expand_study(study: StudyConfig, base: RunConfig) -> list[Trial]:
    """The study's trials, in axis order; axes the study leaves out take the base run's value."""
    default_student = base.student.path or base.student.preset or "tiny"
    trials, seen = [], {}
    for point in axis_points(study.grid, study.zip):
        method = point.pop("method", "ld")
        student = str(point.pop("student", default_student))
        data_size = point.pop("data_size", base.generation.train_episodes)
        seed = point.pop("seed", base.run.seed)
        check_student(student)
        name = trial_name(method, student, data_size, seed, point)
        if name in seen:
            raise ConfigError(f"two trials share the name {name!r} ({seen[name]} and {point}); "
                              f"give their differing values distinct short forms")
        seen[name] = point
        trials.append(Trial(name, method, student, data_size, seed, point))
    return trials


def trial_raw_config(study: StudyConfig, base_raw: dict, trial: Trial, trials_dir: Path) -> dict:
    """The raw run config of one trial: the base plus the trial's values and the study's resources."""
    raw = copy.deepcopy(base_raw)
    is_preset = trial.student in available_presets()
    settings = {"run.name": trial.name, "run.output_dir": str(trials_dir), "run.seed": trial.seed,
                "training.seed": trial.seed, "generation.train_episodes": trial.data_size,
                "training.num_processes": study.resources.num_processes,
                "student.preset": trial.student if is_preset else None,
                "student.path": None if is_preset else str(Path(trial.student).resolve()),
                "eval.policies": [f"{trial.method}_student"], "wandb.group": study.study.name,
                **trial.extra}
    for key, value in settings.items():
        apply_override(raw, key.split("."), value)
    return raw


def trial_config(study: StudyConfig, base_raw: dict, trial: Trial, trials_dir: Path) -> RunConfig:
    try:
        return validate_config(trial_raw_config(study, base_raw, trial, trials_dir), RunConfig)
    except ConfigError as exc:
        raise ConfigError(f"trial {trial.name}: {exc}") from None


def data_key(cfg: RunConfig) -> str:
    """What decides the teacher's records: task, teacher, sandbox and the data-shaping generation knobs."""
    generation = cfg.generation.model_dump(mode="json", exclude=set(NOT_DATA))
    blob = json.dumps({"task": cfg.task.model_dump(mode="json"), "teacher": cfg.teacher.model_dump(mode="json"),
                       "sandbox": cfg.sandbox.model_dump(mode="json"), "generation": generation}, sort_keys=True)
    return f"{cfg.task.env}-{hashlib.sha256(blob.encode()).hexdigest()[:10]}"


@dataclass
class DataGroup:
    """Trials that train on prefixes of one generation run: the largest size is generated once."""

    key: str
    episodes: int  # the largest data size of its trials
    episodes_per_unit: int  # divides every data size, so each prefix is whole tasks (exact teacher cost)
    config: RunConfig  # the generation config (its first trial's, with `episodes` episodes)
    trials: list[str] = field(default_factory=list)


def plan_data_groups(configs: dict[str, RunConfig]) -> dict[str, DataGroup]:
    """Group trials (name -> run config) by `data_key`; each group generates its largest size once."""
    groups: dict[str, DataGroup] = {}
    for name, cfg in configs.items():
        key = data_key(cfg)
        group = groups.get(key)
        if group is None:
            group = groups[key] = DataGroup(key, 0, cfg.generation.episodes_per_unit, cfg)
        group.trials.append(name)
        group.episodes = max(group.episodes, cfg.generation.train_episodes)
        group.episodes_per_unit = math.gcd(group.episodes_per_unit, cfg.generation.train_episodes)
    for group in groups.values():
        generation = group.config.generation.model_copy(
            update={"train_episodes": group.episodes, "episodes_per_unit": group.episodes_per_unit})
        group.config = group.config.model_copy(update={"generation": generation})
    return groups
