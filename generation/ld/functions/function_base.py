"""The function base: teacher-written functions that passed sandbox validation, with their manual.

`build_function_base` turns a teacher reply into a base: parse, then validate stage by stage in a
fresh sandbox process per function (a later stage is fed the outputs of the accepted earlier
stage, so it is tested on realistic inputs). Every rejection is recorded with its reasons.
Functions written at run time for an emergency join the same base with a `scope` (the emergency's
kind): they are offered only in episodes where that emergency is in force (generation/ld/emergencies.py).
"""

from __future__ import annotations

import random

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

from generation.ld.functions.parse_base import DraftFunction, parse_function_base_reply
from generation.ld.functions.retriever import FunctionRetriever, Indexed
from generation.prompts.calls import ParseError, parse_call
from generation.ld.prompts import Candidate
from generation.storage.records import FunctionRecord


@dataclass(frozen=True)
class BaseFunction:
    name: str
    stage: str
    params: list[str]
    doc: str
    manual: str
    source: str
    scope: str = ""  # "" = always applicable; else the emergency kind it was written for

    def candidate(self) -> Candidate:
        return Candidate(self.name, list(self.params), self.doc.strip().splitlines()[0], self.manual)

    def indexed(self) -> Indexed:
        return Indexed(self.name, self.stage, f"{self.doc}\n{self.manual}")


class FunctionBase:
    def __init__(self, functions: list[BaseFunction], stages: list[str]):
        self.stages = list(stages)
        self.functions = {f.name: f for f in functions}

    def add(self, fn: BaseFunction) -> None:
        self.functions[fn.name] = fn

    def signatures(self, names: list[str] | None = None) -> dict[str, list[str]]:
        names = list(self.functions) if names is None else names
        return {n: list(self.functions[n].params) for n in names}

    def sources(self) -> dict[str, str]:
        return {n: f.source for n, f in self.functions.items()}

    def candidates(self, names: list[str]) -> list[Candidate]:
        return [self.functions[n].candidate() for n in names]

    def out_of_scope(self, active_kinds: set[str]) -> set[str]:
        """Names of run-time functions whose emergency is not in force (hidden from retrieval)."""
        return {n for n, f in self.functions.items() if f.scope and f.scope not in active_kinds}

    def retriever(self) -> FunctionRetriever:
        return FunctionRetriever([f.indexed() for f in self.functions.values()])

    def save(self, path: str | Path) -> None:
        data = {"stages": self.stages, "functions": [asdict(f) for f in self.functions.values()]}
        Path(path).write_text(json.dumps(data, indent=1))

    @classmethod
    def load(cls, path: str | Path) -> "FunctionBase":
        data = json.loads(Path(path).read_text())
        return cls([BaseFunction(**f) for f in data["functions"]], data["stages"])


def _example_kwargs(fn: DraftFunction) -> dict[str, Any] | str:
    """Arguments for validation runs, taken from the manual's own usage example."""
    if not fn.params:
        return {}
    if not fn.example:
        return "manual has no usage example to validate the arguments with"
    try:
        return parse_call(fn.example, {fn.name: fn.params}).kwargs
    except ParseError as exc:
        return f"usage example does not parse: {exc}"


def check_draft(fn: DraftFunction, samples: list[tuple[dict, Any]], limits: Any,
               check_output: Callable[[str, dict, Any], str | None]) -> tuple[list[str], list[Any]]:
    """Reasons to reject `fn` (empty when accepted) and its outputs on the samples."""
    from generation.sandbox.runner import validate_function

    kwargs = _example_kwargs(fn)
    if isinstance(kwargs, str):
        return [kwargs], []
    report = validate_function(fn.name, fn.source, samples, limits, sample_kwargs=[kwargs])
    if not report.ok:
        return list(report.reasons), []
    outputs = report.outputs  # one per sample; they feed the next stage's validation
    problems = [p for (state, _), out in zip(samples, outputs) if (p := check_output(fn.stage, state, out))]
    return problems[:3], outputs


def build_function_base(reply: str, stages: list[str], sample_states: list[dict], limits: Any,
                        check_output: Callable[[str, dict, Any], str | None],
                        request_id: str) -> tuple[FunctionBase, list[FunctionRecord]]:
    """Validate every drafted function; `check_output(stage, state, output)` names a bad output."""
    drafts, reply_problems = parse_function_base_reply(reply)
    records: list[FunctionRecord] = []
    accepted: list[BaseFunction] = []
    stage_inputs: list[tuple[dict, Any]] = [(s, None) for s in sample_states]
    for stage in stages:
        next_inputs: list[tuple[dict, Any]] = []
        for fn in [d for d in drafts if d.stage == stage]:
            reasons, outputs = list(fn.problems), []
            if not reasons:
                reasons, outputs = check_draft(fn, stage_inputs, limits, check_output)
            if not reasons:
                accepted.append(BaseFunction(fn.name, stage, fn.params, fn.doc, fn.manual, fn.source))
                next_inputs += [(s, o) for (s, _), o in zip(stage_inputs, outputs)]
            records.append(_record(fn, stage, not reasons, reasons, request_id))
        stage_inputs = next_inputs[: len(sample_states)] or stage_inputs
    for fn in drafts:
        if fn.stage not in stages:
            why = fn.problems or [f"unknown stage {fn.stage!r} (stages: {stages})"]
            records.append(_record(fn, str(fn.stage), False, why, request_id))
    for problem in reply_problems:
        records.append(FunctionRecord(name="<unparsed>", stage="", params=[], doc="", manual="", source="",
                                      accepted=False, reasons=[problem], teacher_request_id=request_id))
    return FunctionBase(accepted, stages), records


def _record(fn: DraftFunction, stage: str, ok: bool, reasons: list[str], request_id: str) -> FunctionRecord:
    return FunctionRecord(name=fn.name, stage=stage, params=fn.params, doc=fn.doc, manual=fn.manual,
                          source=fn.source, accepted=ok, reasons=reasons, teacher_request_id=request_id)


def sample_states(env, seeds: list[int], steps: int = 3) -> list[dict]:
    """Varied states to validate functions on: each seed's start and a few random moves later."""
    states = []
    for seed in seeds:
        env.reset(seed, env.sample_instruction(seed))
        states.append(env.state())
        rng = random.Random(seed)
        for _ in range(steps):
            if env.step(env.random_legal_decision(rng)).done:
                break
        if not env.episode_metrics()["done"]:
            states.append(env.state())
    return states
