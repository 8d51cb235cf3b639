import math

import pytest
import torch

from codec.config import ConfigError, model_config
from codec.network import frame_levels
from codec.network.level_stage import LevelStage
from codec.network.model import Codec, compute_model_id

HOP, DELAY, OVERLAP, RATE, BANDS = 320, 80, 80, 24000, 16


def stage() -> LevelStage:
    return LevelStage(hop=HOP, overlap=OVERLAP, delay=DELAY, sample_rate=RATE, bands=BANDS)


def tone(hz: float, frames: int, amplitude: float = 0.1) -> torch.Tensor:
    t = torch.arange(frames * HOP) / RATE
    return (amplitude * torch.sin(2 * math.pi * hz * t))[None, None]


def band_level_db(audio: torch.Tensor, low: float, high: float) -> float:
    spectrum = torch.fft.rfft(audio.flatten()).abs().pow(2)
    hz = torch.fft.rfftfreq(audio.shape[-1], 1 / RATE)
    return float(10 * torch.log10(spectrum[(hz >= low) & (hz < high)].sum()))


def test_audio_brought_to_its_own_levels_is_itself():
    audio = 0.1 * torch.randn(2, 1, 12 * HOP, generator=torch.Generator().manual_seed(0))
    levelled = stage()(audio, stage().input_levels(audio))
    torch.testing.assert_close(levelled, audio, rtol=1e-4, atol=1e-5)


def test_a_faint_band_is_brought_to_the_input_level():
    source = tone(3000, 40) + tone(300, 40)
    decoded = 0.05 * tone(3000, 40) + tone(300, 40)  # 3 kHz 26 dB too faint
    levelled = stage()(decoded, stage().input_levels(source))
    middle = slice(5 * HOP, 35 * HOP)
    high_band = band_level_db(source[..., middle], 2800, 3200)
    assert band_level_db(decoded[..., middle], 2800, 3200) < high_band - 20
    for low, high in ((2800, 3200), (250, 350)):
        want = band_level_db(source[..., middle], low, high)
        assert abs(band_level_db(levelled[..., middle], low, high) - want) < 1.0


def test_the_last_delay_samples_pass_as_decoded():
    source, decoded = tone(1000, 6), 0.1 * tone(1000, 6)
    levelled = stage()(decoded, stage().input_levels(source))
    assert torch.equal(levelled[..., -DELAY:], decoded[..., -DELAY:])
    assert not torch.allclose(levelled[..., :-DELAY], decoded[..., :-DELAY])


def test_a_level_frame_looks_at_no_sample_past_its_end():
    audio = 0.1 * torch.randn(1, 1, 8 * HOP, generator=torch.Generator().manual_seed(1))
    t = 4 * HOP - DELAY  # the first sample after frame 3's level frame
    changed = audio.clone()
    changed[..., t:] += 0.5
    before, after = stage().input_levels(audio), stage().input_levels(changed)
    torch.testing.assert_close(before[..., :4], after[..., :4])
    assert not torch.allclose(before[..., 4], after[..., 4])


def live(**overrides) -> Codec:
    torch.manual_seed(0)
    options = dict(widths=(32, 32), latent_dim=16, n_q=4, codebook_size=32, level_bands=8)
    return Codec(model_config("live", **{**options, **overrides}))


def test_a_staged_model_brings_its_decoded_audio_not_its_frames_to_the_levels():
    model = live(level_overlap=OVERLAP).eval()
    assert model.decoder.level_stage is not None and model.decoder.heard is None
    latents = torch.randn(1, 16 + 8, 6)
    latents[:, 16:] = 6.0  # every band 40 dB over the floor
    with torch.no_grad():
        parts, audio = model.decoder.parts(latents), model.decoder(latents)
        unlevelled = model.decoder.synthesis(parts)
    torch.testing.assert_close(audio, model.decoder.level_stage(unlevelled, latents[:, 16:]))


def test_level_dropout_leaves_some_items_as_decoded_in_training_only():
    model = live(level_overlap=OVERLAP, level_dropout=1.0)
    latents = torch.randn(3, 16 + 8, 6)
    latents[:, 16:] = 6.0
    with torch.no_grad():
        own = model.decoder.synthesis(model.decoder.parts(latents))
        torch.testing.assert_close(model.decoder.train()(latents), own)
        assert not torch.allclose(model.decoder.eval()(latents), own)


def test_two_level_codebooks_take_the_first_two_code_rows():
    model = live(n_q=4, level_codebooks=2).train()
    audio = 0.1 * torch.randn(4, 1, 40 * HOP, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        model(audio)  # k-means places the codebooks
    model.eval()
    latents = model.encoder(audio)
    levels = latents[:, 16:]
    with torch.no_grad():
        one = model.quantizer.decode(model.quantizer.encode(latents, 1))[:, 16:]
        two = model.quantizer.decode(model.quantizer.encode(latents, 2))[:, 16:]
        only_levels = model.quantizer.decode(model.quantizer.encode(latents, 2))[:, :16]
    assert (two - levels).abs().mean() < (one - levels).abs().mean()  # the second refines
    assert torch.equal(only_levels, torch.zeros_like(only_levels))
    assert model.quantizer.encode(latents, 3).shape[1] == 3


@pytest.mark.parametrize("overrides", [
    dict(level_overlap=80, causal=False, synthesis_overlap=0),  # an offline model
    dict(level_overlap=80, level_bands=0),                      # no levels to meet
    dict(level_overlap=241),                                    # past the hop, less 80
    dict(level_codebooks=4),                                    # no codebook left
    dict(level_codebooks=0),
])
def test_impossible_level_settings_are_refused(overrides):
    with pytest.raises(ConfigError):
        Codec(model_config("live", **{"level_bands": 8, "n_q": 4, **overrides}))


def test_the_new_settings_keep_every_earlier_model_id():
    plain = live()
    same = Codec(model_config("live", widths=(32, 32), latent_dim=16, n_q=4, codebook_size=32,
                              level_bands=8, level_codebooks=1, level_overlap=0))
    same.load_state_dict(plain.state_dict())
    assert compute_model_id(same) == compute_model_id(plain)
    staged = Codec(model_config("live", widths=(32, 32), latent_dim=16, n_q=4,
                                codebook_size=32, level_bands=8, level_overlap=OVERLAP))
    staged.load_state_dict(plain.state_dict())
    assert compute_model_id(staged) != compute_model_id(plain)


def test_levels_use_the_frame_levels_units():
    audio = tone(1000, 10)
    levels = stage().input_levels(audio)
    assert levels.shape == (1, BANDS, 10)
    assert float(levels.max()) * frame_levels.UNIT_DB + frame_levels.FLOOR_DB < 0
    assert float(levels.min()) >= 0
