"""The 21 Points function base as text resources (never imported as code by the pipeline).

`teacher_functions.py.txt` is what the built-in expert teacher writes when asked for the function
base; `manual.md` is its user manual. The reply is parsed and validated in the sandbox like any
teacher's reply.
"""

from __future__ import annotations

from pathlib import Path

from generation.ld.envs import expert_tools

_HERE = Path(__file__).parent


def teacher_functions_source() -> str:
    return (_HERE / "teacher_functions.py.txt").read_text()


def manual_text() -> str:
    return (_HERE / "manual.md").read_text()


def function_base_reply() -> str:
    return expert_tools.function_base_reply(_HERE)
