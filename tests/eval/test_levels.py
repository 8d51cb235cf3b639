import json
import math

import pytest
import torch

from codec.metrics import mel_distance
from eval import levels, opus

RATE = 24000


def _noise(seconds: float = 1.0, seed: int = 0) -> torch.Tensor:
    return 0.1 * torch.randn(1, int(seconds * RATE), generator=torch.Generator().manual_seed(seed))


def _low_pass(audio: torch.Tensor, cutoff_hz: float) -> torch.Tensor:
    spectrum = torch.fft.rfft(audio)
    freqs = torch.fft.rfftfreq(audio.shape[-1], 1 / RATE)
    return torch.fft.irfft(spectrum * (freqs < cutoff_hz), n=audio.shape[-1])


def test_bands_end_at_the_nyquist_frequency():
    assert levels.band_edges_hz(24000)[-1] == (8000, 12000)
    assert levels.band_edges_hz(8000)[-1] == (3000, 4000)
    for bands in (levels.band_edges_hz(16000), levels.band_edges_hz(48000)):
        assert bands[0][0] == 0
        assert all(a[1] == b[0] for a, b in zip(bands, bands[1:], strict=False))


def test_a_low_pass_shows_as_upper_bands_far_below_the_input():
    reference = _noise()
    tally = levels.Tally(levels.band_edges_hz(RATE))
    levels.add_file(tally, reference, _low_pass(reference, 1500), RATE)
    result = levels.summary(tally)
    for band in result["bands"]:
        if band["high_hz"] <= 1000:
            assert abs(band["level_db"]) < 0.5 and band["snr_db"] > 20
        if band["low_hz"] >= 2000:
            assert band["level_db"] < -30 and abs(band["snr_db"]) < 0.5


def test_noise_in_the_pauses_shows_in_the_quietest_class():
    reference = _noise(2.0)
    reference[:, RATE:] = 0  # a second of digital silence
    hiss = 1e-3 * torch.randn(reference.shape, generator=torch.Generator().manual_seed(1))
    tally = levels.Tally(levels.band_edges_hz(RATE))
    levels.add_file(tally, reference, reference + hiss, RATE)
    classes = levels.summary(tally)["frame_levels"]
    silent = classes[0]
    assert silent["from_db"] == levels.LEVEL_CLASSES_DB[0]
    assert silent["share"] == pytest.approx(0.5, abs=0.02)
    assert silent["input_db"] < -150 and silent["decoded_db"] == pytest.approx(-60, abs=1)
    loud = classes[-1]  # 0.1 RMS noise: -20 dBFS, in the class from -30
    assert loud["input_db"] == pytest.approx(-20, abs=1)
    assert loud["decoded_db"] == pytest.approx(loud["input_db"], abs=0.1)


def test_mel_parts_add_up_to_the_mel_distance_and_show_where_it_comes_from():
    # Hiss in a second of silence: nearly all of the mel distance is the pause's.
    reference = _noise(2.0)
    reference[:, RATE:] = 0
    decoded = reference + 1e-3 * torch.randn(reference.shape,
                                             generator=torch.Generator().manual_seed(1))
    tally = levels.Tally(levels.band_edges_hz(RATE))
    levels.add_file(tally, reference, decoded, RATE)
    classes = levels.summary(tally)["frame_levels"]
    parts = [level["mel_distance"] for level in classes]
    assert sum(parts) == pytest.approx(mel_distance(reference, decoded, RATE), rel=1e-4)
    assert parts[0] > 0.9 * sum(parts)


def test_level_classes_take_their_lower_edge_and_everything_quieter_goes_first():
    assert levels.level_class(-300.0) == 0
    assert levels.level_class(-80.0) == 1
    assert levels.level_class(-15.0) == len(levels.LEVEL_CLASSES_DB) - 1
    assert levels.level_class(3.0) == len(levels.LEVEL_CLASSES_DB) - 1


def test_markdown_gives_each_system_a_column_pair():
    figures = {"bands": [{"low_hz": 0.0, "high_hz": 250.0, "level_db": -1.5, "snr_db": 3.0}],
               "frame_levels": [{"from_db": -30.0, "share": 1.0, "input_db": -20.0,
                                 "decoded_db": -21.0, "mel_distance": 0.5}]}
    assert levels.markdown("speech", {"codec": figures, "opus": figures}).splitlines() == [
        "### speech", "",
        "| band Hz | codec level dB | codec SNR dB | opus level dB | opus SNR dB |",
        "|---|---|---|---|---|",
        "| 0-250 | -1.5 | 3.0 | -1.5 | 3.0 |", "",
        "| input frames from dBFS | share | input dB | codec dB | codec mel | opus dB "
        "| opus mel |",
        "|---|---|---|---|---|---|---|",
        "| -30 | 1.00 | -20.0 | -21.0 | 0.500 | -21.0 | 0.500 |"]


def test_command_prints_tables_per_group_and_writes_json(eval_set, tiny_run, tmp_path, capsys):
    out = tmp_path / "levels.json"
    with_opus = opus.available()
    argv = ["--model", str(tiny_run), "--data", str(eval_set), "--kbps", "5", "--json", str(out)]
    assert levels.main(argv + (["--opus"] if with_opus else [])) == 0
    printed = capsys.readouterr().out
    assert "### speech" in printed and "### music" in printed
    result = json.loads(out.read_text())
    assert set(result) == {"speech", "music"}
    systems = {"codec", "opus"} if with_opus else {"codec"}
    for group in result.values():
        assert set(group) == systems
        bands = group["codec"]["bands"]
        assert all(math.isfinite(b["level_db"]) for b in bands)
        shares = [c["share"] for c in group["codec"]["frame_levels"]]
        assert sum(shares) == pytest.approx(1.0)


def test_command_reports_a_missing_model(eval_set, tmp_path, capsys):
    assert levels.main(["--model", str(tmp_path / "none"), "--data", str(eval_set)]) == 2
    assert "eval.levels: error" in capsys.readouterr().err
