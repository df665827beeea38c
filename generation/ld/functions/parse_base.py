"""Split a teacher's function-base reply into functions with their docs, params and manual entries.

The reply is untrusted text: nothing here executes it. One function with a syntax error is
rejected alone (the code is cut at top-level `def`s before parsing) instead of spoiling the base.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field

CODE_BLOCK = re.compile(r"```(?:python|py)?[ \t]*\n(.*?)```", re.DOTALL)
MANUAL_HEADING = re.compile(r"^#{2}\s*Manual\s*$", re.MULTILINE | re.IGNORECASE)
ENTRY_HEADING = re.compile(r"^#{3}\s*`?([A-Za-z_][A-Za-z0-9_]*)`?.*$", re.MULTILINE)
STAGE_LINE = re.compile(r"^\s*[-*]?\s*\**Stage\**:\s*\**\s*([A-Za-z0-9_\-]+)", re.MULTILINE | re.IGNORECASE)
EXAMPLE_LINE = re.compile(r"(Call:\s*[A-Za-z_][A-Za-z0-9_]*\(.*\))")


class FunctionBaseParseError(ValueError):
    """The reply has no usable code block at all."""


@dataclass
class DraftFunction:
    """A function as written by the teacher, before sandbox validation."""

    name: str
    source: str  # self-contained: imports + private helpers + the def
    params: list[str] = field(default_factory=list)
    doc: str = ""
    stage: str | None = None
    manual: str = ""
    example: str | None = None
    problems: list[str] = field(default_factory=list)


def _chunks(code: str) -> list[str]:
    """Top-level statements grouped so each `def` (with its decorators/body) is one chunk."""
    starts = [m.start() for m in re.finditer(r"^(?:def |import |from |@)", code, re.MULTILINE)]
    if not starts or starts[0] != 0:
        starts = [0, *starts]
    bounds = [*starts, len(code)]
    return [code[a:b] for a, b in zip(bounds, bounds[1:]) if code[a:b].strip()]


def _params(node: ast.FunctionDef) -> tuple[list[str], str | None]:
    positional = [a.arg for a in node.args.posonlyargs + node.args.args]
    if positional[:2] != ["state", "prev"]:
        return [], "signature must start with (state, prev)"
    return positional[2:] + [a.arg for a in node.args.kwonlyargs], None


def _split_code(code: str) -> tuple[list[DraftFunction], str, list[str]]:
    """Public functions, the shared preamble (imports + `_helpers`), and chunk-level problems."""
    public: list[DraftFunction] = []
    preamble: list[str] = []
    problems: list[str] = []
    for chunk in _chunks(code):
        try:
            tree = ast.parse(chunk)
        except SyntaxError as exc:
            head = chunk.strip().splitlines()[0][:60]
            problems.append(f"syntax error in {head!r}: {exc.msg}")
            continue
        for node in tree.body:
            text = ast.get_source_segment(chunk, node) or ""
            if isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
                params, problem = _params(node)
                fn = DraftFunction(node.name, text, params, ast.get_docstring(node) or "")
                if problem:
                    fn.problems.append(problem)
                if not fn.doc:
                    fn.problems.append("missing docstring")
                public.append(fn)
            else:
                preamble.append(text)
    return public, "\n\n".join(preamble), problems


def _manual_entries(manual: str) -> dict[str, str]:
    heads = list(ENTRY_HEADING.finditer(manual))
    ends = [h.start() for h in heads[1:]] + [len(manual)]
    return {h.group(1): manual[h.end():end].strip() for h, end in zip(heads, ends)}


def parse_function_base_reply(text: str) -> tuple[list[DraftFunction], list[str]]:
    """Drafts for every public function in the reply, plus reply-level problems."""
    blocks = CODE_BLOCK.findall(text or "")
    if not blocks:
        raise FunctionBaseParseError("reply has no ```python code block")
    drafts, preamble, problems = _split_code("\n\n".join(blocks))
    if not drafts:
        raise FunctionBaseParseError("code block defines no public function")
    manual_match = MANUAL_HEADING.search(text)
    entries = _manual_entries(text[manual_match.end():]) if manual_match else {}
    for fn in drafts:
        fn.source = f"{preamble}\n\n{fn.source}".strip() + "\n"
        entry = entries.get(fn.name, "")
        fn.manual = entry
        stage = STAGE_LINE.search(entry)
        fn.stage = stage.group(1) if stage else None
        example = EXAMPLE_LINE.search(entry)
        fn.example = example.group(1) if example else None
        if not entry:
            fn.problems.append("no manual entry")
        elif fn.stage is None:
            fn.problems.append("manual entry has no 'Stage:' line")
    return drafts, problems
