"""The library's shape: layers, each importing only from those below, no import circles,
and nothing in ``codec`` that imports the programs built on it (``eval``, ``data_prep``).

Every import counts, at module level or inside a function: a module that imports one
above it only when called still depends on it, and a circle through a function-level
import is still a circle a reader has to untangle. (``import codec`` defers its heavy
names through ``importlib``, which is no import statement: the public face may name
anything below it.)
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1] / "codec"

# Lowest first: modules, or packages with everything in them. A module may import from
# its own layer and those below it.
LAYERS = {
    "foundation": ("codec.errors", "codec.version", "codec.config", "codec.metrics",
                   "codec.mel_scale", "codec.model_name", "codec.install_check",
                   "codec.provenance"),
    "network": ("codec.network",),
    "coding": ("codec.coding", "codec.audio"),
    "models on disk": ("codec.checkpoint", "codec.pretrained", "codec.export",
                       "codec.onnx_export"),
    "coding programs": ("codec.compress", "codec.batch_coding", "codec.pcm_stream",
                        "codec.tokens"),
    "training": ("codec.train",),
    "command line": ("codec.cli", "codec.__main__", "codec"),
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _type_checking_only(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and isinstance(test, ast.Name) and test.id == "TYPE_CHECKING"


def imported(name: str, module_level: bool) -> set[str]:
    """The modules ``name`` imports: at module level only, or anywhere. An ``import``
    under ``if TYPE_CHECKING:`` never runs and is left out."""
    tree = ast.parse(MODULES[name].read_text())
    if module_level:
        nodes = [n for n in tree.body if not _type_checking_only(n)]
        nodes += [n for top in tree.body if isinstance(top, ast.Try) for n in top.body]
    else:
        skipped = {id(n) for top in ast.walk(tree) if _type_checking_only(top)
                   for n in ast.walk(top)}
        nodes = [n for n in ast.walk(tree) if id(n) not in skipped]
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            # ``from codec.coding import bitstream`` imports the module codec.coding.bitstream.
            found |= {f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in MODULES
                      else node.module for a in node.names}
    return found


def layer_of(name: str) -> str | None:
    """The layer holding module ``name``: its own entry, else its nearest package's."""
    for layer, members in LAYERS.items():
        if name in members:
            return layer
    for layer, members in LAYERS.items():
        if any(name.startswith(f"{member}.") for member in members if member != "codec"):
            return layer
    return None


def test_every_module_has_a_layer():
    assert [name for name in MODULES if layer_of(name) is None] == []


def test_the_library_never_imports_the_programs_built_on_it():
    for name in MODULES:
        wrong = {m for m in imported(name, module_level=False)
                 if m.split(".")[0] in ("eval", "data_prep")}
        assert not wrong, f"{name} imports {sorted(wrong)}"


@pytest.mark.parametrize("layer", list(LAYERS))
def test_imports_only_go_down(layer):
    order = list(LAYERS)
    for name in (n for n in MODULES if layer_of(n) == layer):
        above = {m for m in imported(name, module_level=False) & set(MODULES)
                 if order.index(layer_of(m)) > order.index(layer)}
        assert not above, f"{name} ({layer}) imports {sorted(above)} from a layer above"


def check_circles(graph: dict[str, set[str]]) -> None:
    """AssertionError naming the first import circle found in ``graph``."""
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        if name in path:
            circle = path[path.index(name):] + [name]
            raise AssertionError("import circle: " + " -> ".join(circle))
        if name in done:
            return
        for child in sorted(graph.get(name, ())):
            visit(child, path + [name])
        done.add(name)

    for name in sorted(graph):
        visit(name, [])


def test_no_import_circles():
    check_circles({name: imported(name, module_level=False) & set(MODULES) - {name}
                   for name in MODULES})


def test_the_circle_check_finds_circles():
    with pytest.raises(AssertionError, match="codec.a -> codec.b -> codec.a"):
        check_circles({"codec.a": {"codec.b"}, "codec.b": {"codec.a"}})


MAX_FUNCTION_LINES = 60


def test_no_function_is_longer_than_a_screen():
    """A function a reader can hold at once: split longer ones along their concerns."""
    long = [f"{name}.{node.name} ({node.end_lineno - node.lineno + 1} lines)"
            for name, path in MODULES.items() for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]
    assert long == []
