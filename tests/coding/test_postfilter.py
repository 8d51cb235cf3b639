import math

import numpy as np
import pytest
import torch
from harmonic_signals import harmonics_in_noise, valley_share

from codec import Codec, compress, model_config
from codec.coding.postfilter import (
    ENERGY_BANDS,
    band_members,
    check_exponent,
    powers,
    reach,
    spectral_expansion,
)
from codec.coding.settings import check_coding
from codec.config import CodingConfig, ConfigError
from codec.errors import CodecError
from codec.metrics import snr
from codec.network.model import compute_model_id
from codec.pretrained import PretrainedModel

RATE = 16000
# Harmonics this far apart lie 26 bins apart in the filter's 64 ms frames: resolved, with
# valleys between them that an STFT can see.
F0 = 400
# A low voice: its harmonics lie 8 bins apart in those frames, 2 in frames of 16 ms.
LOW_F0 = 120


def _harmonics_in_noise(seconds: float = 2.0, noise: float = 0.02,
                        f0: float = F0) -> torch.Tensor:
    return harmonics_in_noise(RATE, f0, seconds, noise)


def _valley_share(audio: torch.Tensor, f0: float = F0, low_hz: float = 0.0,
                  high_hz: float | None = None) -> float:
    return valley_share(audio, RATE, f0, low_hz, high_hz)


def test_exponent_one_leaves_the_audio_as_it_is():
    audio = _harmonics_in_noise()
    assert torch.equal(spectral_expansion(audio, RATE, 1.0), audio)
    short = audio[..., :200]  # shorter than one frame
    assert torch.equal(spectral_expansion(short, RATE, 2.0), short)


def test_expansion_deepens_the_valleys_and_keeps_the_level():
    audio = _harmonics_in_noise()
    filtered = spectral_expansion(audio, RATE, 2.0)
    assert filtered.shape == audio.shape
    assert _valley_share(filtered) < 0.5 * _valley_share(audio)
    level = filtered.pow(2).mean().sqrt() / audio.pow(2).mean().sqrt()
    assert float(level) == pytest.approx(1.0, abs=0.03)


def test_expansion_deepens_the_valleys_between_the_harmonics_of_a_low_voice():
    audio = _harmonics_in_noise(f0=LOW_F0)
    filtered = spectral_expansion(audio, RATE, 2.0)
    assert _valley_share(filtered, LOW_F0) < 0.5 * _valley_share(audio, LOW_F0)


def _comb(f0: float = 200.0, top_hz: float = 4000.0) -> torch.Tensor:
    """Equal harmonics of f0 up to top_hz with white noise between them, [1, 1, T]."""
    t = torch.arange(2 * RATE) / RATE
    tones = sum(torch.sin(2 * math.pi * f0 * k * t) for k in range(1, int(top_hz / f0)))
    hiss = 0.02 * torch.randn(t.shape, generator=torch.Generator().manual_seed(0))
    return (0.05 * tones + hiss).reshape(1, 1, -1)


def test_expansion_is_strongest_under_1_khz():
    """With every bin raised to the same power, the valleys above 2 kHz came out deeper
    (to 0.06 of their share) than those under 1 kHz (0.11); the upper ones now take an
    eighth of the exponent's excess over 1."""
    audio = _comb()
    filtered = spectral_expansion(audio, RATE, 1.8)
    low, high = ((_valley_share(filtered, 200.0, a, b) / _valley_share(audio, 200.0, a, b))
                 for a, b in ((100, 900), (2100, 3900)))
    assert low < 0.5 * high < 0.5
    powers_at = powers(RATE, 1024, 1.8).flatten()
    assert powers_at[32] == pytest.approx(1.8) and powers_at[256] == pytest.approx(1.1)


