import math

import pytest
import torch

from codec import Codec, model_config
from codec.coding.bitrate import codebooks_for_kbps
from codec.config import CodingConfig
from codec.errors import CodecError


@pytest.mark.parametrize("length", [160, 161, 1000, 1237])
def test_output_length_equals_input_length(tiny_model, length):
    out = tiny_model(torch.randn(2, 1, length))
    assert out.audio.shape == (2, 1, length)
    assert out.codes.shape[-1] == math.ceil(length / tiny_model.hop_length)


@pytest.mark.parametrize("n_q", [1, 2, 4])
def test_decode_of_encode_equals_forward_in_eval_mode(tiny_model, n_q):
    tiny_model.train()
    tiny_model(torch.randn(4, 1, 4000))  # initialise the codebooks
    tiny_model.eval()
    audio = torch.randn(2, 1, 1111)
    codes = tiny_model.encode(audio, n_q)
    assert codes.shape[1] == n_q and codes.dtype == torch.int64
    decoded = tiny_model.decode(codes, audio.shape[-1])
    with torch.no_grad():
        reference = tiny_model(audio, n_q)
    assert torch.allclose(decoded, reference.audio, atol=1e-5)
    assert torch.equal(codes, reference.codes)


def test_bitrate_of_default_model():
    model = Codec(model_config("base"))
    assert model.frame_rate == 75
    assert model.bitrate() == 6000
    assert model.bitrate(2) == 1500
    assert codebooks_for_kbps(model, CodingConfig(), 3) == 4
    assert codebooks_for_kbps(model, CodingConfig(), 100) == 8
    with pytest.raises(CodecError, match="below this model's lowest bitrate"):
        codebooks_for_kbps(model, CodingConfig(), 0.5)


@pytest.mark.parametrize("audio, message", [
    (torch.randn(100), "shape \\[batch, channels, samples\\]"),
    (torch.randn(1, 2, 100), "2 channel"),
    (torch.zeros(1, 1, 0), "empty"),
    (torch.tensor([[[0.0, float("nan"), 1.0]]]), "NaN or infinite"),
    (torch.tensor([[[0.0, float("inf"), 1.0]]]), "NaN or infinite"),
    (torch.zeros(1, 1, 10, dtype=torch.int16), "floating point"),
])
def test_bad_audio_gets_a_clear_error(tiny_model, audio, message):
    for call in (tiny_model, tiny_model.encode):
        with pytest.raises(ValueError, match=message):
            call(audio)


def test_too_many_codebooks_is_a_clear_error(tiny_model):
    with pytest.raises(ValueError, match="n_q must be between 1 and 4"):
        tiny_model.encode(torch.randn(1, 1, 320), n_q=5)
    with pytest.raises(ValueError, match="n_q must be between 1 and 4"):
        tiny_model.decode(torch.zeros(1, 5, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="codes must lie in"):
        tiny_model.decode(torch.full((1, 2, 3), 10_000, dtype=torch.long))


def test_decoder_has_no_bound_on_its_output():
    model = Codec(model_config("tiny"))
    last = model.decoder.layers[-1]
    assert not isinstance(last, (torch.nn.Tanh, torch.nn.Hardtanh, torch.nn.Sigmoid))
    with torch.no_grad():
        for p in model.decoder.parameters():
            p.mul_(3.0)
    out = model.decoder(torch.randn(1, model.config.latent_dim, 4) * 10)
    assert out.abs().max() > 1.5


def _snr_db(reference: torch.Tensor, estimate: torch.Tensor) -> float:
    noise = (reference - estimate).pow(2).sum()
    return float(10 * torch.log10(reference.pow(2).sum() / noise))


def test_training_reaches_loud_signal_without_bounding_amplitude():
    """A few hundred steps on a loud synthetic signal: SNR > 10 dB at the right level."""
    torch.manual_seed(0)
    model = Codec(model_config("tiny", strides=(2, 4, 5), widths=(16, 32, 64, 64),
                               quantizer_dropout=0.0))
    t = torch.arange(2400) / 24000
    signal = 3.0 * (torch.sin(2 * math.pi * 220 * t) + 0.5 * torch.sin(2 * math.pi * 550 * t))
    batch = signal.expand(4, 1, -1).contiguous()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(300):
        out = model(batch)
        loss = (out.audio - batch).abs().mean() + out.losses["commit"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        decoded = model(batch).audio
    assert _snr_db(batch, decoded) > 10
    rms_ratio = float(decoded.pow(2).mean().sqrt() / batch.pow(2).mean().sqrt())
    assert 0.9 <= rms_ratio <= 1.1
    assert decoded.abs().max() > 2.0
