"""The package follows the data flow: every import points to the same step or an earlier one, none in a circle.

Layers, in the order data flows (a module may import only from its own layer or lower ones):
types/errors/demo paths < tasks < data < sampling < grading < measure < adapt < report < pipeline < cli
< the package root (the public API) and the embedded models' training scripts.
"""
from __future__ import annotations

import ast
from pathlib import Path

import ttrl_bench

PACKAGE = Path(ttrl_bench.__file__).resolve().parent
LAYERS = ["types", "errors", "demo", "tasks", "data", "sampling", "grading", "measure", "adapt", "report",
          "pipeline", "cli"]
RANK = {"types": 0, "errors": 0, "demo": 0, **{name: i for i, name in enumerate(LAYERS[3:], start=1)}}
TOP = len(LAYERS)  # the package root and scripts
MAX_LINES = 400


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def rank(module: str) -> int:
    parts = module.split(".")
    if len(parts) == 1 or module == "ttrl_bench.cli.__main__":
        return TOP
    if parts[1] == "demo" and len(parts) > 2 and parts[2].startswith("train"):
        return TOP  # the training scripts of the embedded models (and what they share) use the data step
    return RANK[parts[1]]


def imports(path: Path, known: set[str]) -> set[str]:
    """Every ttrl_bench module ``path`` imports, at module level or inside functions."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("ttrl_bench"):
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                out.add(sub if sub in known else node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("ttrl_bench"))
    return out


def test_every_module_has_a_layer():
    for name in modules():
        assert rank(name) is not None, name


def test_no_import_runs_upward():
    mods = modules()
    upward = [
        f"{src} -> {dst}"
        for src, path in mods.items()
        for dst in imports(path, set(mods))
        if rank(dst) > rank(src)
    ]
    assert upward == []


def test_no_import_cycle():
    mods = modules()
    graph = {src: imports(path, set(mods)) - {src} for src, path in mods.items()}
    # a package's __init__ that re-exports its own submodules is not a cycle with them
    graph = {src: {d for d in dsts if not (src != "ttrl_bench" and d.startswith(src + "."))} for src, dsts in graph.items()}
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert cycles == []


def test_no_module_is_long():
    long = {name: n for name, p in modules().items() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def test_importing_the_package_loads_no_model_library():
    import subprocess
    import sys

    code = "import sys, ttrl_bench; print(sorted(m for m in ('torch', 'transformers', 'vllm', 'matplotlib', 'trl') if m in sys.modules))"
    from conftest import subprocess_env

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=subprocess_env())
    assert out.stdout.strip() == "[]"
