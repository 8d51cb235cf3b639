import pytest
import torch
from harmonic_signals import harmonics_in_noise, valley_share
from hypothesis import given, settings
from hypothesis import strategies as st

from codec import Codec, compress, model_config
from codec.coding.live_postfilter import AVERAGE_FRAMES, LivePostFilter, LivePostFilterStep
from codec.config import CodingConfig
from codec.metrics import snr
from codec.pretrained import PretrainedModel

RATE, HOP = 24000, 320
LOW_F0 = 120  # a low voice: 10 bins apart in the 85 ms frames, 2 in a 16.7 ms frame


def stream(live: LivePostFilter, audio: torch.Tensor, sizes: list[int]) -> torch.Tensor:
    step, pieces, start = LivePostFilterStep(live), [], 0
    while start < audio.shape[-1]:
        size = sizes[len(pieces) % len(sizes)]
        pieces.append(step(audio[..., start:start + size]))
        start += size
    return torch.cat(pieces + [step.flush()], dim=-1)


def test_exponent_one_leaves_the_audio_as_it_is():
    live, audio = LivePostFilter(RATE, HOP, 1.0), harmonics_in_noise(RATE, LOW_F0)
    assert torch.equal(live.apply(audio), audio)
    assert torch.equal(stream(live, audio, [500]), audio)


def test_expansion_deepens_the_valleys_between_the_harmonics_of_a_low_voice():
    audio = harmonics_in_noise(RATE, LOW_F0, noise=0.05)
    filtered = LivePostFilter(RATE, HOP, 2.0, held_back=80).apply(audio)
    assert filtered.shape == audio.shape
    assert valley_share(filtered, RATE, LOW_F0) < 0.5 * valley_share(audio, RATE, LOW_F0)
    level = filtered.pow(2).mean().sqrt() / audio.pow(2).mean().sqrt()
    assert float(level) == pytest.approx(1.0, abs=0.05)


def test_each_band_keeps_its_level_frame_by_frame():
    """A loud first half and a quiet second half, 30 dB apart: each keeps its level."""
    audio = harmonics_in_noise(RATE, LOW_F0, seconds=2.0)
    audio[..., RATE:] *= 10 ** (-30 / 20)
    filtered = LivePostFilter(RATE, HOP, 2.0).apply(audio)
    for half in (slice(RATE // 4, 3 * RATE // 4), slice(5 * RATE // 4, 7 * RATE // 4)):
        ratio = filtered[..., half].pow(2).mean() / audio[..., half].pow(2).mean()
        assert float(ratio) == pytest.approx(1.0, abs=0.1)


@pytest.mark.parametrize("held_back", [0, 80, 160])
def test_a_change_moves_nothing_before_the_hop_it_lies_in(held_back):
    """Hops end ``held_back`` before each multiple of the hop, where a decoder leaves its
    audio after each frame; a hop's output reads nothing after its end, so the filter
    adds no latency."""
    live = LivePostFilter(RATE, HOP, 1.8, held_back=held_back)
    audio = harmonics_in_noise(RATE, LOW_F0, seconds=0.5)
    t = 20 * HOP + 100 - held_back  # 100 samples into a hop
    changed = audio.clone()
    changed[..., t:] += 0.1
    before, after = live.apply(audio), live.apply(changed)
    first_moved = int(((before - after).abs() > 0).nonzero()[:, -1].min())
    assert first_moved == t - 100


@settings(max_examples=25, deadline=None)
@given(length=st.integers(1, 4000), sizes=st.lists(st.integers(1, 1500), min_size=1, max_size=5),
       held_back=st.sampled_from([0, 80, 160]))
def test_any_blocks_give_what_the_whole_signal_gives(length, sizes, held_back):
    live = LivePostFilter(RATE, HOP, 1.8, held_back=held_back)
    audio = harmonics_in_noise(RATE, LOW_F0, seconds=0.2)[..., :length].repeat(2, 1, 1)
    torch.testing.assert_close(stream(live, audio, sizes), live.apply(audio),
                               rtol=1e-5, atol=1e-6)


def test_a_piece_with_its_offset_and_reach_filters_as_the_whole_signal_does():
    live = LivePostFilter(RATE, HOP, 1.8, held_back=80)
    audio = harmonics_in_noise(RATE, LOW_F0, seconds=1.0)
    whole = live.apply(audio)
    first = 10 * HOP
    start = first + live.segment + 2 * (AVERAGE_FRAMES - 1) * HOP  # its filter forgets the cut
    piece = live.apply(audio[..., first:], offset=first)
    torch.testing.assert_close(piece[..., start - first:], whole[..., start:],
                               rtol=1e-5, atol=1e-6)


def test_bad_geometries_are_refused():
    for options in (dict(analysis=500), dict(held_back=320), dict(held_back=-1)):
        with pytest.raises(ValueError, match="live post-filter"):
            LivePostFilter(RATE, HOP, 1.8, **options)


def test_a_causal_model_decodes_through_it_chunk_by_chunk_as_whole():
    torch.manual_seed(0)
    network = Codec(model_config("live", widths=(64, 64), latent_dim=32, n_q=4,
                                 codebook_size=64))
    network.train()
    network(0.1 * torch.randn(4, 1, RATE))  # k-means codebooks
    model = PretrainedModel.from_network(network.eval(), coding=CodingConfig(postfilter=1.8))
    data = compress.encode(model, harmonics_in_noise(RATE, LOW_F0, seconds=3.0)[0], RATE, n_q=4)
    _, whole = compress.decode_blocks(model, data, chunk_seconds=100)
    _, chunked = compress.decode_blocks(model, data, chunk_seconds=0.3)
    whole, chunked = torch.cat(list(whole), -1), torch.cat(list(chunked), -1)
    assert whole.shape == chunked.shape and snr(whole, chunked) > 80
    plain, _ = compress.decode(model.with_postfilter(1.0), data)
    assert snr(whole, plain) < 40  # the filter was applied
