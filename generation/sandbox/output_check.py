"""Checks that a function's return value is plain JSON data, and encodes it.

Data crosses the process boundary, never live objects: only dict (string keys), list,
tuple (sent as a list), str, int, float (finite), bool and None are accepted. Stdlib only.
"""

import json
from typing import Any

MAX_DEPTH = 64
_SCALARS = (str, int, float, bool, type(None))


class BadOutput(Exception):
    """The return value is not JSON data, or is too large."""


class _NotData(Exception):
    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem
        self.path: list[str] = []


def _check(value: Any, depth: int) -> None:
    if isinstance(value, _SCALARS):
        return
    if depth >= MAX_DEPTH:
        raise _NotData(f"is nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise _NotData(f"has key {key!r:.80} of type {type(key).__name__}; JSON keys must be strings")
            try:
                _check(item, depth + 1)
            except _NotData as error:
                error.path.append(f"[{key!r:.80}]")
                raise
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            try:
                _check(item, depth + 1)
            except _NotData as error:
                error.path.append(f"[{index}]")
                raise
    else:
        raise _NotData(f"is a {type(value).__name__}, not JSON data (dict, list, str, int, float, bool, None)")


def encode_output(value: Any, max_bytes: int) -> str:
    """The compact JSON text of `value`; raises BadOutput naming where the problem is."""
    try:
        _check(value, 0)
        text = json.dumps(value, allow_nan=False, separators=(",", ":"))
    except _NotData as error:
        where = "result" + "".join(reversed(error.path))
        raise BadOutput(f"return value is not JSON data: {where} {error.problem}") from None
    except ValueError as error:  # NaN or infinity
        raise BadOutput(f"return value is not JSON data: {error}") from None
    if len(text) > max_bytes:  # ASCII-only (ensure_ascii), so characters are bytes
        raise BadOutput(f"return value is {len(text)} bytes of JSON; the limit is {max_bytes}")
    return text
