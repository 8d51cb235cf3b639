import pytest
import torch
from torch import nn

from codec.train.weight_average import WeightAverage


def _model() -> nn.Module:
    model = nn.Linear(3, 2)
    model.register_buffer("codebook", torch.zeros(4))
    return model


def test_the_average_follows_the_weights_with_a_warmed_up_decay():
    model = _model()
    average = WeightAverage(model, decay=0.9)
    start = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    average.update(model)  # first update: decay min(0.9, 2 / 11)
    expected = start + (1 - 2 / 11)
    assert torch.allclose(average.model.weight, expected)
    for _ in range(100):
        average.update(model)
    assert torch.allclose(average.model.weight, model.weight, atol=1e-4)
    assert average.state_dict() == {"updates": 101, "decay": 0.9}


def test_the_average_takes_the_live_buffers_and_never_trains():
    model = _model()
    average = WeightAverage(model, decay=0.99)
    model.codebook.fill_(3.0)
    averaged = average.averaged(model)
    assert torch.equal(averaged.codebook, model.codebook)
    assert not averaged.training and not any(p.requires_grad for p in averaged.parameters())


def test_reset_and_restore():
    model = _model()
    average = WeightAverage(model, decay=0.99)
    average.update(model)
    weights = {k: v + 1 for k, v in model.state_dict().items()}
    restored = WeightAverage(_model(), decay=0.99)
    restored.load_state_dict(average.state_dict(), weights)
    assert restored.updates == 1 and torch.equal(restored.model.bias, weights["bias"])
    restored.reset(model)
    assert restored.updates == 0 and torch.equal(restored.model.bias, model.bias)


@pytest.mark.parametrize("decay", [0.0, 1.0, -0.5])
def test_decay_outside_zero_one_is_refused(decay):
    with pytest.raises(ValueError, match="decay"):
        WeightAverage(_model(), decay)
