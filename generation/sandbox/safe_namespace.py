"""The namespace untrusted source runs in: a small builtins table and an allow-list importer.

Imports hand out read-only proxies that carry only a module's public members, so
`random._os` or `typing.sys` (modules that an allowed module imported) stay out of reach,
as do members that walk attributes by string (`operator.attrgetter`). Stdlib only.
"""

import builtins
import importlib
import types
from collections.abc import Callable, Iterable

from generation.sandbox.static_check import FORBIDDEN_NAMES, is_import_allowed


class SandboxViolation(Exception):
    """Untrusted code asked for something the sandbox forbids (an import, a builtin)."""


_SAFE_BUILTIN_NAMES = (
    "abs", "all", "any", "ascii", "bin", "bool", "bytearray", "bytes", "callable", "chr",
    "classmethod", "complex", "dict", "divmod", "enumerate", "filter", "float", "format",
    "frozenset", "hasattr", "hash", "hex", "id", "int", "isinstance", "issubclass", "iter", "len",
    "list", "map", "max", "min", "next", "object", "oct", "ord", "pow", "property", "range",
    "repr", "reversed", "round", "set", "slice", "sorted", "staticmethod", "str", "sum", "super",
    "tuple", "type", "zip", "True", "False", "None", "NotImplemented", "Ellipsis",
    "ArithmeticError", "AssertionError", "BaseException", "AttributeError", "Exception", "IndexError", "KeyError",
    "LookupError", "NotImplementedError", "OverflowError", "RecursionError", "RuntimeError",
    "StopIteration", "TypeError", "ValueError", "ZeroDivisionError",
    "__build_class__",  # executes `class` statements; not reachable by name (static check)
)


def _discard_print(*args: object, **kwargs: object) -> None:
    """Teacher code may leave debug prints in; they go nowhere rather than into the protocol."""


class ModuleProxy(types.SimpleNamespace):
    """What `import math` binds inside the sandbox: the module's public members only."""

    def __getattr__(self, attr: str) -> object:  # only called for missing attributes
        module = self.__dict__.get("__name__", "?")
        raise AttributeError(f"module {module!r} has no attribute {attr!r} available in the sandbox")

    def __repr__(self) -> str:
        return f"<sandboxed module {self.__dict__.get('__name__', '?')!r}>"


def _module_proxy(module: types.ModuleType, allowed_imports: tuple[str, ...]) -> ModuleProxy:
    """A namespace with the module's public API: `__all__` if declared, else non-underscore names."""
    public = getattr(module, "__all__", None) or [n for n in dir(module) if not n.startswith("_")]
    members: dict[str, object] = {"__name__": module.__name__}
    for name in public:
        value = getattr(module, name, None)
        if name in FORBIDDEN_NAMES or name.startswith("_"):
            continue
        if isinstance(value, types.ModuleType):
            if not is_import_allowed(value.__name__, allowed_imports):
                continue
            value = _module_proxy(value, allowed_imports)
        members[name] = value
    return ModuleProxy(**members)


def make_importer(allowed_imports: Iterable[str]) -> Callable[..., ModuleProxy]:
    """An `__import__` replacement that admits only allowed modules, as proxies."""
    allowed = tuple(allowed_imports)
    proxies: dict[str, ModuleProxy] = {}

    def proxy_of(name: str) -> ModuleProxy:
        if name not in proxies:
            proxies[name] = _module_proxy(importlib.import_module(name), allowed)
        return proxies[name]

    def restricted_import(name, globals=None, locals=None, fromlist=(), level=0):  # noqa: A002
        if level:
            raise SandboxViolation(f"relative import of {name!r} is not allowed")
        if not is_import_allowed(name, allowed):
            raise SandboxViolation(f"import of {name!r} is not allowed")
        if fromlist:
            return proxy_of(name)
        # `import a.b` binds `a`, whose proxy must then carry `b`
        top, *rest = name.split(".")
        top_proxy = proxy_of(top)
        parent, dotted = top_proxy, top
        for part in rest:
            dotted += "." + part
            if not hasattr(parent, part):
                setattr(parent, part, proxy_of(dotted))
            parent = getattr(parent, part)
        return top_proxy

    return restricted_import


def make_builtins(allowed_imports: Iterable[str]) -> dict[str, object]:
    """The `__builtins__` dict for untrusted globals."""
    table: dict[str, object] = {name: getattr(builtins, name) for name in _SAFE_BUILTIN_NAMES}
    table["print"] = _discard_print
    table["__import__"] = make_importer(allowed_imports)
    return table


def preimport(allowed_imports: Iterable[str]) -> None:
    """Import every allowed module now, while the worker can still read the file system."""
    for name in allowed_imports:
        try:
            importlib.import_module(name)
        except ImportError:
            pass  # a module missing here fails later with a clear ImportError in the function


def new_globals(module_name: str, safe_builtins: dict[str, object]) -> dict[str, object]:
    """Fresh globals for one source text; `__name__` is needed by `class` statements."""
    return {"__builtins__": safe_builtins, "__name__": module_name}
