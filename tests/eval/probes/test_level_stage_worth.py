import math

import pytest
import torch

from eval.probes import level_stage_worth
from eval.probes.speech_edits import AS_DECODED

RATE = 16000


def _tones(high_gain: float = 1.0, seconds: float = 1.0) -> torch.Tensor:
    t = torch.arange(int(seconds * RATE) + 37) / RATE  # not a whole number of frames
    return (0.1 * torch.sin(2 * math.pi * 300 * t)
            + 0.1 * high_gain * torch.sin(2 * math.pi * 3000 * t))[None]


def _level_db(audio: torch.Tensor, low: float, high: float) -> float:
    inner = audio[..., RATE // 10:-RATE // 10].flatten()
    spectrum = torch.fft.rfft(inner).abs().pow(2)
    hz = torch.fft.rfftfreq(inner.shape[-1], 1 / RATE)
    return float(10 * torch.log10(spectrum[(hz >= low) & (hz < high)].sum()))


def test_every_band_count_leaves_a_perfect_decoding_alone():
    reference = _tones()
    edits = level_stage_worth.level_stage_edits([4, 24], 80, 0.0)(reference, reference, RATE)
    assert list(edits) == [AS_DECODED, "the input's levels in 4 bands",
                           "the input's levels in 24 bands"]
    for audio in edits.values():
        assert audio.shape == reference.shape
        torch.testing.assert_close(audio[..., :-RATE // 50], reference[..., :-RATE // 50],
                                   rtol=1e-3, atol=1e-4)


def test_a_faint_band_is_mended_where_the_bands_part_it_from_its_neighbour():
    reference, decoded = _tones(), _tones(high_gain=0.1)
    edits = level_stage_worth.level_stage_edits([1, 24], 80, 0.0)(reference, decoded, RATE)
    want = _level_db(reference, 2800, 3200)
    assert _level_db(decoded, 2800, 3200) < want - 15
    assert abs(_level_db(edits["the input's levels in 24 bands"], 2800, 3200) - want) < 1.0
    # One band for everything: the 300 Hz tone dominates the band, and the gain is small.
    assert _level_db(edits["the input's levels in 1 bands"], 2800, 3200) < want - 10


def test_rounded_levels_land_within_half_a_step():
    reference, decoded = _tones(), _tones(high_gain=0.1)
    edits = level_stage_worth.level_stage_edits([24], 80, 6.0)(reference, decoded, RATE)
    want = _level_db(reference, 2800, 3200)
    assert abs(_level_db(edits["the input's levels in 24 bands"], 2800, 3200) - want) <= 3.5


@pytest.mark.parametrize("argv", [["--bands", "0"], ["--bands", "a,b"], ["--overlap", "0"],
                                  ["--overlap", "321"], ["--step-db", "-1"]])
def test_bad_options_are_refused(argv):
    with pytest.raises(SystemExit):
        level_stage_worth.build_parser().parse_args(["--model", "m", "--data", "d", *argv])
