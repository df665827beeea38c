"""Load a typed run config from YAML plus `a.b=c` overrides, with errors that name the key.

An unknown key is reported with the nearest valid key (difflib), before pydantic sees it, so a
typo such as `trainig.epochs=3` fails fast instead of being silently ignored.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)
RESOLVED_NAME = "config.resolved.yaml"


class ConfigError(ValueError):
    """A config problem, phrased for the person who wrote the config."""


def parse_override(text: str) -> tuple[list[str], Any]:
    """`a.b=c` -> (["a", "b"], c), the value parsed as YAML so `3`, `true`, `[1, 2]` get their types."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {text!r} is not of the form key.path=value")
    path = key.strip().split(".")
    if any(not part for part in path):
        raise ConfigError(f"override {text!r} has an empty key segment")
    try:
        parsed = yaml.safe_load(value) if value.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {text!r}: value is not valid YAML ({exc})") from None
    return path, parsed


def apply_override(raw: dict, path: list[str], value: Any) -> None:
    node = raw
    for i, part in enumerate(path[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"cannot set {'.'.join(path)}: {'.'.join(path[: i + 1])} is not a section")
        node = child
    node[path[-1]] = value


def _section_model(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside `Model`, `Model | None` or `Optional[Model]`, else None."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        models = [a for a in typing.get_args(annotation) if isinstance(a, type) and issubclass(a, BaseModel)]
        return models[0] if len(models) == 1 else None
    return None


# Keys that moved (every method came to share one teacher service; a slice of generation work committed at
# once is a "unit", "task" being what the student learns): the old spelling is named with its new home.
MOVED_KEYS = {"generation.cache": "teacher.cache", "eval.teacher_concurrency": "teacher.concurrency",
              "generation.episodes_per_task": "generation.episodes_per_unit",
              "generation.task_retries": "generation.unit_retries", "eval.task_retries": "eval.unit_retries"}


def check_unknown_keys(raw: Any, model: type[BaseModel], prefix: str = "") -> None:
    """Raise ConfigError for the first key `model` does not define, suggesting the nearest valid one."""
    if not isinstance(raw, dict):
        return
    fields = model.model_fields
    for key, value in raw.items():
        dotted = f"{prefix}{key}"
        if dotted in MOVED_KEYS:
            raise ConfigError(f"config key '{dotted}' has moved to '{MOVED_KEYS[dotted]}' (the teacher service "
                              f"every method shares); rename it in your config or override")
        if key not in fields:
            valid = sorted(fields)
            near = difflib.get_close_matches(str(key), valid, n=1, cutoff=0.5)
            hint = f"; did you mean '{prefix}{near[0]}'?" if near else ""
            raise ConfigError(f"unknown config key '{dotted}'{hint} (valid keys here: {', '.join(valid)})")
        sub = _section_model(fields[key].annotation)
        if sub is not None:
            check_unknown_keys(value, sub, prefix=f"{dotted}.")


_SECRET_FIELD = re.compile(r"(key|token|secret|password)", re.IGNORECASE)


def format_validation_error(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "<root>"
        value = err.get("input")
        # A section-level check names its field itself, and a whole section may hold a pasted key:
        # echo only leaf values, and never those of key-like fields.
        shown = "" if isinstance(value, (dict, list)) or _SECRET_FIELD.search(loc) else f" (got {value!r})"
        lines.append(f"  {loc}: {err['msg']}{shown}")
    return "invalid config:\n" + "\n".join(lines)


def validate_config(raw: dict, model: type[M]) -> M:
    check_unknown_keys(raw, model)
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc)) from None


def load_config(path: str | Path | None, overrides: list[str] | None, model: type[M]) -> M:
    """YAML file (or the schema's defaults when `path` is None) + overrides -> validated config."""
    raw: dict = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML ({exc})") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: top level must be a mapping of sections")
    for text in overrides or []:
        apply_override(raw, *parse_override(text))
    return validate_config(raw, model)


def save_resolved(cfg: BaseModel, run_dir: str | Path) -> Path:
    """Write the fully resolved config (defaults filled in) next to the run's outputs."""
    out = Path(run_dir) / RESOLVED_NAME
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
    return out
