"""Writing and reading result tables: CSV, strict JSON, and aligned text tables.

JSON has no infinity, and browsers refuse Python's ``Infinity``; the SNR of a
lossless result is infinite, so non-finite numbers are written as the strings
``"inf"``, ``"-inf"`` and ``"nan"`` and turned back into floats on reading.
"""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any, Iterable, Sequence

from codec.errors import CodecError

_NON_FINITE = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}


def jsonable(value: Any) -> Any:
    """``value`` with non-finite floats replaced by strings, tuples by lists."""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def from_jsonable(value: Any) -> Any:
    """Inverse of :func:`jsonable` for numbers."""
    if isinstance(value, str) and value in _NON_FINITE:
        return _NON_FINITE[value]
    if isinstance(value, dict):
        return {k: from_jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_jsonable(v) for v in value]
    return value


def write_json(path: str | Path, value: Any) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(jsonable(value), indent=1, allow_nan=False) + "\n")


def read_json(path: str | Path) -> Any:
    return from_jsonable(json.loads(Path(path).read_text()))


def read_summary(eval_dir: str | Path) -> Any:
    """``summary.json`` of an ``eval.evaluate`` output folder; CodecError when missing."""
    path = Path(eval_dir) / "summary.json"
    if not path.is_file():
        raise CodecError(f"{path}: not found (run eval.evaluate first)")
    return read_json(path)


def write_csv(path: str | Path, rows: Sequence[dict]) -> None:
    """One row per dict; columns are the union of keys in first-seen order."""
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns), restval="")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _cell(v) for k, v in row.items()})


def _cell(value: Any) -> Any:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (list, tuple)):
        return " ".join(_cell(v) if isinstance(v, float) else str(v) for v in value)
    return value


def format_number(value: Any, digits: int = 3) -> str:
    """A table cell: floats to ``digits`` significant decimals, None as '-'."""
    if value is None or value == "":
        return "-"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return f"{value:.{digits}f}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


def text_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """Columns aligned with spaces, numbers right-aligned."""
    cells = [[format_number(v) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) if i == 0 else h.rjust(w)
                       for i, (h, w) in enumerate(zip(headers, widths, strict=True)))]
    lines.append("  ".join("-" * w for w in widths))
    for row in cells:
        lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                               for i, (c, w) in enumerate(zip(row, widths, strict=True))))
    return "\n".join(lines)


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """The same table as :func:`text_table`, in Markdown (for READMEs and notes)."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(format_number(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)
