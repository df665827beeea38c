"""A user's own environment, defined in this file through the documented interface only (README, "Your
own environment"), registered at import time, and run through the whole pipeline.

The pipeline finds it through `task.env=line_walk task.env_modules=[test_custom_env]`: every process
of the run (CLI, Ray actors) imports this module, which registers the env and its scripted expert.
"""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from configs.schema import RunConfig
from generation.ld.envs.base import DecisionEnv, Instruction, StepResult
from generation.ld.envs.registry import expert_for, make_env, register_env


# ---- the environment ---------------------------------------------------------------------------
class LineWalkEnv(DecisionEnv):
    """A walker on cells 0..length-1 must reach the instruction's target cell within max_steps."""

    name = "line_walk"
    stages = ["move"]  # one function call decides each step

    def __init__(self, length: int = 9, max_steps: int = 12):
        self.length, self.max_steps = length, max_steps

    def rules_text(self) -> str:
        return (f"A walker stands on one of the cells 0..{self.length - 1} of a line. Each step it moves "
                "'left' (cell - 1), 'right' (cell + 1) or 'stay'; it cannot leave the line. The instruction "
                "'Walk to cell k.' is met when the walker stands on cell k after a step; the episode ends then, "
                f"or after {self.max_steps} steps. The state line 'position 3 of 9, step 0' gives the cell.")

    def sample_instruction(self, seed: int) -> Instruction:
        target = random.Random(f"line_walk:{seed}:target").randrange(self.length)
        return Instruction(kind="reach", params={"target": target}, text=f"Walk to cell {target}.")

    def parse_instruction(self, text: str) -> Instruction:
        match = re.fullmatch(r"Walk to cell (\d+)\.", text.strip()) if isinstance(text, str) else None
        if not match:
            raise ValueError(f"not a line_walk instruction: {text!r} (expected 'Walk to cell k.')")
        target = int(match.group(1))
        return Instruction(kind="reach", params={"target": target}, text=f"Walk to cell {target}.")

    def reset(self, seed: int, instruction: Instruction) -> None:
        self.seed, self.instruction = seed, instruction
        self.position = random.Random(f"line_walk:{seed}:start").randrange(self.length)
        self.steps = self.invalid = 0
        self.done = self.success = False

    def state(self) -> dict:
        return {"position": self.position, "length": self.length, "steps": self.steps}

    def render(self) -> str:
        return f"position {self.position} of {self.length}, step {self.steps}"

    def parse_state_text(self, text: str) -> dict:
        match = re.fullmatch(r"position (\d+) of (\d+), step (\d+)", text.strip())
        if not match:
            raise ValueError(f"cannot read line_walk state {text!r}")
        return {"position": int(match.group(1)), "length": int(match.group(2)), "steps": int(match.group(3))}

    def legal_decisions(self) -> list[str]:
        return ["left", "right", "stay"]

    def is_legal(self, decision) -> bool:
        return isinstance(decision, str) and decision in self.legal_decisions()

    def default_decision(self) -> str:
        return "stay"

    def random_legal_decision(self, rng: random.Random) -> str:
        return rng.choice(self.legal_decisions())

    def step(self, decision) -> StepResult:
        if self.done:
            raise RuntimeError("the episode is over; call reset")
        invalid = not self.is_legal(decision)
        decision = self.default_decision() if invalid else decision
        self.invalid += invalid
        self.position = min(self.length - 1, max(0, self.position + {"left": -1, "right": 1, "stay": 0}[decision]))
        self.steps += 1
        self.success = self.position == self.instruction.params["target"]
        self.done = self.success or self.steps >= self.max_steps
        return StepResult(self.done, self.success, invalid)

    def episode_metrics(self) -> dict:
        return {"kind": self.instruction.kind, "success": self.success, "done": self.done, "steps": self.steps,
                "decisions": self.steps, "invalid": self.invalid,
                "scores": {"distance_left": abs(self.position - self.instruction.params["target"])}}


# ---- its scripted expert (only needed for the offline expert teacher) ----------------------------
FUNCTION_BASE_REPLY = '''```python
def step_towards(state, prev, target):
    """Move one cell towards the target cell (stay when on it)."""
    if state["position"] < target:
        return "right"
    return "left" if state["position"] > target else "stay"


def step_left(state, prev):
    """Move one cell to the left."""
    return "left"


def step_right(state, prev):
    """Move one cell to the right."""
    return "right"
```

## Manual

### step_towards
Stage: move
Walk to the cell of the instruction "Walk to cell k.": pass k as the target.
Call: step_towards(target=3)

### step_left
Stage: move
Move to the left (towards cell 0).
Call: step_left()

### step_right
Stage: move
Move to the right (towards the last cell).
Call: step_right()
'''


def expert_select(stage, instruction, state, prev, candidates):
    if "step_towards" in candidates:
        return "step_towards", {"target": instruction.params["target"]}
    return candidates[0], {}


register_env("line_walk", lambda task: LineWalkEnv(**task.options),
             expert=SimpleNamespace(function_base_reply=lambda: FUNCTION_BASE_REPLY, expert_select=expert_select))


# ---- tests -------------------------------------------------------------------------------------
REPO = Path(__file__).resolve().parents[1]


