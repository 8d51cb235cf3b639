from pathlib import Path

import pytest
import torch
from train_corpus import make_corpus

from codec import Codec, model_config
from codec.install_check import FIX, check


def pytest_configure(config):
    """Stop at once, with one message, when torch and torchaudio do not fit together:
    otherwise every module that imports torchaudio fails on its own."""
    report = check()
    if report.problem is not None:
        pytest.exit(f"install check failed: {report.problem}; {FIX}", returncode=3)


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    torch.set_num_threads(1)


@pytest.fixture
def tiny_model() -> Codec:
    """A small fast model for behaviour tests."""
    return Codec(model_config("tiny", strides=(2, 4, 5), widths=(8, 16, 32, 64)))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, dict]:
    """A tiny training corpus and its manifests, made once per test module."""
    root = tmp_path_factory.mktemp("corpus")
    return root, make_corpus(root)
