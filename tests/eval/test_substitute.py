import pytest
import torch

from eval import substitute
from eval.band_worth import AS_DECODED

RATE = 16000
INPUTS_MAGNITUDES = "the input's magnitudes, decoded phase"
INPUTS_ENVELOPE = "the input's envelope, decoded fine structure"
DECODED_ENVELOPE = "decoded envelope, the input's fine structure"


def _speech_like(seconds: float = 1.0) -> torch.Tensor:
    t = torch.arange(int(seconds * RATE)) / RATE
    harmonics = sum(torch.sin(2 * torch.pi * 180 * k * t) / k for k in range(1, 20))
    return (0.1 * harmonics * (1 + torch.sin(2 * torch.pi * 3 * t)))[None]


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    # Away from the ends, where the frames are not fully overlapped.
    inner = slice(RATE // 20, -RATE // 20)
    return float((a[..., inner] - b[..., inner]).norm() / b[..., inner].norm()) < 1e-3


def test_a_perfect_decoding_is_left_alone_by_every_substitution():
    reference = _speech_like()
    edits = substitute.substitutions(1500, 250)(reference, reference.clone(), RATE)
    assert list(edits)[0] == AS_DECODED and len(edits) == 6
    for name, audio in edits.items():
        assert audio.shape == reference.shape
        assert _close(audio, reference), name


def test_a_level_error_is_an_envelope_error_not_a_fine_structure_one():
    reference = _speech_like()
    edits = substitute.substitutions(1500, 250)(reference, 0.5 * reference, RATE)
    assert _close(edits[INPUTS_MAGNITUDES], reference)
    assert _close(edits[INPUTS_ENVELOPE], reference)
    assert _close(edits[DECODED_ENVELOPE], 0.5 * reference)


def test_the_input_above_the_split_replaces_the_decoded_high_bands():
    reference = _speech_like()
    noise = torch.randn(reference.shape, generator=torch.Generator().manual_seed(0))
    high_noise = torch.fft.irfft(torch.fft.rfft(noise) * (torch.fft.rfftfreq(
        noise.shape[-1], 1 / RATE) > 4000), n=noise.shape[-1])
    edits = substitute.substitutions(2000, 250)(reference, reference + 0.1 * high_noise,
                                                RATE)
    assert _close(edits["the input from 2000 Hz up"], reference)
    assert not _close(edits["the input below 2000 Hz"], reference)


def test_command_scores_the_speech_files(eval_set, tiny_run, capsys):
    pytest.importorskip("pesq")
    pytest.importorskip("pystoi")
    argv = ["--model", str(tiny_run), "--data", str(eval_set), "--kbps", "5"]
    assert substitute.main(argv) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    assert [row.split(" | ")[0] for row in rows[1:]] == [
        "| as decoded", f"| {INPUTS_MAGNITUDES}", "| the input below 1500 Hz",
        "| the input from 1500 Hz up", f"| {INPUTS_ENVELOPE}", f"| {DECODED_ENVELOPE}"]


def test_a_split_that_is_not_positive_is_refused(eval_set, tiny_run, capsys):
    with pytest.raises(SystemExit):
        substitute.main(["--model", str(tiny_run), "--data", str(eval_set),
                         "--split-hz", "0"])
    assert "positive" in capsys.readouterr().err
