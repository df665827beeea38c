"""The pursuit function base as text resources (never imported as code by the pipeline).

`teacher_functions.py.txt` is what the built-in expert teacher writes when asked for the function
base; `manual.md` is its user manual. The reply is parsed and validated in the sandbox like any
teacher's reply.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from configs.task_schema import EMERGENCY_KINDS
from generation.ld.envs import expert_tools

_HERE = Path(__file__).parent
_KIND = re.compile(r"^[a-z]+$")


def teacher_functions_source() -> str:
    return (_HERE / "teacher_functions.py.txt").read_text()


def manual_text() -> str:
    return (_HERE / "manual.md").read_text()


def function_base_reply() -> str:
    return expert_tools.function_base_reply(_HERE)


def emergency_reply(kind: str, text: str, state: dict[str, Any] | None = None) -> str:
    """The expert teacher's reply to an emergency: a move function that detours around its cells, or for
    a new kind of evader (the `evader` family) one that hunts it by its announced rule.

    The function reads the cells from the state, so one reply serves every emergency of `kind`;
    `text` and `state` are what an LLM would read (the scripted expert needs only the kind).
    """
    if not isinstance(kind, str) or not _KIND.match(kind):
        raise ValueError(f"emergency kind must be one lowercase word, got {kind!r}")
    # a new kind of evader needs a hunter; the other families a detour (configs.task_schema.EMERGENCY_KINDS)
    stem = "emergency_evader" if EMERGENCY_KINDS.get(kind) == "evader" else "emergency"
    code = (_HERE / f"{stem}_functions.py.txt").read_text().replace("__KIND__", kind)
    manual = (_HERE / f"{stem}_manual.md").read_text().replace("__KIND__", kind)
    return f"```python\n{code.rstrip()}\n```\n\n{manual.strip()}\n"
