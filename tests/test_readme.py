"""The README's Python API example runs as written, against a small model made here."""
from __future__ import annotations

import re
from pathlib import Path

import soundfile as sf
import torch

from codec import Codec, model_config
from codec.checkpoint import save_checkpoint
from codec.coding.chunking import postfiltered
from codec.config import CodingConfig, Config
from codec.network.model import compute_model_id

README = Path(__file__).parents[1] / "README.md"


def python_api_example() -> str:
    """The first python code block under the README's "Python API" heading."""
    section = README.read_text().split("## Python API", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)
    assert blocks, "no python example under 'Python API'"
    return blocks[0]


def test_python_api_example_runs_verbatim(tmp_path, monkeypatch):
    config = model_config("tiny", strides=(2, 4, 5), widths=(8, 16, 32, 64))
    model = Codec(config)
    save_checkpoint(tmp_path / "exp" / "run" / "best", model_state=model.state_dict(),
                    config=Config(model=config), step=0, model_id=compute_model_id(model))
    sf.write(tmp_path / "song.wav", 0.1 * torch.randn(22050, 2).numpy(), 22050)
    monkeypatch.chdir(tmp_path)
    names: dict = {}
    exec(compile(python_api_example(), str(README), "exec"), names)
    assert names["decoded"].shape == (2, 44100) and names["sample_rate"] == 44100
    assert sf.info(str(tmp_path / "decoded.wav")).frames == 22050


def layout_paths() -> set[str]:
    """The files and folders the README's Layout section names, as repository paths:
    each line's first word, under the folders of the lines above it (two spaces a level)."""
    section = README.read_text().split("## Layout", 1)[1]
    block = section.split("```\n", 2)[1]
    folders: list[str] = []
    named = set()
    for line in block.splitlines():
        word = line.split()[0] if line.strip() else ""
        if not word or not re.match(r"^[\w./]+$", word):
            continue
        depth = (len(line) - len(line.lstrip())) // 2
        folders = folders[:depth]
        path = "".join(folders) + word
        named.add(path.rstrip("/"))
        if word.endswith("/"):
            folders.append(word)
    return named


def test_the_layout_names_every_module_and_nothing_else():
    root = README.parent
    modules = {str(p.relative_to(root)) for top in ("codec", "data_prep", "eval")
               for p in (root / top).rglob("*.py")
               if not (p.name == "__init__.py" and p.parent.name in ("data_prep", "eval",
                                                                     "probes"))}
    named = layout_paths()
    assert sorted(modules - named) == []  # every module has its line
    assert sorted(p for p in named if not (root / p).exists()) == []  # no stale line


def test_python_streaming_example_runs_verbatim_and_equals_offline(tmp_path, monkeypatch):
    section = README.read_text().split("## Streaming", 1)[1].split("\n## ", 1)[0]
    example = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)[0]
    torch.manual_seed(0)
    config = model_config("live", widths=(16, 16), latent_dim=16, dilations=(1,), n_q=2,
                          codebook_size=64)
    model = Codec(config)
    save_checkpoint(tmp_path / "exp" / "cpu_hour_causal" / "best",
                    model_state=model.state_dict(),
                    config=Config(model=config, coding=CodingConfig(postfilter=1.5)), step=0,
                    model_id=compute_model_id(model))
    monkeypatch.chdir(tmp_path)
    names: dict = {}
    exec(compile(example, str(README), "exec"), names)
    network, speech = names["network"], names["speech"]
    offline = postfiltered(network, network.decode(network.encode(speech)), 1.5)
    assert names["audio"].shape == offline.shape == (1, 1, 24000)
    torch.testing.assert_close(names["audio"], offline, rtol=1e-5, atol=1e-6)
