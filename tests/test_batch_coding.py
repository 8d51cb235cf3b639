"""encode_batch and decode_batch give, clip for clip, what encode and decode give."""
import pytest
import torch

import codec
from codec import Codec, compress, model_config
from codec.config import CodingConfig
from codec.errors import CodecError
from codec.pretrained import PretrainedModel

RATE = 22050  # not the models' rate: resampling is part of each clip's coding
# Samples: shorter than a frame of either model, two of one length, a stereo clip, and
# (with CHUNK_SECONDS) one that spans several chunks.
LENGTHS = [30, 700, 5000, 5000, 11025, 17000]
CHUNK_SECONDS = 0.2


def time_domain_model() -> PretrainedModel:
    torch.manual_seed(0)
    return PretrainedModel.from_network(
        Codec(model_config("tiny", strides=(2, 4, 5), widths=(8, 16, 32, 64))))


def spectral_model() -> PretrainedModel:
    """A tiny spectral model with k-means codebooks, band levels and the post-filter."""
    torch.manual_seed(0)
    network = Codec(model_config("spectral", sample_rate=16000, strides=(160,), n_fft=320,
                                 widths=(32, 32), latent_dim=16, dilations=(1,), n_q=4,
                                 codebook_size=64))
    network.train()
    network(0.1 * torch.randn(4, 1, 16000))
    return PretrainedModel.from_network(
        network, coding=CodingConfig(postfilter=1.5, band_levels=8, band_level_kbps=0.5))


MODELS = {"time-domain": time_domain_model, "spectral": spectral_model}


def clips() -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return [0.1 * torch.randn(2 if index == 4 else 1, length, generator=generator)
            for index, length in enumerate(LENGTHS)]


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("chunk_seconds", [None, CHUNK_SECONDS])
def test_encode_batch_gives_the_bytes_of_encode(name, chunk_seconds):
    model, audios = MODELS[name](), clips()
    alone = [compress.encode(model, audio, RATE, n_q=3, chunk_seconds=chunk_seconds)
             for audio in audios]
    together = codec.encode_batch(model, audios, RATE, n_q=3, chunk_seconds=chunk_seconds,
                                  batch_size=3)
    assert together == alone


@pytest.mark.parametrize("name", MODELS)
def test_encode_batch_without_level_match(name):
    model, audios = MODELS[name](), clips()
    alone = [compress.encode(model, audio, RATE, level_match=False) for audio in audios]
    assert codec.encode_batch(model, audios, RATE, level_match=False) == alone


@pytest.mark.parametrize("name", MODELS)
def test_decode_batch_gives_the_audio_of_decode(name):
    model = MODELS[name]()
    data = [compress.encode(model, audio, RATE, chunk_seconds=CHUNK_SECONDS)
            for audio in clips()]
    alone = [compress.decode(model, item, chunk_seconds=CHUNK_SECONDS) for item in data]
    together = codec.decode_batch(model, data, chunk_seconds=CHUNK_SECONDS, batch_size=3)
    for (audio, rate), (expected, expected_rate) in zip(together, alone, strict=True):
        assert rate == expected_rate == RATE and audio.shape == expected.shape
        # Batched float32 sums round differently in the last bits (measured: < 5e-7).
        # That no sample is computed from the padding of a batch is checked exactly, in
        # float64, in tests/coding/test_batched.py; here float64 would not help, as some
        # CPUs pick other convolution kernels for other batch sizes even in float64.
        torch.testing.assert_close(audio, expected, rtol=0, atol=2e-6)


def test_a_bad_clip_is_named():
    model, audios = time_domain_model(), clips()
    audios[2] = torch.full((1, 100), float("nan"))
    with pytest.raises(CodecError, match="audio 2: audio contains NaN"):
        codec.encode_batch(model, audios, RATE)
    data = [compress.encode(model, audio, RATE) for audio in clips()[:2]]
    with pytest.raises(CodecError, match="file 1: "):
        codec.decode_batch(model, [data[0], data[1][:-5]])
