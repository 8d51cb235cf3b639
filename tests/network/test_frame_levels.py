import pytest
import torch

from codec.config import ConfigError, model_config
from codec.network import frame_levels
from codec.network.model import Codec, _id_fields, check_arch
from codec.network.spectral import CrossfadeSynthesis, crossfade_window

SAMPLE_RATE = 24000


def small_levelled(**overrides) -> Codec:
    torch.manual_seed(0)
    options = dict(widths=(32, 32), latent_dim=16, n_q=3, codebook_size=32, level_bands=6)
    return Codec(model_config("live", **{**options, **overrides}))


@pytest.mark.parametrize("bins, bands", [(201, 12), (201, 64), (321, 1), (5, 5)])
def test_bands_cover_every_bin_once_and_none_is_empty(bins, bands):
    edges = frame_levels.band_edges(bins, SAMPLE_RATE, bands)
    assert edges[0] == 0 and edges[-1] == bins and len(edges) == bands + 1
    assert all(b > a for a, b in zip(edges[:-1], edges[1:], strict=False))


def test_low_bands_are_narrower_than_high_ones():
    edges = frame_levels.band_edges(201, SAMPLE_RATE, 12)
    widths = [b - a for a, b in zip(edges[:-1], edges[1:], strict=False)]
    assert widths[0] < widths[-1]


def test_the_gain_spread_over_bins_sums_to_one_per_bin():
    spread = frame_levels._spread(201, SAMPLE_RATE, 12)
    torch.testing.assert_close(spread.sum(dim=1), torch.ones(201))
    assert (spread >= 0).all()


def test_levels_of_white_noise_are_its_power_per_bin():
    spectra = torch.polar(torch.full((1, 1, 201, 4), 0.1), torch.rand(1, 1, 201, 4) * 6.28)
    levels = frame_levels.levels_of(spectra, SAMPLE_RATE, 8)
    expected = (10 * torch.log10(torch.tensor(0.01)) - frame_levels.FLOOR_DB) / 10
    torch.testing.assert_close(levels, torch.full((1, 8, 4), float(expected)))


def test_bring_to_sets_each_bands_level():
    torch.manual_seed(1)
    parts = torch.randn(2, 1, 2, 201, 5)
    made = frame_levels.levels_of(torch.complex(parts[:, :, 0], parts[:, :, 1]),
                                  SAMPLE_RATE, 6)
    # The same change in every band: every bin's gain is that change, exactly.
    louder = frame_levels.bring_to(parts, made + 0.6, SAMPLE_RATE)
    torch.testing.assert_close(louder, parts * 10 ** (6 / 20), rtol=1e-4, atol=1e-5)
    # Band by band: within a dB of the target, the gains varying smoothly between centres.
    target = made + torch.linspace(-1, 1, 6)[None, :, None]
    brought = frame_levels.bring_to(parts, target, SAMPLE_RATE)
    reached = frame_levels.levels_of(torch.complex(brought[:, :, 0], brought[:, :, 1]),
                                     SAMPLE_RATE, 6)
    assert (reached - target).abs().max() < 0.1  # quantiser units: 1 dB


def test_a_band_is_raised_by_at_most_the_boost_limit():
    parts = torch.full((1, 1, 2, 201, 1), 1e-6)
    brought = frame_levels.bring_to(parts, torch.full((1, 4, 1), 10.0), SAMPLE_RATE)
    assert brought.abs().max() <= 1e-6 * 10 ** (frame_levels.MAX_BOOST_DB / 20) * 1.001


def test_the_first_codebook_codes_the_levels():
    model = small_levelled()
    model.train()
    with torch.no_grad():  # k-means on quiet and loud frames alike
        model(torch.tensor([0.01, 0.03, 0.1, 0.3])[:, None, None]
              * torch.randn(4, 1, SAMPLE_RATE))
    model.eval()
    quiet, loud = 0.01 * torch.randn(1, 1, 3200), 0.3 * torch.randn(1, 1, 3200)
    codes = model.encode(torch.cat([quiet, loud], dim=-1))
    assert codes.shape == (1, 3, 20)
    # The level row alone already tells the loud half from the quiet half.
    decoded = model.decode(codes[:, :1])
    assert decoded[..., 4000:].pow(2).mean() > 10 * decoded[..., :2800].pow(2).mean()


def test_bitrate_counts_the_level_codebook():
    model = small_levelled(codebook_size=1024, n_q=8)
    assert model.bitrate() == 6000 and model.bitrate(1) == 750


def test_codebooks_are_named_as_in_a_plain_residual_vq():
    state = small_levelled().state_dict()
    assert "quantizer.layers.0.embed" in state and "quantizer.layers.2.embed" in state
    assert state["quantizer.layers.0.embed"].shape == (32, 6)
    assert state["quantizer.layers.1.embed"].shape == (32, 16)


@pytest.mark.parametrize("overrides", [dict(arch="seanet", strides=(2, 4, 5, 8),
                                            widths=(8, 8, 8, 8, 8), causal=True,
                                            synthesis_overlap=0),
                                       dict(n_q=1), dict(level_bands=65),
                                       dict(level_bands=-1)])
def test_impossible_level_settings_are_refused(overrides):
    config = model_config("live", **{"level_bands": 6, **overrides})
    with pytest.raises(ConfigError, match="level_bands"):
        check_arch(config)


