"""The package layout's rules (README "Where each part lives"): dependencies point one way,
sw <- hw <- sim, and sw's modules import each other without a cycle."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _imports(path: Path) -> set[str]:
    """Absolute module names ``path`` imports (relative imports resolved), anywhere in it."""
    pkg = ".".join(path.relative_to(REPO).with_suffix("").parts[:-1])
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            out.add(base)
            out |= {f"{base}.{a.name}" for a in node.names}
    return out


def _modules(package: str) -> dict[str, set[str]]:
    mods = {}
    for p in sorted((REPO / package).rglob("*.py")):
        name = ".".join(p.relative_to(REPO).with_suffix("").parts)
        mods[name.removesuffix(".__init__")] = _imports(p)
    return mods


def test_sw_imports_neither_hw_nor_sim_and_hw_nothing_from_sim():
    for package, banned in (("sw", ("hw", "sim")), ("hw", ("sim",))):
        for mod, imps in _modules(package).items():
            bad = sorted(i for i in imps if i.split(".")[0] in banned)
            assert not bad, f"{mod} imports {bad}"


def test_sw_has_no_import_cycle():
    mods = _modules("sw")
    graph = {m: {i for i in imps if i in mods and i != m} for m, imps in mods.items()}
    # a package's __init__ re-exporting its modules is not a dependency of those modules
    graph = {m: {d for d in deps if not m.startswith(d + ".")} for m, deps in graph.items()}
    state: dict[str, int] = {}

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for d in sorted(graph[m]):
            if state.get(d) == 1:
                raise AssertionError("import cycle: " + " -> ".join(path[path.index(d):] + [d])
                                     if d in path else f"import cycle through {d}")
            if d not in state:
                visit(d, path + [d])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
