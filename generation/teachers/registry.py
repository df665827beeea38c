"""Build the teacher backend a config names. Backends are imported lazily: each pulls in its own deps."""

from __future__ import annotations

from typing import Any

from configs.teacher_schema import TeacherConfig
from generation.teachers.base import TeacherBackend


def build_teacher(cfg: TeacherConfig, **context: Any) -> TeacherBackend:
    """The backend for `cfg.backend`.

    `context` carries what offline teachers need (e.g. the task); HTTP backends ignore it, so callers
    can pass the same context whatever the backend.
    """
    if cfg.backend == "openai":
        from generation.teachers.openai_backend import OpenAIBackend

        return OpenAIBackend(cfg)
    if cfg.backend == "expert":
        from generation.teachers.expert import ExpertTeacher

        return ExpertTeacher(cfg, **context)
    raise ValueError(f"unknown teacher.backend {cfg.backend!r}; expected one of: expert, openai")
