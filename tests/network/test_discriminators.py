import math

import pytest
import torch

from codec.network.discriminators import (
    DISCRIMINATORS,
    MultiPeriodDiscriminator,
    MultiScaleSTFTDiscriminator,
    build_discriminator,
)
from codec.train.losses import discriminator_loss, feature_matching_loss, generator_adversarial_loss

SAMPLE_RATE = 24000


def test_output_shapes_for_one_second_at_24khz():
    disc = build_discriminator(["msstft", "mpd"])
    audio = torch.randn(2, 1, SAMPLE_RATE)
    with torch.no_grad():
        outputs = disc(audio)
    assert len(outputs) == 3 + 5  # three STFT scales, five periods
    for out in outputs:
        assert out.logits.shape[:2] == (2, 1) and out.logits.dim() == 4
        assert len(out.features) > 0
        assert all(f.shape[0] == 2 for f in out.features)
    by_name = {out.name: out for out in outputs}
    # An STFT scale with hop n_fft / 4 has T / hop + 1 frames; the logits keep them.
    assert by_name["msstft/1024"].logits.shape[2] == SAMPLE_RATE // 256 + 1
    # A period discriminator keeps the period as the last axis.
    assert by_name["mpd/7"].logits.shape[-1] == 7
    assert by_name["mpd/11"].features[0].shape[-1] == 11


def test_stereo_and_odd_lengths():
    disc = build_discriminator(["mpd", "msstft"], channels=2)
    with torch.no_grad():
        outputs = disc(torch.randn(1, 2, 5003))
    assert all(torch.isfinite(out.logits).all() for out in outputs)
    with pytest.raises(ValueError, match=r"\[B, 2, T\]"):
        disc(torch.randn(1, 1, 5003))


def test_build_by_name_errors_and_empty():
    assert build_discriminator([]) is None
    assert set(DISCRIMINATORS) == {"msstft", "mpd"}
    with pytest.raises(ValueError, match="'hifi'.*choices.*mpd"):
        build_discriminator(["msstft", "hifi"])
    assert isinstance(build_discriminator(["mpd"]).parts["mpd"], MultiPeriodDiscriminator)


def test_filters_set_every_discriminators_width():
    def widths(disc):
        return {out.name.split("/")[0]: [f.shape[1] for f in out.features]
                for out in disc(torch.randn(1, 1, 4096))}

    with torch.no_grad():
        narrow = widths(build_discriminator(["msstft", "mpd"], filters=8))
    assert narrow == {"msstft": [8] * 5, "mpd": [8, 16, 32, 64, 64]}
    with pytest.raises(ValueError, match="filters must be at least 1"):
        build_discriminator(["mpd"], filters=0)


def test_all_convolutions_use_weight_norm():
    for cls in (MultiScaleSTFTDiscriminator, MultiPeriodDiscriminator):
        convs = [m for m in cls().modules() if isinstance(m, torch.nn.Conv2d)]
        assert convs and all(hasattr(m, "parametrizations") for m in convs)


def test_losses_on_real_discriminator_outputs_backpropagate():
    disc = build_discriminator(["msstft"])
    real_audio = torch.randn(2, 1, 4096)
    fake_audio = torch.randn(2, 1, 4096, requires_grad=True)
    real, fake = disc(real_audio), disc(fake_audio)
    same = feature_matching_loss(real, disc(real_audio)).detach()
    assert float(same) == pytest.approx(0.0, abs=1e-6)
    loss = generator_adversarial_loss(fake) + feature_matching_loss(real, fake)
    loss.backward()
    assert torch.isfinite(fake_audio.grad).all() and fake_audio.grad.abs().sum() > 0


@pytest.mark.parametrize("name", sorted(DISCRIMINATORS))
def test_a_few_steps_teach_a_discriminator_real_from_noise(name):
    """Real = low tones, fake = white noise; the discriminator loss must fall."""
    kwargs = {"msstft": dict(n_ffts=(256,), filters=8),
              "mpd": dict(periods=(2, 3), filters=4)}[name]
    disc = DISCRIMINATORS[name](**kwargs)
    opt = torch.optim.Adam(disc.parameters(), lr=1e-2)
    t = torch.arange(2048) / SAMPLE_RATE
    freqs = torch.tensor([220.0, 330.0, 440.0, 550.0]).view(-1, 1, 1)
    real = 0.5 * torch.sin(2 * math.pi * freqs * t)
    losses = []
    for _ in range(15):
        fake = 0.3 * torch.randn(4, 1, 2048)
        loss = discriminator_loss(disc(real), disc(fake), "hinge")
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert sum(losses[-3:]) / 3 < 0.5 * sum(losses[:3]) / 3, losses