def test_the_env_keeps_the_interface_contract():
    env = make_env(RunConfig.model_validate({"task": {"env": "line_walk", "options": {"length": 5}}}).task)
    assert isinstance(env, LineWalkEnv) and env.length == 5
    for seed in range(10):
        instruction = env.sample_instruction(seed)
        assert env.parse_instruction(instruction.text) == instruction
        env.reset(seed, instruction)
        rng = random.Random(seed)
        while not env.step(env.random_legal_decision(rng)).done:
            assert env.parse_state_text(env.render()) == env.state()
    assert env.check_stage_output("move", env.state(), "left") is None
    assert env.check_stage_output("move", env.state(), "jump") is not None


def test_register_env_rejects_bad_registrations_and_unknown_names():
    with pytest.raises(ValueError, match="already registered"):
        register_env("line_walk", lambda task: LineWalkEnv())
    with pytest.raises(TypeError, match="lacks"):
        register_env("other_walk", lambda task: LineWalkEnv(), expert=SimpleNamespace())
    with pytest.raises(ValueError, match="unknown task.env 'nowhere'.*env_modules"):
        make_env(RunConfig.model_validate({"task": {"env": "nowhere"}}).task)
    with pytest.raises(ValueError, match="cannot import 'no_such_module'"):
        make_env(RunConfig.model_validate({"task": {"env": "line_walk", "env_modules": ["no_such_module"]}}).task)
    assert expert_for("line_walk").expert_select("move", LineWalkEnv().sample_instruction(1), {}, None,
                                                 ["step_left", "step_towards"])[0] == "step_towards"


def test_one_env_class_under_two_names_keeps_each_names_expert(monkeypatch):
    """Both registrations build a LineWalkEnv (env.name 'line_walk'); the teacher must ask the expert
    registered under task.env, not the one of env.name."""
    from generation.ld import prompts
    from generation.ld.envs import registry
    from generation.ld.workers import teacher_service
    from generation.teachers.base import TeacherRequest

    monkeypatch.setattr(registry, "ENV_FACTORIES", dict(registry.ENV_FACTORIES))
    monkeypatch.setattr(registry, "EXPERTS", dict(registry.EXPERTS))

    def expert(reply: str) -> SimpleNamespace:
        return SimpleNamespace(function_base_reply=lambda: reply, expert_select=expert_select)

    register_env("short_walk", lambda task: LineWalkEnv(length=3), expert=expert("the short walk's base"))
    register_env("long_walk", lambda task: LineWalkEnv(length=30), expert=expert("the long walk's base"))
    for name in ("short_walk", "long_walk"):
        cfg = RunConfig.model_validate({"task": {"env": name}})
        env = make_env(cfg.task)
        assert env.name == "line_walk"
        request = TeacherRequest(messages=prompts.function_base_messages(env.name, env.rules_text(), env.stages))
        service = teacher_service(cfg)
        try:
            [reply] = service.complete([request])
        finally:
            service.close()
        assert reply.text == f"the {name.replace('_', ' ')}'s base"


def test_expert_teacher_plays_it_in_an_eval_worker(tmp_path):
    """The generic machinery, in-process: function base validation, retrieval, sandbox, expert teacher."""
    from generation.ld.functions.function_base import build_function_base
    from generation.ld.workers import EvalWorker
    from generation.ld.functions.function_base import sample_states

    cfg = RunConfig.model_validate({"task": {"env": "line_walk", "env_modules": ["test_custom_env"]}})
    env = make_env(cfg.task)
    base, records = build_function_base(FUNCTION_BASE_REPLY, env.stages, sample_states(env, [0, 1]), cfg.sandbox,
                                        env.check_stage_output, "r")
    assert sorted(base.functions) == ["step_left", "step_right", "step_towards"] and all(r.accepted for r in records)
    base.save(tmp_path / "function_base.json")
    worker = EvalWorker(cfg, tmp_path / "function_base.json")
    try:
        episodes = worker.run("teacher", {"kind": "teacher"}, env.heldout_seeds(8))
    finally:
        worker.close()
    assert all(e["success"] and e["invalid"] == 0 for e in episodes)
    assert all(e["scores"]["distance_left"] == 0 for e in episodes)


@pytest.mark.slow
def test_whole_pipeline_runs_on_the_env_defined_in_this_file(tmp_path):
    run_dir = tmp_path / "run"
    path = [str(REPO / "tests"), str(REPO), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in path if p)}
    overrides = ["run.name=line_walk", "task.env=line_walk", "task.env_modules=[test_custom_env]",
                 "task.options={length: 7, max_steps: 10}", "generation.train_episodes=8",
                 "generation.episodes_per_unit=4", "eval.episodes=6", "eval.num_workers=1", "training.max_steps=4",
                 "training.per_device_batch_size=4",
                 "training.num_processes=1", "training.log_every=1", "ray.num_cpus=2"]
    proc = subprocess.run([sys.executable, "-m", "launch.cli", "run", *overrides, "--run-dir", str(run_dir)],
                          capture_output=True, text=True, timeout=900, cwd=REPO, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = json.loads((run_dir / "results.json").read_text())
    for policy in ("teacher", "ld_student", "kd_student", "majority"):
        assert results[policy]["episodes"] == 6 and "distance_left" in results[policy]
    assert results["teacher"]["success_rate"] == 1.0 and results["teacher"]["distance_left"] == 0.0
    base = json.loads((run_dir / "function_base.json").read_text())
    assert {f["name"] for f in base["functions"]} == {"step_towards", "step_left", "step_right"}
    assert list((run_dir / "data").glob("ld-*.parquet")) and list((run_dir / "data").glob("kd-*.parquet"))
    assert "distance_left" in (run_dir / "results.md").read_text()
