"""The converter's shape: its import graph has no circles, every import points down the layers
of the pipeline, and the Python side of each kernel architecture mirrors the C side.

The graph is read statically from every import statement, function-level ones included (an
import inside a function closes a circle as surely as one at the top). `from . import x`
depends on module x when x is a module, else on the package, as Python resolves it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "converter"

# The pipeline's layers, lowest first: a module may import its own layer or a lower one. Each
# entry is a package or a top-level module of converter/ (DESIGN: docs/design.md).
LAYERS = [
    ("converter", "errors", "paths"),  # the version, the exception hierarchy, data folders
    ("atomic",),  # atomic files and output directories
    ("arch",),  # kernel variants: what each C kernel needs (the registry and one module each)
    ("targets",),  # board profiles
    ("ir",),  # the typed graph, the lowered steps, the lowering
    ("models", "datasets"),  # Keras builders, the procedural example dataset
    ("frontend",),  # model arguments -> int8 .tflite -> graph; preprocessing; the reference
    ("passes",),  # kernel choice, packing, streaming, the memory plan, budgets
    ("device", "qemu", "hostsim"),  # protocol, client, builds, boards (and 0.1's names)
    ("modeldir",),  # a conversion's output directory, read back
    ("codegen",),  # templates -> C
    ("convert",),  # the conversion pipeline
    ("report",),  # the conversion report
    ("export",),  # a conversion as a library for the user's firmware
    ("validate", "bench"),  # validation against the reference; benchmarks
    ("training",),  # sqz-train's training core
    ("compress",),  # Deep Compression (fine-tuning on the training core)
    ("commands",),  # one module per command-line tool
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def import_graph() -> dict[str, set[str]]:
    mods = modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[:len(base) - (node.level - 1)]
                    module = ".".join(base + ([node.module] if node.module else []))
                else:
                    module = node.module or ""
                for alias in node.names:
                    sub = f"{module}.{alias.name}"
                    targets.append(sub if sub in mods else module)
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            graph[name].update(t for t in targets if t in mods and t != name)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def layer_of(module: str) -> int:
    parts = module.split(".")
    key = parts[1] if len(parts) > 1 else parts[0]
    for i, names in enumerate(LAYERS):
        if key in names:
            return i
    raise AssertionError(f"{module} is in no layer of tests/test_architecture.py: add its "
                         "package or module to LAYERS, where it belongs in the pipeline")


def test_the_import_graph_has_no_circles():
    assert cycles(import_graph()) == []


def test_the_cycle_finder_finds_a_circle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_every_import_points_down_the_layers():
    upward = [f"{a} -> {b}" for a, targets in import_graph().items() for b in targets
              if layer_of(b) > layer_of(a)]
    assert upward == []


def test_the_registry_imports_no_variant_and_each_variant_mirrors_a_firmware_folder():
    from converter import arch

    graph = import_graph()
    variants = {f"converter.arch.{a}" for a in arch.VARIANTS}
    assert not graph["converter.arch"] & variants
    for v in variants:  # a variant needs only the descriptor types and the portable helpers
        assert graph[v] <= {"converter.arch.kernel", "converter.arch.portable"}, v
    firmware = sorted(p.name for p in (ROOT / "firmware" / "src" / "arch").iterdir()
                      if p.is_dir())
    assert sorted(a for a in arch.VARIANTS if a != arch.PORTABLE) == firmware
    assert arch.available() == [arch.PORTABLE, *firmware]


@pytest.mark.parametrize("module", sorted(modules()))
def test_every_module_says_what_it_is(module):
    tree = ast.parse(modules()[module].read_text())
    assert ast.get_docstring(tree), f"{module} has no docstring"
