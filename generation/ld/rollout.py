"""Play episodes function by function: retrieve top-K, select per stage, execute in the sandbox, step.

Episodes run in lockstep so that each stage is one batched policy call (a student generates for
all live episodes at once). Any policy failure (unparseable text, unknown function, sandbox error,
illegal decision) is an invalid decision handed to the environment, never a crash.

Emergencies: before each step, newly announced emergencies are handed to the `responder` (when one
is given), whose validated functions join the base, sandbox and retriever for the rest of the run.
A function written for an emergency is offered only where that emergency is in force; the kind of
every emergency in force joins the retrieval query and its text joins the rules the policy reads.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable

from generation.ld.functions.function_base import FunctionBase
from generation.ld.policies.base import ActionRequest, SelectionRequest
from generation.ld import kd_prompts as kd, prompts as ld
from generation.prompts.calls import ParseError, parse_call
from generation.storage.records import RawActionRecord, StageDecisionRecord


@dataclass
class Episode:
    env: Any
    seed: int
    instruction: Any
    episode_id: str
    stage_records: list[StageDecisionRecord] = field(default_factory=list)
    action_records: list[RawActionRecord] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    trace: list[dict] = field(default_factory=list)  # the first decisions, for sample tables
    trace_limit: int = 0
    steps: int = 0
    done: bool = False
    result: Any = None
    seen_emergencies: set[str] = field(default_factory=set)
    runtime_functions: list[str] = field(default_factory=list)  # added for this episode's emergencies
    runtime_calls: int = 0  # stage decisions that called one of them

    def note(self, **row: Any) -> None:
        if len(self.trace) < self.trace_limit:
            self.trace.append(row)


def start_episodes(make_env: Callable[[], Any], seeds: list[int], tag: str) -> list[Episode]:
    episodes = []
    for seed in seeds:
        env = make_env()
        instruction = env.sample_instruction(seed)
        env.reset(seed, instruction)
        episodes.append(Episode(env, seed, instruction, f"{tag}-{seed}"))
    return episodes


@dataclass
class _Pending:
    episode: Episode
    state: dict
    state_text: str
    step: int
    prev: Any = None
    valid: bool = True
    stage_rows: list[tuple] = field(default_factory=list)


def _in_force(env: Any, rules: str) -> tuple[str, set[str]]:
    """The rules with every emergency in force appended, and the kinds of those emergencies."""
    emergencies = env.emergencies()
    if not emergencies:
        return rules, set()
    notes = "\n".join(f"- {e.text}" for e in emergencies)
    return f"{rules}\n\nEmergencies in force:\n{notes}", {e.kind for e in emergencies}


def _retrieve(p: _Pending, stage: str, base: FunctionBase, retriever, top_k: int, kinds: set[str]) -> list[str]:
    query = f"{stage} {p.episode.instruction.text} {' '.join(sorted(kinds))} {ld.render_stage_result(p.prev)}"
    return retriever.top_k(query, top_k, stage=stage, exclude=base.out_of_scope(kinds))


def _select_stage(pending: list[_Pending], stage: str, policy, base: FunctionBase, retriever, sandbox,
                  top_k: int, rules: str) -> None:
    live = [p for p in pending if p.valid]
    context = [_in_force(p.episode.env, rules) for p in live]
    names_per = [_retrieve(p, stage, base, retriever, top_k, kinds) for p, (_, kinds) in zip(live, context)]
    requests = [SelectionRequest(episode_rules, p.episode.instruction.text, p.state_text, stage,
                                 ld.render_stage_result(p.prev), base.candidates(names))
                for p, names, (episode_rules, _) in zip(live, names_per, context)]
    replies = policy.select(requests) if requests else []
    for p, names, req, reply in zip(live, names_per, requests, replies):
        why = ""
        try:
            call = parse_call(reply.text, base.signatures(names))
            result = sandbox.call_with_kwargs(call.name, p.state, p.prev, call.kwargs)
        except ParseError as exc:
            p.valid, why = False, f"parse: {exc}"
        except Exception as exc:  # sandbox errors: the function misbehaved on this state
            p.valid, why = False, f"execute: {type(exc).__name__}: {exc}"
        else:
            p.stage_rows.append((req, call, reply.request_id))
            p.prev = result
            p.episode.runtime_calls += bool(base.functions[call.name].scope)
        p.episode.note(step=p.step, stage=stage, candidates=" ".join(names), reply=reply.text[:120],
                       outcome=why or "ok")
        if why:
            p.episode.failures.append(f"step {p.step} stage {stage}: {why}")


def _stage_record(p: _Pending, req: SelectionRequest, call, request_id: str) -> StageDecisionRecord:
    prompt = ld.student_selection_prompt(req.instruction, req.state_text, req.stage, req.stage_input,
                                         req.candidates)
    return StageDecisionRecord(
        env=p.episode.env.name, episode_id=p.episode.episode_id, seed=p.episode.seed, step=p.step,
        stage=req.stage, instruction=req.instruction, state_text=req.state_text,
        stage_input=req.stage_input, candidates=[c.name for c in req.candidates], function=call.name,
        arguments=json.dumps(call.kwargs), prompt=prompt, completion=call.render(),
        teacher_request_id=request_id)


def _action_record(p: _Pending, decision: Any) -> RawActionRecord:
    ep = p.episode
    return RawActionRecord(env=ep.env.name, episode_id=ep.episode_id, seed=ep.seed, step=p.step,
                           instruction=ep.instruction.text, state_text=p.state_text,
                           action=json.dumps(decision, sort_keys=True),
                           prompt=kd.student_action_prompt(ep.instruction.text, p.state_text,
                                                            ep.env.action_question),
                           completion=kd.render_action(decision))


def _finish_step(p: _Pending, decision: Any, record: bool) -> None:
    ep = p.episode
    outcome = ep.env.step(decision if p.valid else None)
    ep.steps += 1
    if record and p.valid:
        ep.stage_records += [_stage_record(p, req, call, rid) for req, call, rid in p.stage_rows]
        ep.action_records.append(_action_record(p, decision))
    if outcome.done:
        ep.done, ep.result = True, ep.env.episode_metrics()


def _answer_emergencies(live: list[Episode], responder, base: FunctionBase, sandbox, retriever) -> None:
    announced = []
    for e in live:
        for emergency in e.env.emergencies():
            if emergency.id not in e.seen_emergencies:
                e.seen_emergencies.add(emergency.id)
                announced.append((e, emergency))
    if not announced:
        return
    names = responder.answer([(e.env, emergency) for e, emergency in announced], base, sandbox, retriever)
    for e, emergency in announced:
        e.runtime_functions += [n for n in names.get(emergency.kind, []) if n not in e.runtime_functions]


def play_by_functions(episodes: list[Episode], policy, base: FunctionBase, sandbox, top_k: int,
                      record: bool = False, on_step: Callable[[int], None] | None = None,
                      responder=None) -> None:
    """Run every episode to its end with a function-selecting policy.

    `responder` (an `emergencies.EmergencyResponder`) adds functions for emergencies at run time;
    without one, emergencies are played with the base as it is.
    """
    retriever = base.retriever()
    rules = episodes[0].env.rules_text() if episodes else ""
    stages = episodes[0].env.stages if episodes else []
    while live := [e for e in episodes if not e.done]:
        if responder is not None:
            _answer_emergencies(live, responder, base, sandbox, retriever)
        pending = [_Pending(e, e.env.state(), e.env.render(), e.steps) for e in live]
        for stage in stages:
            _select_stage(pending, stage, policy, base, retriever, sandbox, top_k, rules)
        for p in pending:
            _finish_step(p, p.prev, record)
        if on_step:
            on_step(sum(e.done for e in episodes))


def play_by_actions(episodes: list[Episode], policy, on_step: Callable[[int], None] | None = None) -> None:
    """Run every episode with a policy that emits raw decisions (the KD baseline)."""
    while live := [e for e in episodes if not e.done]:
        pending = [_Pending(e, e.env.state(), e.env.render(), e.steps) for e in live]
        replies = policy.act([ActionRequest(p.episode.instruction.text, p.state_text, p.episode.env.action_question)
                               for p in pending])
        for p, reply in zip(pending, replies):
            try:
                decision = kd.parse_action(reply.text)
            except ParseError as exc:
                p.valid, decision = False, None
                p.episode.failures.append(f"step {p.step}: parse: {exc}")
            p.episode.note(step=p.step, stage="action", candidates="", reply=reply.text[:120],
                           outcome="ok" if p.valid else "parse error")
            _finish_step(p, decision, record=False)
        if on_step:
            on_step(sum(e.done for e in episodes))
