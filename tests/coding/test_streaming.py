import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from codec.coding.chunking import postfiltered
from codec.coding.streaming import StreamingDecoder, StreamingEncoder, StreamingError
from codec.config import PRESETS, model_config
from codec.network.model import Codec

# Every time-domain preset can be made causal, and the live one is (the spectral one looks
# ahead by its window); the large one is slow, so it gets fewer frames.
STREAMABLE = [name for name, preset in PRESETS.items()
              if preset.get("arch") != "stft" or preset.get("causal")]
FRAMES = {"tiny": 8, "small": 8, "base": 8, "large": 5, "live": 8}


def causal_model(preset: str, **overrides) -> Codec:
    torch.manual_seed(0)
    return Codec(model_config(preset, causal=True, **overrides)).eval()


def small_live(**overrides) -> Codec:
    """The live preset, narrower and with frame levels, with codebooks that have seen
    audio (k-means on more frames than codes, so no two codewords are the same)."""
    options = dict(widths=(64, 64), latent_dim=32, n_q=4, codebook_size=64, level_bands=6)
    model = causal_model("live", **{**options, **overrides})
    model.train()
    with torch.no_grad():
        model(0.1 * torch.randn(4, 1, 24000, generator=torch.Generator().manual_seed(3)))
    return model.eval()


def staged_live() -> Codec:
    """:func:`small_live` with two level codebooks and the levels met by a level stage."""
    return small_live(n_q=5, level_bands=8, level_codebooks=2, level_overlap=40)


def noise(samples: int, seed: int = 1) -> torch.Tensor:
    return 0.1 * torch.randn(1, 1, samples, generator=torch.Generator().manual_seed(seed))


def assert_same(a: torch.Tensor, b: torch.Tensor) -> None:
    # Float32 rounding: overlap-adds summed in another order differ by up to about 1e-6
    # on audio near 0.1, more with some thread counts.
    torch.testing.assert_close(a, b, rtol=1e-5, atol=3e-6)


def split(total: int, sizes: list[int]) -> list[tuple[int, int]]:
    """(start, stop) pieces of ``range(total)`` of the given sizes, cycled."""
    pieces, start = [], 0
    while start < total:
        stop = min(total, start + sizes[len(pieces) % len(sizes)])
        pieces.append((start, stop))
        start = stop
    return pieces


# --- causality -------------------------------------------------------------------------------


@pytest.mark.parametrize("preset", STREAMABLE)
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


@pytest.mark.parametrize("preset", STREAMABLE)
def test_decoder_never_looks_ahead(preset):
    model, hop = causal_model(preset), 320
    frames = FRAMES[preset]
    # Frame levels, where a model has them, ride after the latents.
    width = model.config.latent_dim + model.config.channels * model.config.level_bands
    latents = torch.randn(1, width, frames)
    latents[:, model.config.latent_dim:] += 7  # levels 30 dB under full scale, not silence
    f = frames // 2
    changed = latents.clone()
    changed[..., f:] += torch.randn(changed[..., f:].shape)
    with torch.no_grad():
        before, after = model.decoder(latents), model.decoder(changed)
    # A causal spectral decoder crossfades frame f into the end of frame f - 1.
    kept = f * hop - model.config.synthesis_overlap
    assert_same(before[..., :kept], after[..., :kept])
    assert not torch.allclose(before[..., :kept + 1], after[..., :kept + 1])
    # The frame's own audio changes at once.
    assert not torch.allclose(before[..., f * hop:(f + 1) * hop],
                              after[..., f * hop:(f + 1) * hop])


@pytest.mark.parametrize("preset", STREAMABLE)
def test_latency_is_a_frame_and_the_crossfade(preset):
    causal = Codec(model_config(preset, causal=True))
    overlap = causal.config.synthesis_overlap
    assert causal.latency_samples == causal.hop_length + overlap == 320 + overlap
    if preset != "live":
        assert Codec(model_config(preset)).latency_samples is None
    else:  # 16.7 ms at 24 kHz, under Opus's 26.5 ms
        assert 1000 * causal.latency_samples / causal.sample_rate < 26.5


def test_a_level_stage_adds_its_crossfade_to_the_latency():
    model = staged_live()
    assert model.latency_samples == 320 + model.config.synthesis_overlap + 40


