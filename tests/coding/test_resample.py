import pytest
import torch

from codec.audio import resample
from codec.coding.resample import MAX_FILTER_TAPS, StreamResampler, rate_ratio


@pytest.mark.parametrize("orig, new", [(44100, 16000), (48000, 16000), (16000, 44100),
                                       (22050, 24000), (8000, 8000)])
@pytest.mark.parametrize("block", [997, 8192])
def test_stream_resampler_equals_whole_signal_resample(orig, new, block):
    audio = torch.randn(2, 30011)
    resampler = StreamResampler(orig, new)
    pieces = [resampler.push(audio[:, i:i + block]) for i in range(0, audio.shape[1], block)]
    pieces.append(resampler.flush())
    streamed = torch.cat([p for p in pieces if p.numel()], dim=-1)
    whole = resample(audio, orig, new)
    assert streamed.shape == whole.shape
    assert torch.allclose(streamed, whole, atol=1e-4)


COMMON_RATES = (8000, 11025, 16000, 22050, 24000, 32000, 44100, 48000, 88200, 96000, 192000)


@pytest.mark.parametrize("model_rate", [16000, 24000, 44100, 48000])
def test_common_rates_resample_at_their_exact_ratio(model_rate):
    for rate in COMMON_RATES:
        for orig, new in ((rate, model_rate), (model_rate, rate)):
            in_step, out_step = rate_ratio(orig, new)
            assert in_step * new == out_step * orig


@pytest.mark.parametrize("orig, new", [(11999, 24000), (24000, 11999), (44099, 24000),
                                       (767999, 24000), (24000, 767), (23977, 24000)])
def test_odd_rates_resample_through_a_small_near_ratio(orig, new):
    in_step, out_step = rate_ratio(orig, new)
    assert in_step * out_step <= MAX_FILTER_TAPS
    assert abs(out_step / in_step / (new / orig) - 1) < 1e-4
    assert rate_ratio(new, orig) == (out_step, in_step)  # decoding undoes encoding exactly


@pytest.mark.parametrize("orig, new", [(11999, 24000), (24000, 11999), (44099, 24000)])
def test_odd_rates_keep_the_exact_length_streamed_or_whole(orig, new):
    audio = torch.randn(1, 20011)
    length = -(-audio.shape[1] * new // orig)
    whole = resample(audio, orig, new)
    assert whole.shape == (1, length)
    resampler = StreamResampler(orig, new, length=length)
    pieces = [resampler.push(audio[:, i:i + 4096]) for i in range(0, audio.shape[1], 4096)]
    streamed = torch.cat([*pieces, resampler.flush()], dim=-1)
    assert torch.allclose(streamed, whole, atol=1e-4)


def test_a_tone_at_an_odd_rate_keeps_its_pitch():
    rate, new = 11999, 24000
    t = torch.arange(2 * rate) / rate
    out = resample(torch.sin(2 * torch.pi * 1000 * t)[None], rate, new)[0]
    peak_hz = int(torch.fft.rfft(out[new // 2:new // 2 + new]).abs().argmax())  # 1 s: 1 Hz bins
    assert peak_hz == 1000
