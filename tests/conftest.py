import pytest
import torch

from codec import Codec, model_config


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    torch.set_num_threads(1)


@pytest.fixture
def tiny_model() -> Codec:
    """A small fast model for behaviour tests."""
    return Codec(model_config("tiny", strides=(2, 4, 5), widths=(8, 16, 32, 64)))
