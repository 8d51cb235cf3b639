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


def test_version():
    import codec

    result = run_python("from codec.cli import main\nmain(['--version'])")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"codec {codec.__version__}"


def test_help_works_when_torchaudio_raises_on_import(tmp_path):
    """A broken install: a module named torchaudio that fails to import, found first."""
    (tmp_path / "torchaudio.py").write_text("raise ImportError('simulated broken torchaudio')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    broken = subprocess.run([sys.executable, "-c", "import torchaudio"], capture_output=True,
                            text=True, env=env, cwd=ROOT, timeout=120)
    assert "simulated broken torchaudio" in broken.stderr  # the shim is what loads
    for argv in (["--help"], ["encode", "--help"], ["train", "--help"], ["config", "--help"]):
        result = subprocess.run([sys.executable, "-m", "codec", *argv], capture_output=True,
                                text=True, env=env, cwd=ROOT, timeout=120)
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("usage: codec"), result.stdout


def test_config_prints_the_resolved_config(tmp_path, capsys):
    from codec.cli import main

    (tmp_path / "base.yaml").write_text("model:\n  preset: tiny\ntrain:\n  steps: 300\n")
    (tmp_path / "run.yaml").write_text("base: base.yaml\ntrain:\n  lr: 0.0005\n")
    assert main(["config", str(tmp_path / "run.yaml"), "train.steps=42", "run_dir=exp/y"]) == 0
    import yaml

    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["train"]["steps"] == 42               # override beats the base file
    assert printed["train"]["lr"] == 0.0005              # the file itself
    assert printed["model"]["preset"] == "tiny"          # from the base: chain
    assert printed["run_dir"] == "exp/y"
    assert printed["data"]["batch_size"] > 0             # a schema default
    assert main(["config", str(tmp_path / "run.yaml"), "train.stepz=1"]) == 2
    assert "stepz" in capsys.readouterr().err
