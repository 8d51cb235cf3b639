"""The ``codec`` command sets up without its commands' heavy modules, and ``import codec``
stays light."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]
HEAVY = ("torchaudio", "soundfile", "scipy", "constriction", "tensorboard", "matplotlib",
         "safetensors")


def run_python(code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=120)


def test_help_works_when_heavy_dependencies_cannot_load():
    blocked = "".join(f"sys.modules[{name!r}] = None\n" for name in HEAVY)
    result = run_python(f"import sys\n{blocked}from codec.cli import main\nmain(['--help'])")
    assert result.returncode == 0, result.stderr
    for command in ("train", "encode", "decode", "entropy-tables", "export", "info"):
        assert command in result.stdout


def test_import_codec_loads_the_api_only_when_used():
    result = run_python("import sys, codec\n"
                        "print('codec.compress' in sys.modules, 'torchaudio' in sys.modules)\n"
                        "codec.encode\n"
                        "print('codec.compress' in sys.modules)")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "False", "True"]
