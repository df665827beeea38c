"""Validation of functions that join the base while episodes run (written for an emergency).

The same checks as the function base (parse, static check, sandbox runs on sample inputs, the env's
output check), plus: a run-time function may not take an existing name (it could otherwise replace
a validated function), and its stage must be one of the env's. Sample inputs come from the live
episode: its current state, and for a later stage the outputs of the base's own functions of the
stage before (run in the worker's sandbox), so the new function is tested on what it will be fed.
"""

from __future__ import annotations

import json
from typing import Any, Callable

from generation.ld.functions.function_base import BaseFunction, FunctionBase, check_draft
from generation.ld.functions.parse_base import EXAMPLE_LINE, FunctionBaseParseError, parse_function_base_reply
from generation.prompts.calls import ParseError, parse_call
from generation.storage.records import FunctionRecord

MAX_FUNCTIONS_PER_EMERGENCY = 4


def _example_kwargs(fn: BaseFunction) -> dict[str, Any] | None:
    match = EXAMPLE_LINE.search(fn.manual)
    if not fn.params:
        return {}
    if not match:
        return None
    try:
        return parse_call(match.group(1), {fn.name: fn.params}).kwargs
    except ParseError:
        return None


def stage_samples(base: FunctionBase, sandbox: Any, states: list[dict], stages: list[str],
                  per_state: int = 3) -> dict[str, list[tuple[dict, Any]]]:
    """(state, prev) inputs per stage: the first stage gets prev=None, each later stage the outputs of
    the base's functions of the stage before (with their manual's example arguments; failures skipped)."""
    samples: dict[str, list[tuple[dict, Any]]] = {stages[0]: [(s, None) for s in states]}
    for before, stage in zip(stages, stages[1:]):
        seen, outputs = set(), []
        for state, prev in samples[before]:
            kept = 0
            for fn in (f for f in base.functions.values() if f.stage == before and not f.scope):
                kwargs = _example_kwargs(fn)
                if kwargs is None or kept >= per_state:
                    continue
                try:
                    out = sandbox.call_with_kwargs(fn.name, state, prev, kwargs)
                except Exception:  # noqa: BLE001 - an example that does not fit this state is no sample
                    continue
                key = json.dumps([state, out], sort_keys=True, default=str)
                if key not in seen:
                    seen.add(key)
                    outputs.append((state, out))
                    kept += 1
        samples[stage] = outputs or [(s, None) for s in states]
    return samples


def build_runtime_functions(reply: str, stages: list[str], samples: dict[str, list[tuple[dict, Any]]],
                            limits: Any, check_output: Callable[[str, dict, Any], str | None], request_id: str,
                            scope: str, taken: set[str]) -> tuple[list[BaseFunction], list[FunctionRecord]]:
    """Validate the functions of an emergency reply; accepted ones carry `scope` (the emergency kind)."""
    try:
        drafts, reply_problems = parse_function_base_reply(reply)
    except FunctionBaseParseError as exc:
        drafts, reply_problems = [], [str(exc)]
    accepted: list[BaseFunction] = []
    records: list[FunctionRecord] = []
    for fn in drafts:
        reasons = list(fn.problems)
        if fn.name in taken:
            reasons.append(f"name {fn.name!r} is already in the function base")
        if fn.stage not in stages and not reasons:
            reasons.append(f"unknown stage {fn.stage!r} (stages: {stages})")
        if len(accepted) >= MAX_FUNCTIONS_PER_EMERGENCY and not reasons:
            reasons.append(f"more than {MAX_FUNCTIONS_PER_EMERGENCY} functions for one emergency")
        if not reasons:
            reasons, _ = check_draft(fn, samples[fn.stage], limits, check_output)
        if not reasons:
            accepted.append(BaseFunction(fn.name, fn.stage, fn.params, fn.doc, fn.manual, fn.source, scope=scope))
            taken = taken | {fn.name}
        records.append(FunctionRecord(name=fn.name, stage=str(fn.stage or ""), params=fn.params, doc=fn.doc,
                                      manual=fn.manual, source=fn.source, accepted=not reasons, reasons=reasons,
                                      teacher_request_id=request_id))
    for problem in reply_problems:
        records.append(FunctionRecord(name="<unparsed>", stage="", params=[], doc="", manual="", source="",
                                      accepted=False, reasons=[problem], teacher_request_id=request_id))
    return accepted, records
