"""The package's modules import one another without a cycle (function-level imports included)."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "earlyexit"


def _module(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _resolve(name: str) -> str | None:
    """A dotted name as a module of the package (a package's ``__init__``), or None outside it."""
    while name.startswith("earlyexit"):
        base = PACKAGE.parent / Path(*name.split("."))
        if base.with_suffix(".py").exists() or (base / "__init__.py").exists():
            return name
        name = name.rsplit(".", 1)[0]
    return None


def _edges() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        me = _module(path)
        package = me if path.name == "__init__.py" else me.rsplit(".", 1)[0]
        out = edges.setdefault(me, set())
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
                names = [f"{target}.{a.name}" for a in node.names]
                hits = {_resolve(n) for n in names} | {_resolve(target)}
                out |= {h for h in hits if h and h != me}
            elif isinstance(node, ast.Import):
                out |= {h for a in node.names if (h := _resolve(a.name)) and h != me}
    return edges


def _cycle(edges):
    state, stack = {}, []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for m in sorted(edges.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state and (found := visit(m)):
                return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(edges):
        if n not in state and (found := visit(n)):
            return found
    return None


def test_no_import_cycle_in_the_package():
    edges = _edges()
    # A package's __init__ re-exports its modules: an edge from a module to its own package's __init__ is a
    # cycle only if the __init__ imports it back, which the walk reports.
    assert _cycle(edges) is None, " -> ".join(_cycle(edges))


def _private_reach_ins() -> list[str]:
    """Imports of an underscore module (or name) of another package of earlyexit.

    The root package's own helper (``earlyexit._lazy``, the PEP 562 lazy attributes every subpackage's
    ``__init__`` uses) is the parent's, not another package's, and is not counted."""
    found = []
    for path in PACKAGE.rglob("*.py"):
        me = _module(path).split(".")
        package = me if path.name == "__init__.py" else me[:-1]
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ImportFrom):
                continue
            if node.level:
                target = package[: len(package) - node.level + 1] + (node.module.split(".") if node.module else [])
            elif (node.module or "").startswith("earlyexit"):
                target = node.module.split(".")
            else:
                continue
            for name in [None] + [a.name for a in node.names]:
                dotted = target + ([name] if name else [])
                private = [p for p in dotted[1:] if p.startswith("_") and not p.startswith("__")]
                if private and dotted[:2] != package[:2] and dotted[:2] != ["earlyexit", "_lazy"]:
                    found.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {'.'.join(dotted)}")
                    break
    return found


def test_no_package_reaches_into_another_packages_private_modules():
    # Every name another package needs is exported from its package's __init__.
    assert _private_reach_ins() == []


LONG_ON_PURPOSE = {("probes/_measure.py", "measure"), ("training/_loop.py", "train")}
"""Functions that say in their docstring why they stay one function (the probe loop and the training loop)."""


def test_no_module_over_400_lines_and_no_function_over_80():
    long_modules, long_functions = [], []
    for path in sorted(PACKAGE.rglob("*.py")):
        text = path.read_text()
        rel = str(path.relative_to(PACKAGE))
        if text.count("\n") > 400:
            long_modules.append(f"{rel}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > 80 and (rel, node.name) not in LONG_ON_PURPOSE:
                    long_functions.append(f"{rel}:{node.lineno} {node.name}: {length} lines")
                if (rel, node.name) in LONG_ON_PURPOSE:
                    assert "One function on purpose" in (ast.get_docstring(node) or ""), f"{rel} {node.name}"
    assert long_modules == [] and long_functions == []
