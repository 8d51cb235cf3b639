import dataclasses
import math

import pytest
import torch

from codec import Codec, compress, model_config
from codec.config import ConfigError
from codec.export import export_model
from codec.metrics import snr
from codec.network.model import check_model_size, compute_model_id
from codec.network.spectral import (
    CausalSTFTAnalysis,
    CrossfadeSynthesis,
    ISTFTSynthesis,
    STFTAnalysis,
    causal_analysis_window,
    crossfade_window,
    magnitudes_held,
    window_problem,
)
from codec.pretrained import PretrainedModel, load


def spectral_model(**overrides) -> Codec:
    """The spectral preset shrunk for tests: hop 80 (200 frames/s at 16 kHz), width 32."""
    options = dict(sample_rate=16000, strides=(80,), widths=(32, 32), n_fft=320,
                   dilations=(1, 3), latent_dim=16, n_q=4, codebook_size=64)
    return Codec(model_config("spectral", **{**options, **overrides}))


@pytest.mark.parametrize("n_fft, hop", [(1280, 320), (640, 320), (960, 320), (96, 16)])
def test_synthesis_inverts_analysis_to_the_edges(n_fft, hop):
    audio = torch.randn(3, 2, hop * 9)
    spectra = STFTAnalysis(n_fft, hop)(audio)
    assert spectra.shape == (3, 2, n_fft // 2 + 1, 9)
    parts = torch.stack((spectra.real, spectra.imag), dim=2)
    assert torch.allclose(ISTFTSynthesis(n_fft, hop)(parts), audio, atol=1e-5)


def test_analysis_keeps_white_noise_level_in_every_bin():
    noise = torch.randn(4, 1, 320 * 200, generator=torch.Generator().manual_seed(0)) * 0.1
    power = STFTAnalysis(1280, 320)(noise).abs().pow(2)[..., 4:-4].mean(dim=(0, 1, 3))
    assert torch.allclose(power[1:-1].mean(), torch.tensor(0.01), rtol=0.05)


@pytest.mark.parametrize("n_fft", [320, 400, 321, 641])
def test_windows_that_cannot_overlap_add_are_named(n_fft):
    assert window_problem(n_fft, 320) is not None
    with pytest.raises(ValueError, match="n_fft must be at least twice the hop"):
        STFTAnalysis(n_fft, 320)
    with pytest.raises(ConfigError, match="model.n_fft"):
        check_model_size(model_config("spectral", n_fft=n_fft))


def test_spectral_model_refuses_bad_crossfades_and_unknown_arch():
    # Causal, its decoder's frames must crossfade over 1 to hop samples.
    for overlap in (0, 321):
        with pytest.raises(ConfigError, match="synthesis_overlap must be 1 to the hop"):
            Codec(model_config("spectral", causal=True, synthesis_overlap=overlap))
    with pytest.raises(ConfigError, match="synthesis_overlap is for a causal model"):
        Codec(model_config("spectral", synthesis_overlap=80))
    with pytest.raises(ConfigError, match="causal spectral model"):
        Codec(model_config("small", synthesis_overlap=80))
    with pytest.raises(ConfigError, match=r"unknown model.arch 'wavenet'.*seanet.*stft"):
        Codec(model_config("small", arch="wavenet"))


@pytest.mark.parametrize("length", [80, 81, 1000, 1237])
def test_spectral_output_length_equals_input_length(length):
    model = spectral_model()
    out = model(torch.randn(2, 1, length))
    assert out.audio.shape == (2, 1, length)
    assert out.codes.shape == (2, 4, math.ceil(length / 80))


def test_spectral_gradients_are_finite_on_silence_and_noise():
    model = spectral_model()
    for audio in (torch.zeros(2, 1, 1600), torch.randn(2, 1, 1600)):
        model.zero_grad()
        model(audio).audio.pow(2).mean().backward()
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        assert grads and all(torch.isfinite(g).all() for g in grads)


def test_spectral_decoder_is_unbounded():
    """The last layer is a plain conv: scaling its weights scales the output, no tanh."""
    model = spectral_model(weight_norm=False).eval()
    latents = torch.randn(1, 16, 20)
    quiet = model.decoder(latents)
    model.decoder.layers[-1].conv.weight.data *= 1000
    model.decoder.layers[-1].conv.bias.data *= 1000
    assert torch.allclose(model.decoder(latents), quiet * 1000, rtol=1e-3, atol=1e-3)


def test_spectral_chunked_coding_equals_whole_signal_coding():
    network = spectral_model()
    network.train()
    network(torch.randn(4, 1, 8000))  # k-means codebooks
    model = PretrainedModel.from_network(network.eval())
    source = compress.tensor_source(torch.randn(1, 16000 * 2) * 0.1, 16000)
    whole = compress.encode_codes(model, source, 4, chunk_seconds=100)
    chunked = compress.encode_codes(model, source, 4, chunk_seconds=0.05)
    assert (whole.codes == chunked.codes).mean() > 0.999  # rare float ties may flip one
    data = compress.encode(model, torch.randn(1, 16000) * 0.1, 16000, n_q=4)
    _, whole_audio = compress.decode_blocks(model, data, chunk_seconds=100)
    _, chunked_audio = compress.decode_blocks(model, data, chunk_seconds=0.05)
    assert snr(torch.cat(list(whole_audio), -1), torch.cat(list(chunked_audio), -1)) > 80


def test_spectral_export_round_trip(tmp_path):
    network = spectral_model()
    network.train()
    network(torch.randn(4, 1, 8000))
    network.eval()
    loaded = load(export_model(network, tmp_path / "m.safetensors")).network
    audio = torch.randn(1, 1, 1111)
    codes = network.encode(audio)
    assert torch.equal(loaded.encode(audio), codes)
    assert torch.allclose(loaded.decode(codes, 1111), network.decode(codes, 1111), atol=1e-5)


def test_model_id_names_the_arch_and_keeps_time_domain_ids():
    """The golden files pin the ids of time-domain models made before ``arch`` and
    ``n_fft`` existed; here: their n_fft means nothing, and the arch is part of the id."""
    model = Codec(model_config("tiny"))
    reference = compute_model_id(model)
    model.config = dataclasses.replace(model.config, n_fft=1280)
    assert compute_model_id(model) == reference
    model.config = dataclasses.replace(model.config, arch="stft")
    assert compute_model_id(model) != reference


def test_crossfade_windows_add_up_to_one_and_the_analysis_sees_the_whole_hop():
    window = crossfade_window(320, 80)
    assert window.shape == (400,) and bool((window > 0).all())
    summed = window[:80] + window[-80:]  # a frame's end beside the next one's start
    assert torch.allclose(summed, torch.ones(80))
    analysis = causal_analysis_window(640, 320)
    assert torch.equal(analysis[-320:], torch.ones(320)) and analysis[0] == 0


def test_causal_synthesis_of_a_causal_analysis_gives_the_signal_back():
    """With no learned layers between them, the causal transforms reconstruct a signal
    exactly: dividing each analysis frame's newest hop + overlap samples by its window
    and crossfading them, every sample of the input comes back."""
    hop, overlap, n_fft = 80, 20, 160
    analysis, synthesis = CausalSTFTAnalysis(n_fft, hop), CrossfadeSynthesis(hop, overlap)
    audio = torch.randn(1, 1, 8 * hop)
    frames = torch.fft.irfft(analysis(audio)[0, 0] * analysis.scale, n=n_fft, dim=0)
    frames = frames[-(hop + overlap):] / analysis.window[-(hop + overlap):, None]
    spectra = torch.fft.rfft(frames, dim=0) / synthesis.scale
    parts = torch.stack((spectra.real, spectra.imag))[None, None]
    # Crossfading frames that each hold the input again gives the input.
    decoded = synthesis(parts)
    torch.testing.assert_close(decoded[..., :], audio, rtol=1e-4, atol=1e-5)


def test_magnitudes_held_keep_the_value_and_pass_only_the_phase_gradient_above_the_bin():
    parts = torch.randn(2, 1, 2, 9, 5, requires_grad=True)
    held = magnitudes_held(parts, first_bin=4)
    assert torch.equal(held, parts)
    # The energy depends on the magnitudes alone: nothing of its gradient passes above
    # the first held bin, all of it below.
    held.pow(2).sum().backward()
    assert torch.allclose(parts.grad[..., :4, :], 2 * parts.detach()[..., :4, :])
    assert parts.grad[..., 4:, :].abs().max() < 1e-5
    # A rotation of every bin (a phase change) keeps its gradient whole.
    parts.grad = None
    turned = torch.stack([-parts[..., 1, :, :], parts[..., 0, :, :]], dim=-3).detach()
    (magnitudes_held(parts, 4) * turned).sum().backward()
    assert torch.allclose(parts.grad, turned, atol=1e-5)
    assert magnitudes_held(parts, 9) is parts


def test_magnitudes_held_give_finite_gradients_for_silent_bins():
    parts = torch.zeros(1, 1, 2, 9, 3, requires_grad=True)
    magnitudes_held(parts, first_bin=0).sum().backward()
    assert torch.isfinite(parts.grad).all()


@pytest.mark.parametrize("causal, first_bin", [(False, 20), (True, 7)])
def test_the_phase_path_decodes_the_same_audio(causal, first_bin):
    """Bins 50 Hz apart on 320-sample frames at 16 kHz; 160 Hz on the causal 100."""
    overrides = dict(causal=True, n_fft=240, synthesis_overlap=20) if causal else {}
    model = spectral_model(**overrides)
    audio = torch.randn(2, 1, 1000)
    out = model(audio, phase_only_above_hz=1000.0)
    assert torch.equal(out.phase_audio, out.audio)
    assert model(audio).phase_audio is None
    assert model.decoder.first_bin_above(1000.0) == first_bin
    assert model.decoder.first_bin_above(1e6) == model.decoder.bins