def test_expansion_keeps_the_envelope_of_syllables():
    """Bursts of 250 ms, every other one 20 dB quieter: the expansion raises loud bins
    against quiet ones, but not a loud syllable against its quiet neighbours (with the
    energy kept over each second, the quiet ones came out a further 20 dB down)."""
    audio = _harmonics_in_noise(seconds=3.0)
    burst = RATE // 4
    for start in range(burst, audio.shape[-1], 2 * burst):
        audio[..., start:start + burst] *= 0.1
    filtered = spectral_expansion(audio, RATE, 2.0)
    for start in range(2 * burst, audio.shape[-1] - 2 * burst, burst):
        middle = slice(start + burst // 4, start + 3 * burst // 4)
        ratio = filtered[..., middle].pow(2).mean() / audio[..., middle].pow(2).mean()
        assert 10 * math.log10(float(ratio)) == pytest.approx(0.0, abs=1.0), start


def test_expansion_keeps_the_level_of_each_second():
    audio = _harmonics_in_noise(seconds=4.0)
    audio[..., :2 * RATE] *= 0.1  # a quiet first half, 20 dB under the second
    filtered = spectral_expansion(audio, RATE, 2.0)
    for half in (slice(RATE // 2, RATE + RATE // 2), slice(5 * RATE // 2, 7 * RATE // 2)):
        ratio = filtered[..., half].pow(2).mean() / audio[..., half].pow(2).mean()
        assert float(ratio) == pytest.approx(1.0, abs=0.05)


def _band_energy(audio: torch.Tensor, low_hz: float, high_hz: float) -> float:
    spectrum = torch.fft.rfft(audio.flatten()).abs().pow(2)
    hz = torch.fft.rfftfreq(audio.shape[-1], 1 / RATE)
    return float(spectrum[(hz >= low_hz) & (hz < high_hz)].sum())


def test_expansion_keeps_a_quiet_upper_band_at_its_level():
    """Loud harmonics under 3.4 kHz, hiss 40 dB under them above 4 kHz: expanding every
    magnitude to the power 1.5 would sink the hiss a further 20 dB if only the total
    energy were kept. The expanded hiss is no STFT of any signal, and the inverse
    transform loses a little of its energy (about 1 dB)."""
    audio = _harmonics_in_noise(noise=0.0)
    hiss = torch.fft.rfft(torch.randn(audio.shape[-1], generator=torch.Generator().manual_seed(1)))
    hiss[torch.fft.rfftfreq(audio.shape[-1], 1 / RATE) < 4000] = 0
    hiss = torch.fft.irfft(hiss, audio.shape[-1])
    audio = audio + 0.01 * audio.pow(2).mean().sqrt() / hiss.pow(2).mean().sqrt() * hiss
    filtered = spectral_expansion(audio, RATE, 1.5)
    for low, high in ((0, 8.5 * F0), (4000, RATE / 2)):
        ratio = _band_energy(filtered, low, high) / _band_energy(audio, low, high)
        assert 10 * math.log10(ratio) == pytest.approx(0.0, abs=1.5), (low, high)


def test_bands_cover_every_bin_once_and_are_wider_up_the_spectrum():
    members = band_members(24000, 512)
    assert members.shape == (257, ENERGY_BANDS) and torch.equal(members.sum(1), torch.ones(257))
    widths = members.sum(0)
    assert bool((widths[1:] >= widths[:-1]).all()) and widths[0] >= 1


def test_expansion_does_not_depend_on_the_level_and_keeps_silence():
    audio = _harmonics_in_noise()
    loud, quiet = (spectral_expansion(g * audio, RATE, 1.7) for g in (1.0, 0.01))
    torch.testing.assert_close(quiet, 0.01 * loud, rtol=1e-3, atol=1e-6)
    silence = torch.zeros(1, 1, RATE)
    assert torch.equal(spectral_expansion(silence, RATE, 1.7), silence)


@pytest.mark.parametrize("exponent", [0.5, float("nan"), 5.0])
@pytest.mark.parametrize("causal", [False, True])
def test_exponents_that_cannot_be_used_are_refused(exponent, causal):
    assert check_exponent(exponent) is not None
    with pytest.raises(ConfigError, match="in \\[1, 4\\]"):
        check_coding(CodingConfig(postfilter=exponent), causal)
    assert check_exponent(1.0) is None and check_exponent(2.0) is None
    check_coding(CodingConfig(postfilter=1.8), causal)  # a causal model takes the live one


def test_the_post_filter_changes_decoding_not_the_codes_or_the_model_id():
    torch.manual_seed(0)
    network = Codec(model_config("tiny", sample_rate=RATE)).eval()
    model = PretrainedModel.from_network(network)
    audio = _harmonics_in_noise(seconds=1.0)
    plain_data = compress.encode(model, audio[0], RATE)
    filtered = model.with_postfilter(2.0)
    def codes(coding_model: PretrainedModel) -> np.ndarray:
        source = compress.tensor_source(audio[0], RATE)
        return compress.encode_codes(coding_model, source, 4, level_match=False).codes

    assert np.array_equal(codes(filtered), codes(model))
    plain, _ = compress.decode(model, plain_data)
    assert not torch.allclose(compress.decode(filtered, plain_data)[0], plain)
    assert filtered.model_id == model.model_id == compute_model_id(network)
    assert model.coding.postfilter == 1.0  # a new value; the model it came from is as it was
    with pytest.raises(CodecError, match="in \\[1, 4\\]"):
        filtered.with_postfilter(0.0)
    assert filtered.coding.postfilter == 2.0


def test_a_piece_with_its_offset_and_reach_filters_as_the_whole_signal_does():
    audio = _harmonics_in_noise(seconds=4.0)
    whole = spectral_expansion(audio, RATE, 1.5)
    start, stop = 20_001, 44_001  # a piece that starts off the frame grid
    first, last = start - reach(RATE, 1.5), stop + reach(RATE, 1.5)
    assert reach(RATE, 1.0) == 0  # off, it reads nothing beyond each sample
    piece = spectral_expansion(audio[..., first:last], RATE, 1.5, offset=first)
    centre = piece[..., start - first:stop - first]
    torch.testing.assert_close(centre, whole[..., start:stop], rtol=1e-4, atol=1e-6)
    unaligned = spectral_expansion(audio[..., first:last], RATE, 1.5)
    assert not torch.allclose(unaligned[..., start - first:stop - first], whole[..., start:stop],
                              rtol=1e-4, atol=1e-6)


def test_chunked_decoding_through_the_post_filter_equals_whole_decoding():
    torch.manual_seed(0)
    network = Codec(model_config("spectral", sample_rate=RATE, strides=(80,), widths=(32, 32),
                                 n_fft=320, dilations=(1, 3), latent_dim=16, n_q=4,
                                 codebook_size=64))
    network.train()
    network(torch.randn(4, 1, 8000))  # k-means codebooks
    model = PretrainedModel.from_network(network.eval(), coding=CodingConfig(postfilter=1.5))
    data = compress.encode(model, _harmonics_in_noise(seconds=3.0)[0], RATE, n_q=4)
    _, whole = compress.decode_blocks(model, data, chunk_seconds=100)
    _, chunked = compress.decode_blocks(model, data, chunk_seconds=0.3)
    whole, chunked = torch.cat(list(whole), -1), torch.cat(list(chunked), -1)
    assert whole.shape == chunked.shape
    assert snr(whole, chunked) > 80
