import math

import numpy as np
import pytest
import torch

from codec.audio import StreamingLoudness, loudness


def sine(seconds: float, rate: int, amplitude: float = 0.1, hz: float = 1000.0) -> torch.Tensor:
    t = torch.arange(int(seconds * rate), dtype=torch.float64) / rate
    return (amplitude * torch.sin(2 * math.pi * hz * t)).float()[None]  # [1, T]


def streamed(audio: torch.Tensor | np.ndarray, rate: int, block: int) -> StreamingLoudness:
    meter = StreamingLoudness(rate, audio.shape[0])
    for start in range(0, audio.shape[1], block):
        meter.push(audio[:, start:start + block])
    return meter


# --- BS.1770 loudness, whole and streamed ----------------------------------------------


def test_sine_at_minus_20_dbfs_measures_minus_23_lufs():
    # BS.1770: a 0 dBFS 1 kHz sine reads -3.01 LUFS, so peak 0.1 (-20 dBFS) reads -23.0.
    audio = sine(3.0, 48000)
    assert loudness(audio, 48000) == pytest.approx(-23.0, abs=0.1)
    assert streamed(audio, 48000, 48000).loudness() == pytest.approx(-23.0, abs=0.1)


def test_stereo_loudness_sums_the_channels_powers():
    """BS.1770 sums the channels' powers: the same sine in both channels of a stereo
    pair reads 3.01 LU over one channel alone, and a silent right channel adds nothing."""
    mono = sine(3.0, 44100)
    pair = mono.expand(2, -1)
    assert loudness(pair, 44100) == pytest.approx(loudness(mono, 44100) + 3.01, abs=0.02)
    assert streamed(pair, 44100, 4410).loudness() == pytest.approx(loudness(pair, 44100),
                                                                    abs=1e-3)
    left_only = torch.cat([mono, torch.zeros_like(mono)])
    assert loudness(left_only, 44100) == pytest.approx(loudness(mono, 44100), abs=0.02)


@pytest.mark.parametrize("rate", [16000, 44100, 11025])
@pytest.mark.parametrize("length_seconds, scale", [(3.0, 0.1), (0.02, 0.3), (1.0, 1.5)])
def test_streamed_loudness_equals_whole_signal_loudness(rate, length_seconds, scale):
    # 0.02 s: shorter than one gating block, looped as loudness() loops it;
    # scale 1.5: the K-weighting filters clamp their output, as torchaudio's do.
    audio = torch.randn(2, int(rate * length_seconds)) * scale
    meter = streamed(audio, rate, 7777)
    assert meter.loudness() == pytest.approx(loudness(audio, rate), abs=1e-3)
    assert meter.peak == pytest.approx(float(audio.abs().max()))
    assert meter.frames == audio.shape[1]


def test_streamed_loudness_of_uneven_numpy_pieces_with_gated_silence():
    rng = np.random.default_rng(0)
    rate = 22050
    ramp = np.linspace(0.002, 0.4, rate * 8)[None]
    signal = (rng.standard_normal((2, rate * 8)) * ramp).astype(np.float32)
    signal[:, : rate * 2] = 0  # silence that the gates must drop
    meter = StreamingLoudness(rate, 2)
    position = 0
    while position < signal.shape[1]:
        size = int(rng.integers(1, rate))
        meter.push(signal[:, position:position + size])
        position += size
    whole = loudness(torch.from_numpy(signal), rate)
    assert meter.loudness() == pytest.approx(whole, abs=0.01)


def test_streamed_loudness_of_silence_is_minus_infinity():
    meter = StreamingLoudness(16000, 1)
    meter.push(torch.zeros(1, 16000))
    assert meter.loudness() == -math.inf
    assert loudness(torch.zeros(1, 16000), 16000) == -math.inf


def test_streamed_loudness_rejects_blocks_of_another_channel_count():
    with pytest.raises(ValueError, match=r"expected blocks \[2, n\]"):
        StreamingLoudness(16000, 2).push(torch.zeros(1, 100))
