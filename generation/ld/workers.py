"""Plain worker classes that Ray wraps as actors: teacher demonstrations and policy evaluation.

Each worker owns its environment factory, its sandbox (loaded with the validated function base)
and its policy, so one actor is one independent rollout engine. Tested without Ray.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from generation.ld.emergencies import EmergencyResponder
from generation.ld.envs.registry import expert_for, make_env
from generation.ld.functions.function_base import FunctionBase
from generation.ld.sampling import keep_steps
from generation.ld.rollout import Episode, play_by_actions, play_by_functions, start_episodes


def build_teacher_policy(cfg: Any, tag: str, hooks: Any = None, max_reasks: int = 0):
    """The teacher as a policy, asked through the teacher service: the run's rate limiter, response cache and
    stats hub when `hooks` (a `generation.teachers.stack.TeacherHooks`, made by the Ray job) says how to
    reach them."""
    from generation.ld.policies.teacher_policy import TeacherSelectionPolicy

    return TeacherSelectionPolicy(teacher_service(cfg, hooks, max_reasks), tag=tag)


def teacher_service(cfg: Any, hooks: Any = None, max_reasks: int = 0):
    """The teacher service for an LD run; the built-in expert teacher needs the unit's env and its expert."""
    from generation.teachers.service import TeacherService

    context = {}
    if cfg.teacher.backend == "expert":
        # the expert registered under `task.env`, not `env.name`: one env class may be registered twice
        context = {"env": make_env(cfg.task), "expert": expert_for(cfg.task.env)}
    return TeacherService(cfg.teacher, hooks, max_reasks=max_reasks, **context)


def _sandbox(cfg: Any, base: FunctionBase):
    from generation.sandbox.runner import Sandbox

    box = Sandbox(cfg.sandbox)
    box.load(base.sources())
    return box


def _episode_summary(ep: Episode, policy_name: str) -> dict[str, Any]:
    return {**ep.result, "policy": policy_name, "seed": ep.seed, "episode_id": ep.episode_id,
            "instruction": ep.instruction.text, "failures": ep.failures[:3], "trace": ep.trace,
            "runtime_functions": list(ep.runtime_functions), "runtime_calls": ep.runtime_calls}


class TeacherDemoWorker:
    """Plays training episodes with the teacher and returns LD and KD records."""

    def __init__(self, cfg: Any, base_path: str | Path, worker_id: int = 0, hooks: Any = None):
        self.cfg = cfg
        self.base = FunctionBase.load(base_path)
        self.policy = build_teacher_policy(cfg, tag=f"gen{worker_id}", hooks=hooks,
                                           max_reasks=cfg.generation.max_reasks)
        self.sandbox = _sandbox(cfg, self.base)
        # emergencies: the same teacher writes their functions, once per kind for this actor's lifetime
        self.responder = EmergencyResponder(lambda: self.policy, cfg.sandbox, close_teacher=False)

    def run(self, seeds: list[int], tag: str) -> dict[str, Any]:
        self.policy.begin(tag)  # request ids, usage and rejections of this unit alone
        written_before = len(self.responder.records)
        episodes = start_episodes(lambda: make_env(self.cfg.task), seeds, tag)
        play_by_functions(episodes, self.policy, self.base, self.sandbox, self.cfg.generation.top_k, record=True,
                          responder=self.responder)
        keep = [e for e in episodes if e.result["success"] or not self.cfg.generation.only_successful]
        per_episode = self.cfg.generation.decisions_per_episode
        return {
            "stage_records": [r for e in keep for r in keep_steps(e.stage_records, e.steps, per_episode)],
            "action_records": [r for e in keep for r in keep_steps(e.action_records, e.steps, per_episode)],
            "episodes": [_episode_summary(e, "teacher") for e in episodes],
            "rejections": list(self.policy.rejections),
            "runtime_functions": self.responder.records[written_before:],  # this unit's emergency functions
            "usage": dict(self.policy.usage),
        }

    def run_unit(self, index: int, seeds: list[int]) -> tuple[int, dict[str, Any]]:
        return index, self.run(seeds, f"train{index}")

    def close(self) -> None:
        self.sandbox.close()
        self.policy.close()


class EvalWorker:
    """Plays held-out episodes with any policy: teacher, LD/KD student, or the majority baseline.

    One worker serves every policy in turn, so process start-up and imports are paid once. Each run
    starts from the saved function base: functions one policy's run added for emergencies (spec
    `runtime_functions`, default True for function-selecting policies) never leak into the next run.
    """

    def __init__(self, cfg: Any, base_path: str | Path, worker_id: int = 0, hooks: Any = None):
        self.cfg = cfg
        self.worker_id = worker_id
        self.hooks = hooks
        self.base_path = base_path
        self.base = FunctionBase.load(base_path)
        self.sandbox = _sandbox(cfg, self.base)

    def _responder(self, spec: dict[str, Any], policy) -> EmergencyResponder | None:
        if policy.kind != "select" or not spec.get("runtime_functions", True):
            return None
        if spec["kind"] == "teacher":  # the teacher under evaluation writes its own emergency functions
            return EmergencyResponder(lambda: policy, self.cfg.sandbox, close_teacher=False)
        return EmergencyResponder(lambda: build_teacher_policy(self.cfg, tag=f"emergency{self.worker_id}",
                                                               hooks=self.hooks), self.cfg.sandbox)

    def _policy(self, spec: dict[str, Any]):
        kind = spec["kind"]
        if kind == "teacher":
            return build_teacher_policy(self.cfg, tag=f"eval{self.worker_id}", hooks=self.hooks)
        if kind == "majority":
            from generation.ld.policies.majority import MajorityPolicy

            return MajorityPolicy(spec["completion_per_stage"])
        from generation.ld.policies.hf_student import HFStudentPolicy

        return HFStudentPolicy(spec["checkpoint"], kind=spec["mode"], max_new_tokens=self.cfg.eval.max_new_tokens,
                               batch_size=self.cfg.eval.batch_size,
                               constrain_to_candidates=self.cfg.eval.constrain_to_candidates)

    def run(self, policy_name: str, spec: dict[str, Any], seeds: list[int]) -> list[dict[str, Any]]:
        policy = self._policy(spec)
        episodes = start_episodes(lambda: make_env(self.cfg.task), seeds, f"eval-{policy_name}")
        for e in episodes:
            e.trace_limit = self.cfg.eval.sample_decisions
        responder = self._responder(spec, policy)
        try:
            if policy.kind == "action":
                play_by_actions(episodes, policy)
            else:
                play_by_functions(episodes, policy, FunctionBase.load(self.base_path), self.sandbox,
                                  self.cfg.eval.top_k, responder=responder)
        finally:
            if responder is not None:
                responder.close()
            if hasattr(policy, "close"):
                policy.close()
        return [_episode_summary(e, policy_name) for e in episodes]

    def close(self) -> None:
        self.sandbox.close()
