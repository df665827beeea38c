"""Parse a policy's reply into one function call: `Call: name(arg=value, ...)`.

The same parser reads the expert teacher, a real LLM and the student, so a malformed reply from
any of them is an invalid decision with a reason, never a crash. Only keyword arguments with
literal values are accepted (parsed by `ast`, never evaluated).
"""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass, field
from typing import Any

CALL_PREFIX = "Call:"
MAX_REPLY_CHARS = 20_000


class ParseError(ValueError):
    """A reply that does not contain one valid call; the message says why."""


@dataclass(frozen=True)
class Call:
    name: str
    kwargs: dict[str, Any] = field(default_factory=dict)

    def render(self) -> str:
        args = ", ".join(f"{k}={json.dumps(v)}" for k, v in self.kwargs.items())
        return f"{CALL_PREFIX} {self.name}({args})"


def _last_call_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines()]
    calls = [ln for ln in lines if ln.lower().startswith(CALL_PREFIX.lower())]
    if not calls:
        raise ParseError(f"no line starting with '{CALL_PREFIX}'")
    return calls[-1][len(CALL_PREFIX):].strip().strip("`").strip()


_JSON_NAMES = {"true": True, "false": False, "null": None}


class _JsonNames(ast.NodeTransformer):
    """`Call.render` writes arguments as JSON: read its true/false/null as the Python constants."""

    def visit_Name(self, node: ast.Name) -> ast.AST:
        return ast.Constant(_JSON_NAMES[node.id]) if node.id in _JSON_NAMES else node


def _join_surrogates(value: Any) -> Any:
    # JSON writes characters beyond U+FFFF as surrogate pairs ("\ud83d\ude00"); Python reads two halves.
    if isinstance(value, str):
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if isinstance(value, list):
        return [_join_surrogates(v) for v in value]
    if isinstance(value, dict):
        return {_join_surrogates(k): _join_surrogates(v) for k, v in value.items()}
    return value


def _literal(node: ast.AST, name: str) -> Any:
    try:
        value = ast.literal_eval(_JsonNames().visit(node))
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        raise ParseError(f"argument '{name}' is not a literal value") from None
    if isinstance(value, tuple):
        value = list(value)  # JSON has no tuples; cells like (3, 4) arrive as lists
    return _join_surrogates(value)


def parse_call(text: str, signatures: dict[str, list[str]]) -> Call:
    """`signatures` maps each allowed function name to its keyword parameters (all required)."""
    if not isinstance(text, str) or not text.strip():
        raise ParseError("empty reply")
    if len(text) > MAX_REPLY_CHARS:
        raise ParseError(f"reply longer than {MAX_REPLY_CHARS} characters")
    expr = _last_call_line(text)
    try:
        tree = ast.parse(expr, mode="eval")
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        raise ParseError(f"call is not valid syntax: {expr[:80]!r}") from None
    node = tree.body
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
        raise ParseError(f"not a plain function call: {expr[:80]!r}")
    name = node.func.id
    if name not in signatures:
        raise ParseError(f"function {name!r} is not among the candidates {sorted(signatures)}")
    if node.args:
        raise ParseError(f"{name}: positional arguments are not allowed, name each argument")
    kwargs: dict[str, Any] = {}
    for kw in node.keywords:
        if kw.arg is None:
            raise ParseError(f"{name}: **kwargs are not allowed")
        if kw.arg not in signatures[name]:
            raise ParseError(f"{name}: unknown argument {kw.arg!r} (expected {signatures[name]})")
        kwargs[kw.arg] = _literal(kw.value, kw.arg)
    missing = [p for p in signatures[name] if p not in kwargs]
    if missing:
        raise ParseError(f"{name}: missing argument(s) {missing}")
    return Call(name, kwargs)
