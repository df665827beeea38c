"""The import rules of the design notes, checked over the source (AST, function-level imports included).

Imports flow one way: configs <- generation <- training <- ray_jobs <- launch. `training` may import only
the storage leaf of generation (`generation.storage`); that leaf imports nothing else of generation;
package `__init__.py` files import no heavy library; the module graph has no cycle. Imports under
`if TYPE_CHECKING:` never run, so they are exempt. Each problem names the file, the line and the import.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LAYERS = ("configs", "generation", "training", "ray_jobs", "launch")  # each may import only those before it
STORAGE = "generation.storage"  # the one part of generation that training may import
HEAVY = frozenset({"torch", "ray", "deepspeed", "wandb", "transformers"})


@dataclass(frozen=True)
class Import:
    module: str  # the importing module
    path: str  # its file, relative to the root
    line: int
    text: str  # the import statement as written
    target: str  # the imported module (the longest known module for names inside the tree)


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking_only(node: ast.AST) -> bool:
    test = node.test if isinstance(node, ast.If) else None
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _statements(tree: ast.AST):
    """Every import statement that can run, at any depth; the body of `if TYPE_CHECKING:` is skipped."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        children = node.orelse if _type_checking_only(node) else ast.iter_child_nodes(node)
        stack.extend(children)


