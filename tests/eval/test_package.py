"""The eval package's shape: every function short enough to read at once."""
import ast
from pathlib import Path

EVAL = Path(__file__).parents[2] / "eval"
MAX_FUNCTION_LINES = 60


def test_no_function_is_longer_than_a_screen():
    long = [f"{path.relative_to(EVAL.parent)}:{node.lineno} {node.name} "
            f"({node.end_lineno - node.lineno + 1} lines)"
            for path in sorted(EVAL.rglob("*.py")) for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]
    assert long == []
