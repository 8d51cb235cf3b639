import pytest
import torch

from eval.probes import band_worth

RATE = 16000


def _band_energy(audio: torch.Tensor, low: float, high: float) -> float:
    spectrum = torch.fft.rfft(audio).abs().pow(2)
    freqs = torch.fft.rfftfreq(audio.shape[-1], 1 / RATE)
    return float(spectrum[..., (freqs >= low) & (freqs < high)].sum())


def test_scale_band_changes_that_band_alone():
    audio = torch.randn(1, RATE, generator=torch.Generator().manual_seed(0))
    removed = band_worth.scale_band(audio, RATE, 2000, 4000, 0.0)
    doubled = band_worth.scale_band(audio, RATE, 2000, 4000, 2.0)
    assert _band_energy(removed, 2000, 4000) < 1e-6 * _band_energy(audio, 2000, 4000)
    assert _band_energy(doubled, 2000, 4000) == pytest.approx(
        4 * _band_energy(audio, 2000, 4000), rel=1e-4)
    for low, high in ((0, 2000), (4000, 8001)):
        assert _band_energy(removed, low, high) == pytest.approx(
            _band_energy(audio, low, high), rel=1e-4)
    assert torch.allclose(band_worth.scale_band(audio, RATE, 2000, 4000, 1.0), audio, atol=1e-5)


def test_variants_start_unedited_and_skip_cuts_above_the_nyquist_frequency():
    edits = band_worth.variants(RATE, [1500, 9000], [10], (1500, 8000))
    assert list(edits) == [band_worth.AS_DECODED, "without 1500 Hz and up",
                           "1500-8000 Hz +10 dB"]
    assert edits["without 1500 Hz and up"] == (1500, RATE / 2 + 1, 0.0)
    assert edits["1500-8000 Hz +10 dB"][2] == pytest.approx(10 ** 0.5)


def test_command_scores_the_speech_files(eval_set, tiny_run, capsys):
    pytest.importorskip("pesq")
    pytest.importorskip("pystoi")
    argv = ["--model", str(tiny_run), "--data", str(eval_set), "--kbps", "5",
            "--cut-from", "2000", "--boost-db", "10"]
    assert band_worth.main(argv) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    assert [row.split(" | ")[0] for row in rows[1:]] == [
        "| as decoded", "| without 2000 Hz and up", "| 1500-8000 Hz +10 dB"]


@pytest.mark.parametrize("argv, message", [
    (["--kind", "music"], "no speech files"),
    (["--boost-band", "8000-1500"], None),
])
def test_bad_input_is_a_clear_error(eval_set, tiny_run, capsys, argv, message):
    base = ["--model", str(tiny_run), "--data", str(eval_set)]
    if message is None:
        with pytest.raises(SystemExit):
            band_worth.main(base + argv)
        assert "LOW < HIGH" in capsys.readouterr().err
    else:
        assert band_worth.main(base + argv) == 2
        assert message in capsys.readouterr().err
