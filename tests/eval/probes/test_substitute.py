import pytest
import torch

from eval.probes import substitute
from eval.probes.speech_edits import AS_DECODED

RATE = 16000
FRAME_LEVELS = "the input's frame levels"
INPUTS_MAGNITUDES = "the input's magnitudes, decoded phase"
LOUDER = "the input's magnitudes where the decoded are louder"
QUIETER = "the input's magnitudes where the decoded are quieter"
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
    assert list(edits)[0] == AS_DECODED and len(edits) == 10
    for name, audio in edits.items():
        assert audio.shape == reference.shape
        assert _close(audio, reference), name


def test_a_level_error_is_an_envelope_error_not_a_fine_structure_one():
    reference = _speech_like()
    edits = substitute.substitutions(1500, 250)(reference, 0.5 * reference, RATE)
    assert _close(edits[INPUTS_MAGNITUDES], reference)
    assert _close(edits[INPUTS_ENVELOPE], reference)
    assert _close(edits[DECODED_ENVELOPE], 0.5 * reference)


def test_frame_levels_mend_a_level_error_and_the_gate_only_quietens():
    reference = _speech_like()
    # Too quiet in the first half, too loud in the second; frames that straddle the
    # step (within 800 samples of it) mix both and are left out.
    step = reference.shape[-1] // 2
    gain = torch.where(torch.arange(reference.shape[-1]) < step, 0.5, 2.0)
    edits = substitute.substitutions(1500, 250)(reference, gain * reference, RATE)
    early, late = slice(0, step - 800), slice(step + 800, None)
    levelled, gated = edits[FRAME_LEVELS], edits[f"{FRAME_LEVELS} where quieter"]
    for part in (early, late):
        assert _close(levelled[..., part], reference[..., part])
    assert _close(gated[..., early], 0.5 * reference[..., early])
    assert _close(gated[..., late], reference[..., late])


def test_added_noise_is_mended_where_louder_and_left_where_quieter():
    reference = _speech_like()
    # Far under the harmonics, but above the input's valleys.
    noise = 0.02 * torch.randn(reference.shape, generator=torch.Generator().manual_seed(1))
    edits = substitute.substitutions(1500, 250)(reference, reference + noise, RATE)
    louder_error = (edits[LOUDER] - reference).norm()
    assert louder_error < 0.5 * noise.norm()
    assert (edits[QUIETER] - reference).norm() > louder_error


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
        "| as decoded", f"| {FRAME_LEVELS}", f"| {FRAME_LEVELS} where quieter",
        f"| {INPUTS_MAGNITUDES}", f"| {LOUDER}", f"| {QUIETER}", "| the input below 1500 Hz",
        "| the input from 1500 Hz up", f"| {INPUTS_ENVELOPE}", f"| {DECODED_ENVELOPE}"]


def test_a_split_that_is_not_positive_is_refused(eval_set, tiny_run, capsys):
    with pytest.raises(SystemExit):
        substitute.main(["--model", str(tiny_run), "--data", str(eval_set),
                         "--split-hz", "0"])
    assert "positive" in capsys.readouterr().err
