import pytest
import torch

from codec.train.balancer import Balancer


def _split_losses(output: torch.Tensor, scale_a: float, scale_b: float) -> dict:
    """Loss a reads the first half of ``output``, loss b the second half."""
    half = output.shape[-1] // 2
    return {"a": scale_a * output[..., :half].pow(2).mean(),
            "b": scale_b * output[..., half:].abs().sum()}


@pytest.mark.parametrize("scales", [(1.0, 1.0), (1e4, 1e-3), (1e-3, 1e5)])
def test_gradient_shares_follow_weights_not_loss_scales(scales):
    weight = torch.randn(2, 1, 64, requires_grad=True)
    output = weight * 1.0
    balancer = Balancer({"a": 1.0, "b": 3.0}, total_norm=2.0)
    norms = balancer.backward(_split_losses(output, *scales), output)
    half = weight.shape[-1] // 2
    grad_a, grad_b = weight.grad[..., :half].norm(), weight.grad[..., half:].norm()
    # The two gradients do not overlap, so each part's norm is its loss's share.
    assert float(grad_a) == pytest.approx(2.0 * 1 / 4, rel=1e-5)
    assert float(grad_b) == pytest.approx(2.0 * 3 / 4, rel=1e-5)
    assert set(norms) == {"a", "b"} and all(n > 0 for n in norms.values())


def test_running_average_keeps_shares_for_steady_losses():
    weight = torch.randn(1, 1, 32, requires_grad=True)
    balancer = Balancer({"a": 1.0, "b": 3.0}, ema_decay=0.9)
    for _ in range(3):
        weight.grad = None
        output = weight * 1.0
        balancer.backward(_split_losses(output, 50.0, 0.01), output)
    ratio = weight.grad[..., 16:].norm() / weight.grad[..., :16].norm()
    assert float(ratio) == pytest.approx(3.0, rel=1e-3)


def test_zero_weight_is_left_out_and_other_loss_is_backpropagated():
    weight = torch.randn(1, 1, 32, requires_grad=True)
    extra = torch.ones(3, requires_grad=True)
    output = weight * 1.0
    losses = {"a": output.pow(2).sum(), "b": float("nan") * output.sum()}
    norms = Balancer({"a": 1.0, "b": 0.0}).backward(losses, output, other=(2 * extra).sum())
    assert set(norms) == {"a"}
    assert float(weight.grad.norm()) == pytest.approx(1.0, rel=1e-5)
    assert torch.equal(extra.grad, torch.full((3,), 2.0))


def test_errors_name_the_loss():
    output = torch.randn(4, requires_grad=True) * 1.0
    unrelated = torch.randn(2, requires_grad=True)
    with pytest.raises(ValueError, match="'c'"):
        Balancer({"a": 1.0}).backward({"c": output.sum()}, output)
    with pytest.raises(ValueError, match="'a'.*does not depend"):
        Balancer({"a": 1.0}).backward({"a": unrelated.sum()}, output)
    with pytest.raises(ValueError, match="positive weight"):
        Balancer({"a": 0.0})


def test_state_dict_round_trip_continues_the_running_average():
    weight = torch.randn(1, 1, 32, requires_grad=True)
    first = Balancer({"a": 1.0, "b": 1.0}, ema_decay=0.5)
    output = weight * 1.0
    first.backward(_split_losses(output, 1.0, 1.0), output)
    second = Balancer({"a": 1.0, "b": 1.0}, ema_decay=0.5)
    second.load_state_dict(first.state_dict())
    assert second.state_dict() == first.state_dict()


def test_balances_reconstruction_losses_of_a_codec_and_backpropagates_commitment(tiny_model):
    from codec.config import LossWeights
    from codec.train.losses import ReconstructionLoss

    audio = 0.1 * torch.randn(2, 1, 4000)
    out = tiny_model(audio)
    recon = ReconstructionLoss(tiny_model.sample_rate, stft_sizes=(512, 128), mel_sizes=(512,),
                               n_mels=40)
    weights = LossWeights(l1=0.0)
    balancer = Balancer(weights)
    norms = balancer.backward(recon(out.audio, audio), out.audio,
                              other=weights.commit * out.losses["commit"])
    assert set(norms) == {"mrstft", "mel", "rms"}  # l1 has weight 0
    grads = [p.grad for p in tiny_model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert any(p.grad is not None for p in tiny_model.encoder.parameters())