def _parts_own_and_levelled(model: Codec) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random latents, and the decoder parts they make before and after the frame levels
    are brought."""
    torch.manual_seed(2)
    decoder = model.decoder
    latents = torch.randn(8, decoder.latent_dim + 6, 4)
    own = decoder.layers(latents[:, :decoder.latent_dim])
    own = own.reshape(8, 1, 2, decoder.bins, 4)
    levelled = frame_levels.bring_to(own, latents[:, decoder.latent_dim:], SAMPLE_RATE,
                                     decoder.heard)
    return latents, own, levelled


@pytest.mark.parametrize("dropout", [0.0, 1.0])
def test_level_dropout_decodes_that_share_of_training_items_without_levels(dropout):
    model = small_levelled(level_dropout=dropout).train()
    latents, own, levelled = _parts_own_and_levelled(model)
    with torch.no_grad():
        parts = model.decoder.parts(latents)
    torch.testing.assert_close(parts, own if dropout else levelled)


def test_level_dropout_draws_items_and_leaves_inference_alone():
    model = small_levelled(level_dropout=0.5).train()
    latents, own, levelled = _parts_own_and_levelled(model)
    with torch.no_grad():
        parts = model.decoder.parts(latents)
        as_own = [torch.equal(p, o) for p, o in zip(parts, own, strict=True)]
        as_levelled = [torch.equal(p, lv) for p, lv in zip(parts, levelled, strict=True)]
        assert all(a != b for a, b in zip(as_own, as_levelled, strict=True))
        assert any(as_own) and any(as_levelled)  # 8 items: both kinds (seeded draw)
        torch.testing.assert_close(model.eval().decoder.parts(latents), levelled)


@pytest.mark.parametrize("overrides", [dict(level_dropout=0.5, level_bands=0),
                                       dict(level_dropout=1.5), dict(level_dropout=-0.1)])
def test_impossible_level_dropouts_are_refused(overrides):
    with pytest.raises(ConfigError, match="level_dropout"):
        check_arch(model_config("live", **{"level_bands": 6, **overrides}))


def test_level_dropout_off_leaves_the_model_id_as_before():
    plain = small_levelled()
    assert "level_dropout" not in _id_fields(plain.config)
    assert _id_fields(small_levelled(level_dropout=0.5).config)["level_dropout"] == 0.5


def test_levels_first_measured_in_inference_mode_still_train():
    # The band matrices are cached: made first under inference mode (a benchmark's or a
    # validation's coding), they must still serve a training step after it.
    spectra = torch.randn(1, 1, 123, 3, dtype=torch.complex64)  # a size no other test uses
    with torch.inference_mode():
        frame_levels.levels_of(spectra, SAMPLE_RATE, 7)
    parts = torch.randn(1, 1, 2, 123, 3, requires_grad=True)
    levels = frame_levels.levels_of(spectra, SAMPLE_RATE, 7)
    frame_levels.bring_to(parts, levels, SAMPLE_RATE).sum().backward()
    assert parts.grad is not None and torch.isfinite(parts.grad).all()


def _middle_levels(parts: torch.Tensor, bands: int) -> torch.Tensor:
    """Level vectors of the middle of the frames a live decoder synthesises from
    ``parts``: where the crossfade window is flat and no neighbour sounds."""
    synthesis = CrossfadeSynthesis(320, 80)
    middle = (synthesis.window == 1.0).float()
    frames = synthesis.frames(parts) * middle[:, None]
    spectra = torch.fft.rfft(frames, dim=1) / middle.sum().sqrt()
    return frame_levels.levels_of(spectra[:, None], SAMPLE_RATE, bands)


def test_the_heard_operator_is_the_spectrum_of_the_frames_middle():
    torch.manual_seed(2)
    parts = torch.randn(2, 1, 2, 201, 3)
    heard = frame_levels.heard_operator(crossfade_window(320, 80))
    mapped = torch.einsum("ij,ncjf->ncif", heard, parts.flatten(2, 3)).reshape(parts.shape)
    torch.testing.assert_close(
        frame_levels.levels_of(torch.complex(mapped[:, :, 0], mapped[:, :, 1]), SAMPLE_RATE, 6),
        _middle_levels(parts, 6), rtol=1e-4, atol=1e-4)


def test_levels_hold_where_the_frame_sounds_even_when_its_edges_hold_the_energy():
    # What a decoder trained on waveform terms learns: loud frame edges, which the
    # crossfade fades and the neighbours cancel, over a faint middle.
    torch.manual_seed(3)
    envelope = torch.full((400,), 0.01)
    envelope[:80], envelope[-80:] = 1.0, 1.0
    frames = torch.randn(1, 400, 4) * envelope[None, :, None]
    spectra = torch.fft.rfft(frames, dim=1) / CrossfadeSynthesis(320, 80).scale
    parts = torch.stack([spectra.real, spectra.imag], dim=1)[:, None]  # [1, 1, 2, 201, 4]
    target = _middle_levels(parts, 6) + 2.0  # 20 dB louder where the frame sounds
    heard = frame_levels.heard_operator(crossfade_window(320, 80))
    brought = frame_levels.bring_to(parts, target, SAMPLE_RATE, heard)
    assert (_middle_levels(brought, 6) - target).abs().max() < 0.2  # 2 dB
    # Measured on the parts alone, the loud edges pass for the level: the middle stays faint.
    naive = frame_levels.bring_to(parts, target, SAMPLE_RATE)
    assert (_middle_levels(naive, 6) - target).max() < -1.0  # over 10 dB short everywhere
