import dataclasses
import math

import numpy as np
import pytest
import torch

from codec.coding import band_levels
from codec.coding.band_levels import (
    MIN_STEP_DB,
    BandLevels,
    LevelGrid,
    LevelMeter,
    apply_levels,
    brought_to,
    quantise,
)
from codec.coding.bitstream import BitstreamError
from codec.coding.settings import check_coding
from codec.config import CodingConfig, ConfigError

RATE, HOP = 24000, 320
GRID = LevelGrid(RATE, HOP, bands=16, frames=3, step_db=4.0, floor_db=-68.0)


def two_tones(seconds: float = 1.0, high_db: float = 0.0) -> torch.Tensor:
    """``[1, n]``: 300 Hz and 3 kHz, the upper tone ``high_db`` from the lower one's level,
    with a syllable-like swell of 4 Hz."""
    t = torch.arange(int(RATE * seconds)) / RATE
    swell = 0.6 + 0.4 * torch.sin(2 * math.pi * 4 * t)
    low = torch.sin(2 * math.pi * 300 * t)
    high = torch.sin(2 * math.pi * 3000 * t) * 10 ** (high_db / 20)
    return (0.1 * swell * (low + high))[None]


def measure(audio: torch.Tensor, block: int | None = None) -> np.ndarray:
    meter = LevelMeter(GRID, audio.shape[0])
    block = block or audio.shape[-1]
    for start in range(0, audio.shape[-1], block):
        meter.push(audio[:, start:start + block])
    return quantise(meter.finish(-(-audio.shape[-1] // HOP)), GRID)


def band_db(audio: torch.Tensor, low_hz: float, high_hz: float) -> float:
    spectrum = torch.fft.rfft(audio[0]).abs().pow(2)
    freqs = torch.fft.rfftfreq(audio.shape[-1], 1 / RATE)
    return 10 * math.log10(float(spectrum[(freqs >= low_hz) & (freqs < high_hz)].sum()))


def test_the_finest_steps_keep_loud_bands_and_their_level():
    """At 0.1 dB a level 60 dB over the floor is step 600: stored and coded as it is,
    never wrapped round to a faint one."""
    fine = dataclasses.replace(GRID, step_db=MIN_STEP_DB)
    meter = LevelMeter(fine, 1)
    meter.push(two_tones())
    levels = quantise(meter.finish(RATE // HOP), fine)
    assert levels.max() > 255 and levels.max() <= fine.top == 1200
    coded = BandLevels(fine, levels)
    data, field = coded.to_bytes()
    back = BandLevels.from_bytes(data, field, RATE, HOP, rows=1, codec_frames=RATE // HOP)
    assert np.array_equal(back.levels, levels)
    audio = two_tones()
    matched = coded.apply(audio[None], 0, 0)[0]
    assert abs(float(matched.pow(2).mean() / audio.pow(2).mean()) - 1) < 0.1


def test_levels_do_not_depend_on_how_the_audio_is_fed():
    audio = two_tones()
    assert (measure(audio) == measure(audio, block=777)).all()
    assert measure(audio).shape == (1, 16, math.ceil(RATE / HOP / 3))


def test_levels_round_trip_through_their_bytes():
    rows = [measure(two_tones()), measure(two_tones(high_db=-20))]
    levels = BandLevels(GRID, np.concatenate(rows))
    data, field = levels.to_bytes()
    back = BandLevels.from_bytes(data, field, RATE, HOP, rows=2, codec_frames=75)
    assert (back.levels == levels.levels).all()
    # A few hundred bytes a second of two rows, not a byte per level.
    assert len(data) < levels.levels.size / 2


def test_damaged_level_bytes_raise_bitstream_error():
    levels = BandLevels(GRID, measure(two_tones()))
    data, field = levels.to_bytes()
    with pytest.raises(BitstreamError):
        BandLevels.from_bytes(data[:-1], field, RATE, HOP, rows=1, codec_frames=75)
    # None at all, or whole words of junk after them: not the levels' coding.
    for altered in (b"", data + bytes(4096), data + b"\x01\x02\x03\x04"):
        with pytest.raises(BitstreamError, match="damaged"):
            BandLevels.from_bytes(altered, field, RATE, HOP, rows=1, codec_frames=75)


def test_a_faint_band_is_brought_to_the_input_level():
    # The decoded upper tone 30 dB under the input's, as a codec's upper bands come out.
    audio, decoded = two_tones(), two_tones(high_db=-30)
    restored = apply_levels(decoded, measure(audio), GRID)
    assert band_db(decoded, 2500, 3500) < band_db(audio, 2500, 3500) - 25
    assert band_db(restored, 2500, 3500) == pytest.approx(band_db(audio, 2500, 3500), abs=2)
    assert band_db(restored, 200, 400) == pytest.approx(band_db(audio, 200, 400), abs=2)


def test_levels_measured_in_one_piece_are_the_encoders():
    audio = torch.cat([two_tones(), two_tones(high_db=-20)])
    assert (band_levels.measure(audio, GRID) == measure(audio, block=555)).all()


def test_bringing_to_levels_in_float32_matches_the_decoder_and_passes_gradients():
    audio, decoded = two_tones(), two_tones(high_db=-30)
    levels = measure(audio)
    estimate = decoded.clone().requires_grad_()
    out = brought_to(estimate, levels, GRID)
    assert out.dtype == torch.float32
    assert torch.allclose(out, apply_levels(decoded, levels, GRID), atol=1e-4)
    out.pow(2).sum().backward()
    assert torch.isfinite(estimate.grad).all() and estimate.grad.abs().sum() > 0
    # Scaling the decoded audio changes nothing the levels set: its gradient along
    # itself is (nearly) none.
    along = float((estimate.grad * decoded).sum()) / float(out.detach().pow(2).sum())
    assert abs(along) < 0.05


def test_a_band_at_the_floor_is_never_raised():
    # Silence in, faint noise decoded: the levels sit at the floor, and the noise stays
    # where it was or goes lower.
    silence = torch.zeros(1, RATE)
    noise = 1e-5 * torch.randn(1, RATE, generator=torch.Generator().manual_seed(0))
    levels = measure(silence)
    assert (levels == 0).all()
    out = apply_levels(noise, levels, GRID)
    assert float(out.pow(2).mean()) <= float(noise.pow(2).mean()) * 1.01


def with_pause(audio: torch.Tensor, start: float, end: float) -> torch.Tensor:
    """``audio`` with digital silence from ``start`` to ``end`` seconds."""
    out = audio.clone()
    out[:, int(start * RATE):int(end * RATE)] = 0
    return out


def test_a_pause_the_input_has_comes_out_silent_and_the_rest_does_not():
    # Digital silence in the middle of the input; the decoder's noise fills it.
    audio = with_pause(two_tones(), 0.4, 0.7)
    decoded = two_tones(high_db=-30) + 1e-4 * torch.randn(
        1, RATE, generator=torch.Generator().manual_seed(0))
    out = apply_levels(decoded, measure(audio), GRID)
    # Muted from one span centre inside the pause to the last one (3 frames a span).
    assert out[:, int(0.47 * RATE):int(0.62 * RATE)].abs().max() == 0
    sounding = out[:, :int(0.35 * RATE)]
    assert band_db(sounding, 200, 400) == pytest.approx(
        band_db(audio[:, :int(0.35 * RATE)], 200, 400), abs=2)


def test_a_pause_with_one_band_above_the_floor_is_not_muted():
    # A faint 3 kHz tone alone in the pause, 40 dB under the tones: not silence.
    t = torch.arange(RATE) / RATE
    faint = 1e-3 * torch.sin(2 * math.pi * 3000 * t)[None]
    audio = with_pause(two_tones(), 0.4, 0.7) + faint * ((t >= 0.4) & (t < 0.7))
    out = apply_levels(two_tones(), measure(audio), GRID)
    assert out[:, int(0.45 * RATE):int(0.65 * RATE)].abs().max() > 1e-4


def flagged(audio: torch.Tensor, grid: LevelGrid) -> BandLevels:
    """``audio``'s levels as a file carries them: fitted, coded and read back."""
    meter = LevelMeter(grid, audio.shape[0])
    meter.push(audio)
    levels = BandLevels.fitted(meter.finish(-(-audio.shape[-1] // HOP)), grid, None)
    data, described = levels.to_bytes()
    return BandLevels.from_bytes(data, described, RATE, HOP, audio.shape[0],
                                 codec_frames=-(-audio.shape[-1] // HOP))


def test_with_silence_flags_a_silent_pause_is_muted_and_a_faint_one_kept():
    # Two pauses at the floor in every band: digital silence, and faint noise over
    # silence_db. Only the first is flagged silent and decodes silent.
    grid = dataclasses.replace(GRID, silence_db=-100.0)
    t = torch.arange(2 * RATE) / RATE
    faint = 1e-3 * torch.randn(1, 2 * RATE, generator=torch.Generator().manual_seed(2))
    audio = torch.cat([two_tones(), two_tones()], dim=-1)
    audio = with_pause(with_pause(audio, 0.4, 0.7), 1.4, 1.7) + faint * ((t >= 1.4) & (t < 1.7))
    levels = flagged(audio, grid)
    assert levels.grid.silence_db == -100.0 and levels.silent.shape == (1, levels.levels.shape[-1])
    assert (levels.levels[..., 11:16] == 0).all() and (levels.levels[..., 36:41] == 0).all()
    decoded = torch.cat([two_tones(high_db=-30)] * 2, dim=-1) + 1e-3 * torch.randn(
        1, 2 * RATE, generator=torch.Generator().manual_seed(0))
    out = levels.apply(decoded[None], 0, 0)[0]
    assert out[:, int(0.47 * RATE):int(0.62 * RATE)].abs().max() == 0
    kept = out[:, int(1.47 * RATE):int(1.62 * RATE)]
    assert 0 < kept.pow(2).mean() < decoded[:, int(1.47 * RATE):int(1.62 * RATE)].pow(2).mean()


def test_silence_flags_cost_a_few_bytes():
    grid = dataclasses.replace(GRID, silence_db=-100.0)
    audio = with_pause(two_tones(), 0.4, 0.7)
    levels = flagged(audio, grid)
    plain = BandLevels(GRID, levels.levels)
    assert len(plain.to_bytes()[0]) <= len(levels.to_bytes()[0]) <= len(plain.to_bytes()[0]) + 8


def test_silence_flags_over_the_floor_are_refused_not_dropped():
    levels = measure(two_tones())
    silent = np.ones((1, levels.shape[-1]), bool)  # spans that are not at the floor
    with pytest.raises(ValueError, match="under the floor"):
        band_levels.encode_levels(levels, GRID, band_levels.spreads(levels), silent, 0.5)


def test_a_chunk_with_reach_frames_of_context_equals_the_whole():
    # A pause that starts inside the chunk: its silence is the whole's too.
    audio, decoded = with_pause(two_tones(), 0.3, 0.6), two_tones(high_db=-30)
    levels = measure(audio)
    whole = apply_levels(decoded, levels, GRID)
    first, count, reach = 20, 10, GRID.reach_frames
    piece = apply_levels(decoded[:, (first - reach) * HOP:(first + count + reach) * HOP],
                         levels, GRID, first - reach)
    kept = piece[:, reach * HOP:(reach + count) * HOP]
    assert torch.allclose(kept, whole[:, first * HOP:(first + count) * HOP], atol=1e-6)


def test_a_causal_model_refuses_band_levels():
    with pytest.raises(ConfigError, match="causal"):
        check_coding(CodingConfig(band_levels=16), causal=True)
    check_coding(CodingConfig(band_levels=16), causal=False)


def test_a_bad_low_rate_band_count_is_refused():
    with pytest.raises(ConfigError, match="coding.band_levels_low_rate"):
        check_coding(CodingConfig(band_levels=16, band_levels_low_rate=65), causal=False)


def test_levels_over_their_budget_take_coarser_steps():
    meter = LevelMeter(GRID, 1)
    meter.push(two_tones(seconds=3.0) * (1 + torch.randn(1, 3 * RATE).abs()))
    power = meter.finish(3 * RATE // HOP)
    free = BandLevels.fitted(power, GRID, None)
    size = len(free.to_bytes()[0])
    fitted = BandLevels.fitted(power, GRID, size * 0.6)
    assert free.grid.step_db == GRID.step_db
    assert fitted.grid.step_db > GRID.step_db or fitted.grid.frames > GRID.frames
    assert len(fitted.to_bytes()[0]) <= size * 0.6
    # The header carries the step, so the file decodes as it was coded.
    data, field = fitted.to_bytes()
    back = BandLevels.from_bytes(data, field, RATE, HOP, rows=1, codec_frames=3 * RATE // HOP)
    assert back.grid == fitted.grid and (back.levels == fitted.levels).all()
    # Over spans twice as long when no step up to twice the first fits.
    longer = BandLevels.fitted(power, GRID, size * 0.3)
    assert longer.grid.frames > GRID.frames and len(longer.to_bytes()[0]) <= size * 0.3
    assert BandLevels.fitted(power, GRID, 1) is None
