"""Environments by name, and the scripted expert each one may ship for the offline expert teacher.

A new environment calls `register_env(name, factory, expert=...)` at import time of its module and
is named in the config as `task.env=<name>`, `task.env_modules=[<module>]`; every process that builds
the env (the driver, Ray actors) imports those modules first, so nothing in the pipeline names a game.

An expert is any object (a module, a namespace) with
  function_base_reply() -> str                    the reply to the "write the function base" prompt
  expert_select(stage, instruction, state, prev, candidates) -> (name, kwargs)
and, optionally, for emergencies announced mid-episode,
  emergency_reply(kind, text, state) -> str       the reply to the "write functions for an emergency" prompt
"""

from __future__ import annotations

import importlib
from types import SimpleNamespace
from typing import Any, Callable

from generation.ld.envs.base import DecisionEnv

EnvFactory = Callable[[Any], DecisionEnv]  # task config -> a fresh env


def _pursuit(task_cfg: Any) -> DecisionEnv:
    from generation.ld.envs.pursuit.env import PursuitEnv

    return PursuitEnv(task_cfg.pursuit)


def _pursuit_expert() -> Any:
    from generation.ld.envs.pursuit import expert, resources

    return SimpleNamespace(function_base_reply=resources.function_base_reply, expert_select=expert.expert_select,
                           emergency_reply=resources.emergency_reply)


def _twentyone(task_cfg: Any) -> DecisionEnv:
    from generation.ld.envs.twentyone.env import TwentyOneEnv

    return TwentyOneEnv(task_cfg.twentyone)


def _twentyone_expert() -> Any:
    from generation.ld.envs.twentyone import expert, resources

    return SimpleNamespace(function_base_reply=resources.function_base_reply, expert_select=expert.expert_select)


ENV_FACTORIES: dict[str, EnvFactory] = {"pursuit": _pursuit, "twentyone": _twentyone}
EXPERTS: dict[str, Callable[[], Any]] = {"pursuit": _pursuit_expert, "twentyone": _twentyone_expert}
EXPERT_API = ("function_base_reply", "expert_select")


def register_env(name: str, factory: EnvFactory, expert: Any = None, replace: bool = False) -> None:
    """Make `task.env=<name>` build `factory(task_cfg)`; `expert` (optional) serves the expert teacher.

    Registering the same factory again (same object, or same module and qualified name) just renews
    it, so a module may be imported twice; another factory under a taken name is an error unless `replace`.
    """
    if not isinstance(name, str) or not name.replace("_", "").replace("-", "").isalnum():
        raise ValueError(f"environment name must be letters, digits, '_' or '-', got {name!r}")
    if not callable(factory):
        raise TypeError(f"factory of environment {name!r} must be callable (task config -> DecisionEnv)")
    if expert is not None:
        missing = [a for a in EXPERT_API if not callable(getattr(expert, a, None))]
        if missing:
            raise TypeError(f"expert of environment {name!r} lacks {missing} (see generation.ld.envs.registry)")
    known = ENV_FACTORIES.get(name)
    same = known is factory or (getattr(known, "__module__", None) == getattr(factory, "__module__", "") and
                                getattr(known, "__qualname__", None) == getattr(factory, "__qualname__", ""))
    if known is not None and not same and not replace:
        raise ValueError(f"environment {name!r} is already registered; pass replace=True to override it")
    ENV_FACTORIES[name] = factory
    if expert is not None:
        EXPERTS[name] = lambda: expert
    elif replace:
        EXPERTS.pop(name, None)


def import_env_modules(task_cfg: Any) -> None:
    """Import the modules named in `task.env_modules` (they register their environments)."""
    for module in getattr(task_cfg, "env_modules", None) or []:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ValueError(f"task.env_modules: cannot import {module!r}: {exc}") from exc


def make_env(task_cfg: Any) -> DecisionEnv:
    import_env_modules(task_cfg)
    try:
        factory = ENV_FACTORIES[task_cfg.env]
    except KeyError:
        raise ValueError(f"unknown task.env {task_cfg.env!r}; known: {sorted(ENV_FACTORIES)} (your own "
                         "environment: register it with register_env in a module named in task.env_modules)"
                         ) from None
    env = factory(task_cfg)
    if not isinstance(env, DecisionEnv):
        raise TypeError(f"factory of task.env {task_cfg.env!r} returned {type(env).__name__}, not a DecisionEnv")
    return env


def expert_for(env_name: str) -> Any:
    """The scripted expert registered under `env_name`, the name given to `register_env` (`task.env`),
    which is what the offline expert teacher consults; never look it up by `env.name`, which two
    registrations of one env class share."""
    if env_name not in EXPERTS:
        raise ValueError(f"environment {env_name!r} has no scripted expert; register one with register_env or "
                         "use an LLM teacher backend (teacher.backend=openai)")
    return EXPERTS[env_name]()
