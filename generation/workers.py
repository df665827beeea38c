"""Plain worker classes that Ray wraps as actors: teacher demonstrations and policy evaluation.

Each worker owns its environment factory, its sandbox (loaded with the validated function base)
and its policy, so one actor is one independent rollout engine. Tested without Ray.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from generation.envs.registry import expert_for, make_env
from generation.functions.function_base import FunctionBase
from generation.rollout import Episode, play_by_actions, play_by_functions, start_episodes


def build_teacher_policy(cfg: Any, tag: str):
    from generation.policies.teacher_policy import TeacherSelectionPolicy
    from generation.teachers.registry import build_teacher

    context = {}
    if cfg.teacher.backend == "expert":
        env = make_env(cfg.task)
        context = {"env": env, "expert": expert_for(env.name)}
    backend = build_teacher(cfg.teacher, **context)
    return TeacherSelectionPolicy(backend, cfg.teacher.temperature, cfg.teacher.max_tokens,
                                  cfg.teacher.concurrency, tag=tag)


def _sandbox(cfg: Any, base: FunctionBase):
    from generation.sandbox.runner import Sandbox

    box = Sandbox(cfg.sandbox)
    box.load(base.sources())
    return box


def _episode_summary(ep: Episode, policy_name: str) -> dict[str, Any]:
    return {**ep.result, "policy": policy_name, "seed": ep.seed, "episode_id": ep.episode_id,
            "instruction": ep.instruction.text, "failures": ep.failures[:3], "trace": ep.trace}


class TeacherDemoWorker:
    """Plays training episodes with the teacher and returns LD and KD records."""

    def __init__(self, cfg: Any, base_path: str | Path, worker_id: int = 0):
        self.cfg = cfg
        self.base = FunctionBase.load(base_path)
        self.policy = build_teacher_policy(cfg, tag=f"gen{worker_id}")
        self.sandbox = _sandbox(cfg, self.base)

    def run(self, seeds: list[int], tag: str) -> dict[str, Any]:
        episodes = start_episodes(lambda: make_env(self.cfg.task), seeds, tag)
        play_by_functions(episodes, self.policy, self.base, self.sandbox, self.cfg.generation.top_k, record=True)
        keep = [e for e in episodes if e.result["success"] or not self.cfg.generation.only_successful]
        return {
            "stage_records": [r for e in keep for r in e.stage_records],
            "action_records": [r for e in keep for r in e.action_records],
            "episodes": [_episode_summary(e, "teacher") for e in episodes],
            "usage": dict(self.policy.usage),
        }

    def run_task(self, index: int, seeds: list[int]) -> tuple[int, dict[str, Any]]:
        return index, self.run(seeds, f"train{index}")

    def close(self) -> None:
        self.sandbox.close()
        self.policy.close()


class EvalWorker:
    """Plays held-out episodes with any policy: teacher, LD/KD student, or the majority baseline.

    One worker serves every policy in turn, so process start-up and imports are paid once.
    """

    def __init__(self, cfg: Any, base_path: str | Path, worker_id: int = 0):
        self.cfg = cfg
        self.worker_id = worker_id
        self.base = FunctionBase.load(base_path)
        self.sandbox = _sandbox(cfg, self.base)

    def _policy(self, spec: dict[str, Any]):
        kind = spec["kind"]
        if kind == "teacher":
            return build_teacher_policy(self.cfg, tag=f"eval{self.worker_id}")
        if kind == "majority":
            from generation.policies.majority import MajorityPolicy

            return MajorityPolicy(spec["completion_per_stage"])
        from generation.policies.hf_student import HFStudentPolicy

        return HFStudentPolicy(spec["checkpoint"], kind=spec["mode"], max_new_tokens=self.cfg.eval.max_new_tokens,
                               batch_size=self.cfg.eval.batch_size)

    def run(self, policy_name: str, spec: dict[str, Any], seeds: list[int]) -> list[dict[str, Any]]:
        policy = self._policy(spec)
        episodes = start_episodes(lambda: make_env(self.cfg.task), seeds, f"eval-{policy_name}")
        for e in episodes:
            e.trace_limit = self.cfg.eval.sample_decisions
        try:
            if policy.kind == "action":
                play_by_actions(episodes, policy)
            else:
                play_by_functions(episodes, policy, self.base, self.sandbox, self.cfg.eval.top_k)
        finally:
            if hasattr(policy, "close"):
                policy.close()
        return [_episode_summary(e, policy_name) for e in episodes]

    def close(self) -> None:
        self.sandbox.close()
