"""The fuzz targets of tests/test_fuzz.py and the .qca fuzzing of
tests/coding/test_bitstream.py, run as the tests run them, with a table of what they
tried: cases per target, inputs refused with a clean error, inputs read, other
exceptions (tracebacks), wall time and the process's peak memory.

    .venv/bin/python -m eval.probes.fuzz_report
"""
from __future__ import annotations

import resource
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TARGETS = ["tests/test_fuzz.py", "tests/coding/test_bitstream.py"]
# The .qca fuzzing among the container's tests.
SELECTED = "test_fuzz or mutated or any_header"


class Tally:
    """A pytest plugin that counts what each reading function of the fuzz tests gave."""

    def __init__(self):
        self.counts: dict[str, Counter] = {}
        self.seconds: dict[str, float] = {}
        self.current = ""

    def _counted(self, function):
        from codec.errors import CodecError

        def wrapper(*args, **kwargs):
            counter = self.counts.setdefault(self.current, Counter())
            try:
                result = function(*args, **kwargs)
            except CodecError:
                counter["clean error"] += 1
                raise
            except Exception:
                counter["traceback"] += 1
                raise
            counter["clean error" if result == "refused" else "read"] += 1
            return result
        return wrapper

    def pytest_collection_finish(self, session):
        import test_fuzz

        from codec.coding import bitstream

        test_fuzz.check_load = self._counted(test_fuzz.check_load)
        test_fuzz.decoded = self._counted(test_fuzz.decoded)
        bitstream.parse = self._counted(bitstream.parse)

    def pytest_runtest_call(self, item):
        self.current = item.name.split("[")[0]

    def pytest_runtest_logreport(self, report):
        if report.when == "call":
            name = report.nodeid.split("::")[-1].split("[")[0]
            self.seconds[name] = self.seconds.get(name, 0.0) + report.duration


def main() -> int:
    tally = Tally()
    sys.path.insert(0, str(ROOT / "tests"))
    start = time.perf_counter()
    status = pytest.main(["-q", "-p", "no:cacheprovider", *(str(ROOT / t) for t in TARGETS),
                          "-k", SELECTED],
                         plugins=[tally])
    wall = time.perf_counter() - start
    print(f"\n{'target':78s} {'cases':>6s} {'clean':>6s} {'read':>6s} {'tb':>4s} {'s':>6s}")
    for name, seconds in sorted(tally.seconds.items()):
        counter = tally.counts.get(name, Counter())
        cases = sum(counter.values())
        print(f"{name:78s} {cases:6d} {counter['clean error']:6d} {counter['read']:6d} "
              f"{counter['traceback']:4d} {seconds:6.1f}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    print(f"pytest status {int(status)}; {wall:.0f} s in all; peak RSS of this process "
          f"{peak} MB (the huge-size target measures its own process)")
    return int(status)


if __name__ == "__main__":
    sys.exit(main())
