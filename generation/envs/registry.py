"""Environments by name, and the scripted expert each built-in one ships for the expert teacher.

A new environment registers a factory (and, optionally, an expert) here; nothing else in the
pipeline names a game.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, Callable

from generation.envs.base import DecisionEnv


def _pursuit(task_cfg: Any) -> DecisionEnv:
    from generation.envs.pursuit.env import PursuitEnv

    return PursuitEnv(task_cfg.pursuit)


def _pursuit_expert() -> Any:
    from generation.envs.pursuit import expert, resources

    return SimpleNamespace(function_base_reply=resources.function_base_reply, expert_select=expert.expert_select)


ENV_FACTORIES: dict[str, Callable[[Any], DecisionEnv]] = {"pursuit": _pursuit}
EXPERTS: dict[str, Callable[[], Any]] = {"pursuit": _pursuit_expert}


def make_env(task_cfg: Any) -> DecisionEnv:
    try:
        factory = ENV_FACTORIES[task_cfg.env]
    except KeyError:
        raise ValueError(f"unknown task.env {task_cfg.env!r}; known: {sorted(ENV_FACTORIES)}") from None
    return factory(task_cfg)


def expert_for(env_name: str) -> Any:
    """The scripted expert of a built-in environment (what the offline expert teacher consults)."""
    if env_name not in EXPERTS:
        raise ValueError(f"environment {env_name!r} has no built-in expert; use an LLM teacher backend")
    return EXPERTS[env_name]()
