import pytest
import torch

from codec.config import PRESETS, model_config
from codec.model import Codec

# Every preset can be made causal; the large one is slow, so it gets fewer frames.
FRAMES = {"tiny": 8, "small": 8, "base": 8, "large": 5}


def causal_model(preset: str) -> Codec:
    torch.manual_seed(0)
    return Codec(model_config(preset, causal=True)).eval()


def noise(samples: int, seed: int = 1) -> torch.Tensor:
    return 0.1 * torch.randn(1, 1, samples, generator=torch.Generator().manual_seed(seed))


def assert_same(a: torch.Tensor, b: torch.Tensor) -> None:
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


# --- causality -------------------------------------------------------------------------------


@pytest.mark.parametrize("preset", PRESETS)
def test_encoder_never_looks_ahead(preset):
    model, hop = causal_model(preset), 320
    frames = FRAMES[preset]
    audio = noise(frames * hop)
    t = (frames // 2) * hop + hop // 3  # inside frame frames // 2
    changed = audio.clone()
    changed[..., t:] += 0.5 * torch.randn(changed[..., t:].shape)
    with torch.no_grad():
        before, after = model.encoder(audio), model.encoder(changed)
    done = t // hop  # frames that end at or before sample t
    assert_same(before[..., :done], after[..., :done])
    assert not torch.allclose(before[..., done], after[..., done])  # its own frame: it sees t
    assert torch.equal(model.encode(audio)[..., :done], model.encode(changed)[..., :done])


@pytest.mark.parametrize("preset", PRESETS)
def test_decoder_never_looks_ahead(preset):
    model, hop = causal_model(preset), 320
    frames = FRAMES[preset]
    latents = torch.randn(1, model.config.latent_dim, frames)
    f = frames // 2
    changed = latents.clone()
    changed[..., f:] += torch.randn(changed[..., f:].shape)
    with torch.no_grad():
        before, after = model.decoder(latents), model.decoder(changed)
    assert_same(before[..., :f * hop], after[..., :f * hop])
    # The frame's own audio changes at once: decoding adds no delay.
    assert not torch.allclose(before[..., f * hop:(f + 1) * hop],
                              after[..., f * hop:(f + 1) * hop])


@pytest.mark.parametrize("preset", PRESETS)
def test_latency_is_one_frame(preset):
    causal = Codec(model_config(preset, causal=True))
    assert causal.latency_samples == causal.hop_length == 320
    assert Codec(model_config(preset)).latency_samples is None
