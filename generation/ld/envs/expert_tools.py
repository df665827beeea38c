"""What every built-in scripted expert shares: its function-base reply, and choosing among candidates."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable


def function_base_reply(folder: Path) -> str:
    """The expert teacher's whole reply: one python block (`teacher_functions.py.txt`), then the
    `## Manual` section (`manual.md`), exactly the format the function-base prompt asks an LLM for."""
    source = (folder / "teacher_functions.py.txt").read_text()
    manual = (folder / "manual.md").read_text()
    return f"```python\n{source.rstrip()}\n```\n\n{manual.strip()}\n"


def choose(preferences: Iterable[tuple[str, dict[str, Any]]], candidates: list[str], stage: str,
           function_stages: dict[str, str], last_resort_excluded: tuple[str, ...] = ()) -> tuple[str, dict[str, Any]]:
    """The first preferred call among `candidates`; else a known function of `stage` (preferring
    those not in `last_resort_excluded`); else the first candidate, so the expert always answers."""
    if not candidates:
        raise ValueError("an expert needs at least one candidate function")
    offered = set(candidates)
    for name, kwargs in preferences:
        if name in offered:
            return name, kwargs
    same_stage = [n for n in candidates if function_stages.get(n) == stage]
    for name in [n for n in same_stage if n not in last_resort_excluded] + same_stage:
        return name, {}
    return candidates[0], {}