def _known(name: str, known: set[str]) -> str:
    """The longest prefix of `name` that is a module of the tree (the name itself outside the tree)."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in known:
            return ".".join(parts[:end])
    return name


def _targets(node: ast.Import | ast.ImportFrom, module: str, is_package: bool, known: set[str]) -> list[str]:
    if isinstance(node, ast.Import):
        return [_known(alias.name, known) for alias in node.names]
    base = node.module or ""
    if node.level:
        package = module.split(".") if is_package else module.split(".")[:-1]
        base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
    # `from a import b` imports the module a.b when there is one, else a name of a
    return [_known(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base, known)
            for alias in node.names]


def collect_imports(root: Path) -> list[Import]:
    files = sorted(p for layer in LAYERS if (root / layer).is_dir() for p in (root / layer).rglob("*.py"))
    known = {module_name(root, p) for p in files}
    out = []
    for path in files:
        module, source = module_name(root, path), path.read_text()
        for node in _statements(ast.parse(source, filename=str(path))):
            text = (ast.get_source_segment(source, node) or "").replace("\n", " ")
            for target in _targets(node, module, path.name == "__init__.py", known):
                out.append(Import(module, str(path.relative_to(root)), node.lineno, text, target))
    return out


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def rule_problems(imports: list[Import]) -> list[str]:
    problems = []
    for imp in imports:
        where = f"{imp.path}:{imp.line}: {imp.module} imports {imp.target} (`{imp.text}`)"
        source_top, target_top = imp.module.split(".")[0], imp.target.split(".")[0]
        if target_top in LAYERS and LAYERS.index(target_top) > LAYERS.index(source_top):
            problems.append(f"{where}: against the flow {' <- '.join(LAYERS)}")
        elif source_top == "training" and target_top == "generation" and not _within(imp.target, STORAGE):
            problems.append(f"{where}: training may import only {STORAGE} of generation")
        elif (_within(imp.module, STORAGE) and target_top == "generation"
              and not _within(imp.target, STORAGE)):
            problems.append(f"{where}: {STORAGE} is a leaf (configs and libraries only)")
        if imp.path.endswith("__init__.py") and target_top in HEAVY:
            problems.append(f"{where}: a package __init__.py imports no heavy library ({', '.join(sorted(HEAVY))})")
    return problems


def _graph(imports: list[Import]) -> dict[str, dict[str, Import]]:
    """Module -> imported module -> one import that makes the edge; importing a.b.c runs a and a.b too."""
    graph: dict[str, dict[str, Import]] = {imp.module: {} for imp in imports}
    for imp in imports:
        if imp.target.split(".")[0] not in LAYERS:
            continue
        parts = imp.target.split(".")
        for end in range(1, len(parts) + 1):
            target = ".".join(parts[:end])
            if target != imp.module:
                graph[imp.module].setdefault(target, imp)
    return graph


def _cycle_from(start: str, graph: dict[str, dict[str, Import]]) -> list[Import] | None:
    """Edges of one shortest cycle through `start` (breadth-first), or None."""
    paths: dict[str, list[Import]] = {start: []}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for target, imp in sorted(graph.get(node, {}).items()):
            if target == start:
                return paths[node] + [imp]
            if target not in paths:
                paths[target] = paths[node] + [imp]
                queue.append(target)
    return None


def cycle_problems(imports: list[Import]) -> list[str]:
    graph, seen, problems = _graph(imports), set(), []
    for module in sorted(graph):
        cycle = None if module in seen else _cycle_from(module, graph)
        if cycle:
            seen.update(imp.module for imp in cycle)
            steps = "; ".join(f"{imp.path}:{imp.line} {imp.module} -> {imp.target} (`{imp.text}`)" for imp in cycle)
            problems.append(f"import cycle: {steps}")
    return problems


def _defined_names(path: Path) -> set[str]:
    """Names a module defines or imports at its top level (what `from module import name` can find)."""
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(t.id for t in targets if isinstance(t, ast.Name))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
    return names


def missing_problems(root: Path) -> list[str]:
    """Imports of the tree's own modules that name a module or a name that is not there (a function-level
    import of a moved module fails only when that function runs)."""
    files = {module_name(root, p): p for layer in LAYERS if (root / layer).is_dir() for p in (root / layer).rglob("*.py")}
    problems = []
    for module, path in sorted(files.items()):
        for node in _statements(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and not node.level and node.module:
                wanted = [(node.module, alias.name) for alias in node.names]
            elif isinstance(node, ast.Import):
                wanted = [(alias.name, None) for alias in node.names]
            else:
                continue
            for target, name in wanted:
                if target.split(".")[0] not in LAYERS:
                    continue
                if target not in files:
                    missing = target
                elif name and f"{target}.{name}" not in files and name not in _defined_names(files[target]):
                    missing = f"{target}.{name}"
                else:
                    continue
                problems.append(f"{path.relative_to(root)}:{node.lineno}: {module} imports {missing}, which does "
                                f"not exist")
    return problems


def import_problems(root: Path) -> list[str]:
    imports = collect_imports(root)
    return rule_problems(imports) + cycle_problems(imports)


# ---- tests -------------------------------------------------------------------------------------
def test_the_repository_keeps_the_import_rules():
    assert len(collect_imports(REPO)) > 100  # the checker really read the tree
    problems = import_problems(REPO) + missing_problems(REPO)
    assert not problems, "import rules broken:\n" + "\n".join(problems)


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_the_checker_names_each_broken_rule_with_its_line(tmp_path):
    _write(tmp_path, {
        "configs/__init__.py": "",
        "configs/schema.py": "import pydantic\n",
        "generation/__init__.py": "import torch\n",
        "generation/ld/__init__.py": "",
        "generation/ld/rollout.py": "from configs.schema import x\n\n\ndef f():\n    from training.loop import g\n",
        "generation/storage/__init__.py": "",
        "generation/storage/records.py": "from ..ld import rollout\n",
        "training/__init__.py": "",
        "training/loop.py": ("from typing import TYPE_CHECKING\nfrom generation.storage.records import R\n"
                             "if TYPE_CHECKING:\n    from launch.cli import main\n"
                             "import generation.ld.rollout\n"),
        "ray_jobs/__init__.py": "",
        "launch/__init__.py": "",
        "launch/a.py": "from launch.b import y\n",
        "launch/b.py": "def y():\n    from launch import a\n",
    })
    problems = import_problems(tmp_path)
    expected = [
        "generation/__init__.py:1: generation imports torch (`import torch`): a package __init__.py",
        "generation/ld/rollout.py:5: generation.ld.rollout imports training.loop (`from training.loop import g`): "
        "against the flow",
        "generation/storage/records.py:1: generation.storage.records imports generation.ld.rollout "
        "(`from ..ld import rollout`): generation.storage is a leaf",
        "training/loop.py:5: training.loop imports generation.ld.rollout (`import generation.ld.rollout`): "
        "training may import only generation.storage",
    ]
    for text in expected:
        assert sum(p.startswith(text) for p in problems) == 1, (text, problems)
    cycles = [p for p in problems if p.startswith("import cycle")]
    assert any("launch/a.py:1 launch.a -> launch.b" in c and "launch/b.py:2 launch.b -> launch.a" in c
               for c in cycles), cycles
    # generation.ld.rollout -> training.loop -> generation.ld.rollout, found once
    assert sum("generation/ld/rollout.py:5" in c and "training/loop.py:5" in c for c in cycles) == 1, cycles
    assert not any("launch.cli" in p for p in problems)  # under TYPE_CHECKING: exempt
    assert len(problems) == len(expected) + 3, problems  # cycles: a <-> b, rollout <-> loop, records -> rollout


def test_an_import_of_a_module_or_name_that_is_not_there_is_named(tmp_path):
    _write(tmp_path, {
        "configs/__init__.py": "", "configs/schema.py": "X = 1\n",
        "launch/__init__.py": "", "launch/cli.py": ("from configs.schema import X\n\n\ndef main():\n"
                                                    "    from launch import study\n    from configs.schema import Y\n"
                                                    "    import configs.gone\n"),
    })
    assert sorted(missing_problems(tmp_path)) == [
        "launch/cli.py:5: launch.cli imports launch.study, which does not exist",
        "launch/cli.py:6: launch.cli imports configs.schema.Y, which does not exist",
        "launch/cli.py:7: launch.cli imports configs.gone, which does not exist"]


def test_a_clean_tree_has_no_problems(tmp_path):
    _write(tmp_path, {
        "configs/__init__.py": "", "configs/schema.py": "",
        "generation/__init__.py": "", "generation/storage/__init__.py": "",
        "generation/storage/records.py": "from configs import schema\nimport numpy\n",
        "training/__init__.py": "", "training/loop.py": "from generation.storage import records\nimport torch\n",
        "launch/__init__.py": "", "launch/cli.py": "def main():\n    from training.loop import x\n",
    })
    assert import_problems(tmp_path) == []
