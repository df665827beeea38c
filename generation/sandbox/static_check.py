"""Pure AST validation of teacher-written source, before any of it runs.

This is the first of several layers (the worker's restricted namespace and the OS limits
are the others): it rejects the well-known ways out of a Python namespace (imports,
dunder attribute walks, frame introspection, string-based attribute access) with a
message the teacher can act on. Stdlib only: the sandbox worker imports it too.
"""

import ast
import re
from collections.abc import Iterable

MAX_SOURCE_CHARS = 200_000

# Builtins that reach the interpreter, the file system or attributes by string.
FORBIDDEN_NAMES = frozenset(
    {
        "__import__", "eval", "exec", "compile", "open", "globals", "locals", "vars", "input",
        "breakpoint", "getattr", "setattr", "delattr", "memoryview", "exit", "quit", "help",
        "__builtins__", "__loader__", "__spec__",
        # module members that turn a string into an attribute walk or an evaluation
        "attrgetter", "methodcaller", "get_type_hints", "Formatter", "ForwardRef",
    }
)

# Non-dunder attributes that lead from a generator, frame or traceback to the
# worker's globals (and from there to the real builtins).
FORBIDDEN_ATTRIBUTES = frozenset(
    {
        "gi_frame", "gi_code", "gi_yieldfrom", "cr_frame", "cr_code", "cr_await", "cr_origin",
        "ag_frame", "ag_code", "ag_await", "f_back", "f_globals", "f_locals", "f_builtins",
        "f_code", "f_trace", "tb_frame", "tb_next", "co_code", "co_consts", "func_globals", "mro",
        "attrgetter", "methodcaller", "get_type_hints", "Formatter", "ForwardRef",
    }
)

# Dunder methods a class body may define: plain data-model hooks, none of which
# changes how attributes are looked up or runs code at collection time.
SAFE_DUNDER_METHODS = frozenset(
    {
        "__init__", "__post_init__", "__repr__", "__str__", "__eq__", "__ne__", "__lt__",
        "__le__", "__gt__", "__ge__", "__hash__", "__len__", "__iter__", "__next__",
        "__contains__", "__getitem__", "__setitem__", "__delitem__", "__bool__", "__add__",
        "__sub__", "__mul__", "__truediv__", "__floordiv__", "__mod__", "__neg__", "__abs__",
        "__radd__", "__rsub__", "__rmul__", "__iadd__", "__isub__", "__call__",
    }
)

# "{0.__class__}".format(x) walks attributes at run time, out of the AST's sight.
_FORMAT_FIELD_DUNDER = re.compile(r"\{[^{}]*__")


def is_import_allowed(module: str, allowed_imports: Iterable[str]) -> bool:
    """True when `module` is an allowed module or a submodule of one (collections.abc)."""
    return any(module == allowed or module.startswith(allowed + ".") for allowed in allowed_imports)


def find_violations(
    source: str, *, entry_points: Iterable[str] = (), allowed_imports: Iterable[str]
) -> list[str]:
    """Every reason `source` may not run, as human-readable lines; empty when it may.

    `entry_points` are the function names the source must define at top level as
    `def name(state, prev, **kwargs)`.
    """
    if not isinstance(source, str):
        return [f"source must be a string, got {type(source).__name__}"]
    if len(source) > MAX_SOURCE_CHARS:
        return [f"source is {len(source)} characters long; the limit is {MAX_SOURCE_CHARS}"]
    try:
        tree = ast.parse(source)
    except SyntaxError as error:
        return [f"syntax error at line {error.lineno}: {error.msg}"]
    except (ValueError, RecursionError, MemoryError) as error:
        return [f"source could not be parsed: {type(error).__name__}: {error}"]
    checker = _NodeChecker(tuple(allowed_imports))
    checker.visit(tree)
    violations = checker.violations
    violations.extend(_entry_point_violations(tree, entry_points))
    return list(dict.fromkeys(violations))  # same problem on the same line reported once


