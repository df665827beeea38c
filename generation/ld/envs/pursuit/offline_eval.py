"""Offline tuning of the pursuit expert: expert vs majority vs random, without the sandbox.

For tests and tuning ONLY: it loads the teacher's function text with `exec` in this process,
which the pipeline never does (there, teacher code runs only in the sandbox).

    .venv/bin/python -m generation.ld.envs.pursuit.offline_eval --episodes 300
    .venv/bin/python -m generation.ld.envs.pursuit.offline_eval --episodes 300 --emergencies
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections import Counter
from typing import Any, Callable

from configs.task_schema import EMERGENCY_KINDS, EmergencyConfig
from generation.ld.envs.base import aggregate_by, heldout_seeds, train_seeds
from generation.ld.envs.pursuit.config import INSTRUCTION_KINDS, PursuitConfig
from generation.ld.envs.pursuit.env import PursuitEnv
from generation.ld.envs.pursuit.expert import FUNCTION_STAGES, expert_select
from generation.ld.envs.pursuit.resources import emergency_reply, teacher_functions_source

Chooser = Callable[[str, Any, dict, Any], tuple[str, dict]]


def load_teacher_functions(source: str | None = None) -> dict[str, Callable]:
    """The public functions of the text, by exec (tests and tuning only; never the pipeline)."""
    namespace: dict[str, Any] = {}
    exec(compile(source or teacher_functions_source(), "teacher_functions.py.txt", "exec"), namespace)
    return {n: f for n, f in namespace.items() if callable(f) and not n.startswith("_") and n in FUNCTION_STAGES}


def expert_chooser(candidates: list[str] | None = None) -> Chooser:
    names = list(candidates or FUNCTION_STAGES)
    return lambda stage, instruction, state, prev: expert_select(stage, instruction, state, prev, names)


def fixed_chooser(per_stage: dict[str, tuple[str, dict]]) -> Chooser:
    """The majority baseline: the same call at every step, whatever the instruction and state."""
    return lambda stage, instruction, state, prev: per_stage[stage]


def play_with_functions(env: PursuitEnv, seed: int, instruction, choose: Chooser,
                        functions: dict[str, Callable], through_text: bool = True,
                        log: list | None = None) -> dict:
    """One episode where each stage's function is chosen by `choose` and run in-process.

    With `log`, every step's calls are appended as a tuple of (stage, name, kwargs-JSON).
    """
    env.reset(seed, instruction)
    calls = 0
    while True:
        state = env.parse_state_text(env.render()) if through_text else env.state()
        prev, step_calls = None, []
        for stage in env.stages:
            name, kwargs = choose(stage, instruction, state, prev)
            prev = functions[name](state, prev, **kwargs)
            step_calls.append((stage, name, json.dumps(kwargs, sort_keys=True)))
            calls += 1
        if log is not None:
            log.append(tuple(step_calls))
        if env.step(prev).done:
            metrics = env.episode_metrics()
            metrics["calls"] = calls
            return metrics


def play_random(env: PursuitEnv, seed: int, instruction) -> dict:
    env.reset(seed, instruction)
    rng = random.Random(seed)
    while not env.step(env.random_legal_decision(rng)).done:
        pass
    return env.episode_metrics()


def _instructions_of_kind(env: PursuitEnv, kind: str, seeds: list[int]) -> list:
    """Held-out instructions of one kind (the env's own sampler, with the mix forced to `kind`)."""
    forced = PursuitEnv(env.config.model_copy(update={"instruction_mix": {kind: 1.0}}))
    return [forced.sample_instruction(s) for s in seeds]


def _run(play: Callable, plan: list[tuple[int, Any]]) -> tuple[list[dict], float]:
    start = time.perf_counter()
    results = [play(seed, instruction) for seed, instruction in plan]
    return results, time.perf_counter() - start


def _summary(results: list[dict], seconds: float) -> dict:
    out: dict[str, Any] = aggregate_by(results)
    out["seconds"] = round(seconds, 2)
    calls = sum(r.get("calls", 0) for r in results)
    if calls:
        out["ms_per_call_incl_step"] = round(1000 * seconds / calls, 4)
    return out


def evaluate(config: PursuitConfig, episodes: int, functions: dict[str, Callable] | None = None) -> dict:
    """Expert, majority (the expert's most common step sequence, always) and random-legal play
    on `episodes` held-out seeds per instruction kind."""
    env = PursuitEnv(config)
    functions = functions or load_teacher_functions()
    seeds = heldout_seeds(episodes)
    kinds = [k for k in INSTRUCTION_KINDS if config.instruction_mix.get(k, 0) > 0]
    plan = [pair for kind in kinds for pair in zip(seeds, _instructions_of_kind(env, kind, seeds))]
    log: list = []
    expert, seconds = _run(lambda s, i: play_with_functions(env, s, i, expert_chooser(), functions, log=log), plan)
    report = {"expert": _summary(expert, seconds)}
    sequence, count = Counter(log).most_common(1)[0]
    report["majority_sequence"] = {"calls": [f"{name}({kw})" for _, name, kw in sequence],
                                   "share_of_expert_steps": round(count / len(log), 3)}
    fixed = fixed_chooser({stage: (name, json.loads(kw)) for stage, name, kw in sequence})
    report["majority"] = _summary(*_run(lambda s, i: play_with_functions(env, s, i, fixed, functions), plan))
    report["random"] = _summary(*_run(lambda s, i: play_random(env, s, i), plan))
    return report


def emergency_functions() -> dict[str, Callable]:
    """The expert's emergency function for every kind, by exec (tuning only)."""
    from generation.ld.functions.parse_base import parse_function_base_reply

    out: dict[str, Callable] = {}
    for kind in EMERGENCY_KINDS:
        for draft in parse_function_base_reply(emergency_reply(kind, ""))[0]:
            namespace: dict[str, Any] = {}
            exec(compile(draft.source, f"emergency-{kind}", "exec"), namespace)
            out[draft.name] = namespace[draft.name]
    return out


def evaluate_emergencies(config: PursuitConfig, episodes: int) -> dict:
    """The expert with and without the emergency functions, on training and held-out seeds, every
    episode with an emergency (probability 1 unless the config says otherwise)."""
    if config.emergencies.probability <= 0:
        config = config.model_copy(update={"emergencies": EmergencyConfig(probability=1.0)})
    env = PursuitEnv(config)
    base = load_teacher_functions()
    functions = {**base, **emergency_functions()}
    report: dict[str, Any] = {}
    for split, seeds in (("train", train_seeds(episodes)), ("heldout", heldout_seeds(episodes))):
        for label, names in (("with", list(functions)), ("without", list(base))):
            choose = expert_chooser(names)
            plan = [(s, env.sample_instruction(s)) for s in seeds]
            results, seconds = _run(lambda s, i: play_with_functions(env, s, i, choose, functions), plan)
            report[f"{split}/{label}_emergency_functions"] = {
                k: round(v["success_rate"], 3) for k, v in aggregate_by(results, "emergency").items()}
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=300, help="held-out episodes per instruction kind")
    parser.add_argument("--set", nargs="*", default=[], help="config overrides key=value (JSON values)")
    parser.add_argument("--emergencies", action="store_true", help="expert with/without emergency functions")
    args = parser.parse_args()
    overrides = {k: json.loads(v) for k, v in (kv.split("=", 1) for kv in args.set)}
    run = evaluate_emergencies if args.emergencies else evaluate
    print(json.dumps(run(PursuitConfig(**overrides), args.episodes), indent=1))


if __name__ == "__main__":
    main()
