"""The library's shape: three layers, each importing only from below, no import circles,
and nothing in ``codec`` that imports the programs built on it (``eval``, ``data_prep``).

Two kinds of import are told apart. Module-level imports run when a module is
imported; they decide the import order, so they must form no circle. Imports inside a
function run only when it is called, after every module involved has finished
importing, so a circle through one cannot fail; the package uses them on purpose
(``import codec`` and the ``codec`` command defer heavy modules until a name or a
command is used, and ``python -m codec.train`` hands its arguments to the command).
The circle check therefore counts module-level imports only; the layer and the
``eval``/``data_prep`` checks count every import, wherever it is.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1] / "codec"

# Lowest first. A module may import from its own layer and those below it.
LAYERS = {
    "engines": {"codec.errors", "codec.config", "codec.nn", "codec.nn.conv",
                "codec.nn.activations", "codec.seanet", "codec.spectral", "codec.quantize",
                "codec.model", "codec.postfilter", "codec.band_levels",
                "codec.audio", "codec.resample", "codec.chunking", "codec.losses",
                "codec.discriminators", "codec.balancer", "codec.metrics", "codec.data",
                "codec.bitstream", "codec.entropy", "codec.latents", "codec.step_rate",
                "codec.threads", "codec.weight_average", "codec.streaming"},
    "models on disk": {"codec.checkpoint", "codec.export", "codec.pretrained",
                       "codec.finetune", "codec.model_name", "codec.provenance"},
    "programs": {"codec.compress", "codec.train", "codec.monitor", "codec.__main__",
                 "codec.install_check",
                 "codec.cli", "codec.cli.coding", "codec.cli.batch", "codec.cli.train",
                 "codec.cli.export", "codec.cli.info", "codec.pcm_stream", "codec.cli.streaming",
                 "codec.cli.config"},
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
            # ``from codec import bitstream`` imports the module codec.bitstream.
            found |= {f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in MODULES
                      else node.module for a in node.names}
    return found


def test_every_module_has_a_layer():
    placed = set().union(*LAYERS.values())
    assert set(MODULES) - {"codec"} == placed


def test_the_library_never_imports_the_programs_built_on_it():
    for name in MODULES:
        wrong = {m for m in imported(name, module_level=False)
                 if m.split(".")[0] in ("eval", "data_prep")}
        assert not wrong, f"{name} imports {sorted(wrong)}"


@pytest.mark.parametrize("layer", list(LAYERS))
def test_imports_only_go_down(layer):
    order = list(LAYERS)
    above = set().union(*(LAYERS[name] for name in order[order.index(layer) + 1:]))
    for name in LAYERS[layer]:
        wrong = imported(name, module_level=False) & above
        assert not wrong, f"{name} ({layer}) imports {sorted(wrong)} from a layer above"


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
    check_circles({name: imported(name, module_level=True) & set(MODULES) for name in MODULES})


def test_the_circle_check_finds_circles():
    with pytest.raises(AssertionError, match="codec.a -> codec.b -> codec.a"):
        check_circles({"codec.a": {"codec.b"}, "codec.b": {"codec.a"}})
