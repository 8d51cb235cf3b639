import pytest
import torch

from codec.audio import resample
from codec.resample import StreamResampler


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
