"""``codec encode/decode --jobs N``: worker processes give the files one process gives,
report failures file by file, and leave nothing half-written when interrupted."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from tiny_run import save_tiny_run

from codec.cli import main
from codec.cli.jobs import in_workers
from codec.compress import _atomic_path

ROOT = Path(__file__).resolve().parents[1]
SECONDS = [0.001, 0.3, 0.7, 1.1]  # the first is shorter than a frame


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """An untrained tiny model saved as a run's best checkpoint."""
    return save_tiny_run(tmp_path_factory.mktemp("jobs") / "run")


def clips(folder: Path) -> Path:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    for index, seconds in enumerate(SECONDS):
        sf.write(folder / f"c{index}.wav", 0.1 * rng.standard_normal(int(24000 * seconds)),
                 24000)
    return folder


def contents(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_jobs_write_the_bytes_one_process_writes(tmp_path, run_dir):
    wavs = clips(tmp_path / "wavs")
    for jobs in ("1", "2"):
        assert main(["encode", str(wavs), "-o", str(tmp_path / f"qca{jobs}"),
                     "--model", str(run_dir), "--jobs", jobs]) == 0
        assert main(["decode", str(tmp_path / "qca1"), "-o", str(tmp_path / f"wav{jobs}"),
                     "--model", str(run_dir), "--jobs", jobs]) == 0
    assert len(contents(tmp_path / "qca1")) == len(SECONDS)
    assert contents(tmp_path / "qca2") == contents(tmp_path / "qca1")
    assert contents(tmp_path / "wav2") == contents(tmp_path / "wav1")


def test_jobs_report_each_failure_and_refuse_to_overwrite(tmp_path, run_dir, capsys):
    wavs = clips(tmp_path / "wavs")
    (wavs / "bad.wav").write_text("not audio")
    args = ["encode", str(wavs), "-o", str(tmp_path / "qca"), "--model", str(run_dir),
            "--jobs", "2"]
    assert main(args) == 2
    captured = capsys.readouterr()
    error, summary = captured.err.strip().splitlines()
    assert error.startswith(f"codec encode: error: {wavs / 'bad.wav'}: ")
    assert summary == f"codec encode: 1 of {len(SECONDS) + 1} files failed"
    assert len(captured.out.strip().splitlines()) == len(SECONDS)  # a line per file coded
    assert len(contents(tmp_path / "qca")) == len(SECONDS)
    assert main(args) == 2
    (refusal,) = capsys.readouterr().err.strip().splitlines()
    assert "exists" in refusal and "-f/--force" in refusal
    assert main([*args, "-f"]) == 2  # bad.wav is still bad; the rest are written again


def test_jobs_must_be_at_least_one(tmp_path, run_dir, capsys):
    wavs = clips(tmp_path / "wavs")
    assert main(["encode", str(wavs), "-o", str(tmp_path / "qca"), "--model", str(run_dir),
                 "--jobs", "0"]) == 2
    error = capsys.readouterr().err.strip()
    assert error == "codec encode: error: --jobs must be at least 1, got 0"


class Exiting:
    """Work that ends its process on ``b``, as a crash or the OOM killer would."""

    def __call__(self, source: Path, target: Path) -> list:
        if source.name == "b":
            os._exit(9)
        return [(False, f"{source.name} done")]


def test_a_worker_that_dies_fails_only_its_file(tmp_path):
    pairs = [(tmp_path / name, tmp_path / f"{name}.out") for name in "abcd"]
    outcomes = list(in_workers(pairs, Exiting(), 2))
    failures = [failure for _, failure in outcomes if failure is not None]
    assert failures == [f"{tmp_path / 'b'}: the worker process coding it ended unexpectedly "
                        f"(exit code 9)"]
    assert sorted(line for lines, _ in outcomes for _, line in lines) == \
        ["a done", "c done", "d done"]


class Hanging:
    """Work that writes its output under a temporary name as codec does, says so in
    ``started/``, and never finishes."""

    def __init__(self, started: Path):
        self.started = started

    def __call__(self, source: Path, target: Path) -> list:
        with _atomic_path(target) as tmp:
            tmp.write_bytes(b"half a file")
            (self.started / source.name).touch()
            time.sleep(600)
        return []


INTERRUPTED = """
import sys
from pathlib import Path
from codec.cli.jobs import in_workers
from test_jobs import Hanging

if __name__ == "__main__":
    out, started = Path(sys.argv[1]), Path(sys.argv[2])
    pairs = [(Path(name), out / f"{name}.qca") for name in "abcd"]
    try:
        for outcome in in_workers(pairs, Hanging(started), 2):
            print(outcome, flush=True)
    except KeyboardInterrupt:
        print("interrupted", flush=True)
        sys.exit(130)
"""


def test_ctrl_c_leaves_no_partial_files(tmp_path):
    """Ctrl-C reaches every process of the terminal's group: the workers ignore it, and
    the parent stops them, each removing the file it was writing."""
    out, started = tmp_path / "out", tmp_path / "started"
    out.mkdir()
    started.mkdir()
    (tmp_path / "interrupted.py").write_text(INTERRUPTED)
    env = {**os.environ,
           "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}
    process = subprocess.Popen([sys.executable, str(tmp_path / "interrupted.py"), str(out),
                                str(started)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while len(list(started.iterdir())) < 2 and process.poll() is None \
                and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(list(out.iterdir())) == 2  # both workers are half-way through a file
        os.killpg(process.pid, signal.SIGINT)
        stdout, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 130, stderr
    assert stdout.strip() == "interrupted"
    assert "Traceback" not in stderr, stderr
    assert list(out.iterdir()) == []