class _NodeChecker(ast.NodeVisitor):
    """Collects violations while walking the whole tree."""

    def __init__(self, allowed_imports: tuple[str, ...]) -> None:
        self.allowed_imports = allowed_imports
        self.violations: list[str] = []
        self._class_depth = 0

    def _flag(self, node: ast.AST, message: str) -> None:
        self.violations.append(f"line {getattr(node, 'lineno', '?')}: {message}")

    def _check_module(self, node: ast.AST, module: str) -> None:
        if not is_import_allowed(module, self.allowed_imports):
            self._flag(node, f"import of {module!r} is not allowed")

    def _check_bound_name(self, node: ast.AST, name: str | None) -> None:
        if name and (name.startswith("__") or name in FORBIDDEN_NAMES):
            self._flag(node, f"name {name!r} is not allowed")

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._check_module(node, alias.name)
            self._check_bound_name(node, alias.asname)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            self._flag(node, f"relative import {'.' * node.level}{node.module or ''} is not allowed")
            return
        self._check_module(node, node.module or "")
        for alias in node.names:
            self._check_bound_name(node, alias.name)
            self._check_bound_name(node, alias.asname)

    def visit_Name(self, node: ast.Name) -> None:
        if node.id in FORBIDDEN_NAMES:
            self._flag(node, f"use of {node.id!r} is not allowed")
        elif node.id.startswith("__"):
            self._flag(node, f"name {node.id!r} is not allowed (names starting with '__' are reserved)")

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if node.attr.startswith("__") or node.attr in FORBIDDEN_ATTRIBUTES:
            self._flag(node, f"access to attribute {node.attr!r} is not allowed")
        self.generic_visit(node)

    def visit_MatchClass(self, node: ast.MatchClass) -> None:
        # `case object(__class__=c)` reads an attribute without an Attribute node
        for attr in node.kwd_attrs:
            if attr.startswith("__") or attr in FORBIDDEN_ATTRIBUTES:
                self._flag(node, f"access to attribute {attr!r} in a match pattern is not allowed")
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, str) and _FORMAT_FIELD_DUNDER.search(node.value):
            self._flag(node, "format string reaching a '__' attribute is not allowed")

    def visit_Global(self, node: ast.Global) -> None:
        for name in node.names:
            self._check_bound_name(node, name)

    visit_Nonlocal = visit_Global

    def _visit_definition(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> None:
        in_class_body = self._class_depth > 0
        is_safe_method = in_class_body and node.name in SAFE_DUNDER_METHODS
        if node.name.startswith("__") and not is_safe_method:
            self._flag(node, f"definition of {node.name!r} is not allowed")
        elif node.name in FORBIDDEN_NAMES:
            self._flag(node, f"definition of {node.name!r} is not allowed")
        is_class = isinstance(node, ast.ClassDef)
        # only the direct body of a class holds its methods
        saved_depth = self._class_depth
        self._class_depth = 1 if is_class else 0
        self.generic_visit(node)
        self._class_depth = saved_depth

    visit_FunctionDef = _visit_definition
    visit_AsyncFunctionDef = _visit_definition
    visit_ClassDef = _visit_definition


def _entry_point_violations(tree: ast.Module, entry_points: Iterable[str]) -> list[str]:
    top_level = {
        node.name: node
        for node in tree.body
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
    }
    violations = []
    for name in entry_points:
        node = top_level.get(name)
        if node is None:
            violations.append(f"required function {name!r} is not defined at top level")
        elif not isinstance(node, ast.FunctionDef):
            violations.append(f"{name!r} must be a plain `def {name}(state, prev, **kwargs)`")
        else:
            problem = _signature_problem(node)
            if problem:
                violations.append(f"line {node.lineno}: {name!r} {problem}")
    return violations


def _signature_problem(node: ast.FunctionDef) -> str | None:
    args = node.args
    positional = args.posonlyargs + args.args
    if [arg.arg for arg in positional[:2]] != ["state", "prev"]:
        found = ", ".join(arg.arg for arg in positional) or "no positional parameters"
        return f"must take (state, prev) as its first two parameters, found ({found})"
    if len(args.posonlyargs) > 2:
        return "may not have positional-only parameters after (state, prev): options are passed by keyword"
    if args.vararg is not None:
        return "may not take *args: options are passed by keyword"
    return None
