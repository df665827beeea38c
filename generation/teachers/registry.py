"""Build the teacher backend a config names. Backends are imported lazily: each pulls in its own deps."""

from __future__ import annotations

from typing import Any

from configs.teacher_schema import TeacherConfig
from generation.teachers.base import TeacherBackend

BACKENDS = ("expert", "openai", "replay", "hf")


def build_teacher(cfg: TeacherConfig, *, gate: Any = None, meter: Any = None, **context: Any) -> TeacherBackend:
    """The backend for `cfg.backend`.

    `gate` (rate limits) and `meter` (per-attempt accounting) matter to the HTTP backend only.
    `context` carries what offline teachers need (e.g. the task); other backends ignore it, so callers
    can pass the same context whatever the backend.
    """
    if cfg.backend == "openai":
        from generation.teachers.openai_backend import OpenAIBackend

        return OpenAIBackend(cfg, gate=gate, meter=meter)
    if cfg.backend == "expert":
        from generation.teachers.expert import ExpertTeacher

        # a task with its own scripted expert (Divide-or-Conquer) passes its ExpertTeacher subclass
        teacher_class = context.pop("expert_class", ExpertTeacher)
        return teacher_class(cfg, **context)
    if cfg.backend == "replay":
        from generation.teachers.replay_backend import ReplayTeacher

        return ReplayTeacher(cfg)
    if cfg.backend == "hf":
        from generation.teachers.hf_backend import HFTeacher

        return HFTeacher(cfg)
    raise ValueError(f"unknown teacher.backend {cfg.backend!r}; expected one of: {', '.join(BACKENDS)}")
