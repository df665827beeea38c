"""Shared by the emergency tests: a function base for a pursuit config, and episodes played with a
teacher that answers emergencies at run time (the rollout's real path, sandbox included)."""

from __future__ import annotations

from pathlib import Path

from configs.schema import RunConfig
from configs.task_schema import EmergencyConfig
from generation.ld.emergencies import EmergencyResponder
from generation.ld.envs.pursuit.env import PursuitEnv
from generation.ld.envs.pursuit.resources import function_base_reply
from generation.ld.envs.registry import expert_for
from generation.ld.functions.function_base import FunctionBase, build_function_base
from generation.ld.policies.teacher_policy import TeacherSelectionPolicy
from generation.teachers.service import TeacherService
from generation.ld.rollout import play_by_functions, start_episodes
from generation.sandbox.runner import Sandbox
from generation.ld.functions.function_base import sample_states


def config_and_base(tmp_path: Path, emergencies: EmergencyConfig) -> tuple[RunConfig, PursuitEnv, Path]:
    """A run config with `emergencies`, its env, and the expert's validated function base saved under tmp_path."""
    cfg = RunConfig.model_validate({"task": {"pursuit": {"emergencies": emergencies.model_dump()}}})
    env = PursuitEnv(cfg.task.pursuit)
    base, _ = build_function_base(function_base_reply(), env.stages, sample_states(env, [0, 1]), cfg.sandbox,
                                  env.check_stage_output, "r")
    base.save(tmp_path / "function_base.json")
    return cfg, env, tmp_path / "function_base.json"


def play(cfg: RunConfig, base_path: Path, teacher_cls, seeds: list[int]):
    """(episodes, the base as it ended, the responder, the names loaded in the sandbox)."""
    base = FunctionBase.load(base_path)
    teacher = teacher_cls(cfg.teacher, PursuitEnv(cfg.task.pursuit), expert_for("pursuit"))
    policy = TeacherSelectionPolicy(TeacherService(cfg.teacher, backend=teacher))
    responder = EmergencyResponder(lambda: policy, cfg.sandbox, close_teacher=False)
    episodes = start_episodes(lambda: PursuitEnv(cfg.task.pursuit), seeds, "t")
    with Sandbox(cfg.sandbox) as box:
        box.load(base.sources())
        try:
            play_by_functions(episodes, policy, base, box, top_k=3, record=True, responder=responder)
        finally:
            policy.close()
        loaded = box.loaded
    return episodes, base, responder, loaded