@pytest.mark.parametrize("preset", STREAMABLE + ["live-staged"])
def test_coding_looks_no_further_ahead_than_the_latency(preset):
    """A change of the input at sample t moves no code before t's frame and no decoded
    sample before t - latency + 1: a decoded sample is final ``latency`` samples after
    its input sample."""
    models = {"live": small_live, "live-staged": staged_live}
    model = models[preset]() if preset in models else causal_model(preset)
    preset = "live" if preset in models else preset
    frames, hop, latency = FRAMES[preset], model.hop_length, model.latency_samples
    audio = noise(frames * hop)
    t = (frames // 2) * hop + hop // 3
    changed = audio.clone()
    changed[..., t:] += 0.5 * torch.randn(changed[..., t:].shape)
    codes, changed_codes = model.encode(audio), model.encode(changed)
    assert torch.equal(codes[..., :t // hop], changed_codes[..., :t // hop])
    assert not torch.equal(codes, changed_codes)
    decoded, changed_decoded = model.decode(codes), model.decode(changed_codes)
    assert_same(decoded[..., :t - latency + 1], changed_decoded[..., :t - latency + 1])


@pytest.mark.parametrize("name", ["live", "live-staged"])
def test_the_live_post_filter_adds_no_look_ahead(name):
    """Decoded through the live post-filter, a change of the input at sample t still
    moves no decoded sample before t - latency + 1: the filter adds no latency."""
    model = {"live": small_live, "live-staged": staged_live}[name]()
    frames, hop, latency = 12, model.hop_length, model.latency_samples
    audio = noise(frames * hop)
    t = (frames // 2) * hop + hop // 3
    changed = audio.clone()
    changed[..., t:] += 0.5 * torch.randn(changed[..., t:].shape)
    decoded, changed_decoded = (postfiltered(model, model.decode(model.encode(a)), 1.8)
                                for a in (audio, changed))
    kept = t - latency + 1
    assert_same(decoded[..., :kept], changed_decoded[..., :kept])
    assert not torch.allclose(decoded[..., :kept + hop], changed_decoded[..., :kept + hop])


def test_a_frame_is_coded_when_its_last_sample_arrives():
    model = causal_model("tiny")
    encoder, audio = StreamingEncoder(model), noise(3 * 320)
    assert encoder.push(audio[..., :319]).shape[-1] == 0
    assert encoder.push(audio[..., 319:320]).shape[-1] == 1
    assert encoder.push(audio[..., 320:959]).shape[-1] == 1
    assert encoder.push(audio[..., 959:]).shape[-1] == 1


# --- streaming equals offline ----------------------------------------------------------------


def stream_encode(model: Codec, audio: torch.Tensor, sizes: list[int]) -> torch.Tensor:
    encoder = StreamingEncoder(model)
    codes = [encoder.push(audio[..., a:b]) for a, b in split(audio.shape[-1], sizes)]
    return torch.cat(codes + [encoder.flush()], dim=-1)


def stream_decode(model: Codec, codes: torch.Tensor, sizes: list[int],
                  postfilter: float = 1.0) -> torch.Tensor:
    decoder = StreamingDecoder(model, postfilter)
    pieces = [decoder.push(codes[..., a:b]) for a, b in split(codes.shape[-1], sizes)]
    return torch.cat(pieces + [decoder.flush()], dim=-1)


@pytest.mark.parametrize("preset", STREAMABLE + ["live-staged"])
def test_frame_by_frame_equals_offline(preset):
    models = {"live": small_live, "live-staged": staged_live}
    model = models[preset]() if preset in models else causal_model(preset)
    preset = "live" if preset in models else preset
    audio = noise(FRAMES[preset] * 320 - 77)  # ends inside a frame: flush pads it
    codes = model.encode(audio)
    assert torch.equal(stream_encode(model, audio, [320]), codes)
    assert_same(stream_decode(model, codes, [1]), model.decode(codes))


MODELS = {"live": small_live(), "live-staged": staged_live(), "tiny": causal_model("tiny")}


@settings(max_examples=30, deadline=None)
@given(length=st.integers(1, 3000),
       audio_blocks=st.lists(st.integers(0, 1000), min_size=1, max_size=6).filter(any),
       code_blocks=st.lists(st.integers(0, 4), min_size=1, max_size=4).filter(any),
       n_q=st.integers(1, 4), name=st.sampled_from(sorted(MODELS)))
def test_any_blocks_equal_offline(length, audio_blocks, code_blocks, n_q, name):
    model = MODELS[name]
    audio = noise(length, seed=length)
    codes = model.encode(audio, n_q)
    encoder = StreamingEncoder(model, n_q)
    pieces = [encoder.push(audio[..., a:b]) for a, b in split(length, audio_blocks)]
    assert torch.equal(torch.cat(pieces + [encoder.flush()], dim=-1), codes)
    assert_same(stream_decode(model, codes, code_blocks), model.decode(codes))


@settings(max_examples=15, deadline=None)
@given(length=st.integers(1, 6000),
       code_blocks=st.lists(st.integers(0, 4), min_size=1, max_size=4).filter(any),
       name=st.sampled_from(sorted(MODELS)))
def test_any_blocks_through_the_live_post_filter_equal_offline(length, code_blocks, name):
    model = MODELS[name]
    codes = model.encode(noise(length, seed=length))
    assert_same(stream_decode(model, codes, code_blocks, postfilter=1.8),
                postfiltered(model, model.decode(codes), 1.8))


def test_batches_stream_like_single_items():
    model = causal_model("tiny")
    audio = torch.cat([noise(1000, seed=1), noise(1000, seed=2)])
    codes = stream_encode(model, audio, [123, 400])
    assert torch.equal(codes, model.encode(audio))
    assert_same(stream_decode(model, codes, [2]), model.decode(codes))


def test_reset_starts_a_new_stream():
    model = causal_model("tiny")
    first, second = noise(900, seed=1), noise(700, seed=2)
    encoder = StreamingEncoder(model)
    encoder.push(first)
    encoder.flush()
    again = torch.cat([encoder.push(second), encoder.flush()], dim=-1)
    assert torch.equal(again, model.encode(second))


# --- refusals --------------------------------------------------------------------------------


def test_non_causal_models_are_refused():
    model = Codec(model_config("tiny"))
    for make in (StreamingEncoder, StreamingDecoder):
        with pytest.raises(StreamingError, match="causal"):
            make(model)


def test_bad_blocks_are_refused():
    model = causal_model("tiny")
    encoder = StreamingEncoder(model)
    with pytest.raises(StreamingError, match="channel"):
        encoder.push(torch.zeros(1, 2, 100))
    with pytest.raises(StreamingError, match=r"\[batch, channels, samples\]"):
        encoder.push(torch.zeros(100))
    encoder.push(torch.zeros(1, 1, 100))
    with pytest.raises(StreamingError, match="stream of 1"):
        encoder.push(torch.zeros(2, 1, 100))
    with pytest.raises(StreamingError, match="codes must lie"):
        StreamingDecoder(model).push(torch.full((1, 2, 3), 10_000))
    for exponent in (0.5, float("nan"), 5.0):
        with pytest.raises(StreamingError, match="post-filter's exponent"):
            StreamingDecoder(model, exponent)
