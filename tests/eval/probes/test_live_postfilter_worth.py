import pytest
import torch
from harmonic_signals import harmonics_in_noise, valley_share

from eval.probes import live_postfilter_worth
from eval.probes.speech_edits import AS_DECODED

RATE, F0 = 16000, 120


def test_each_exponent_and_averaging_is_an_edit_that_deepens_the_valleys():
    decoded = harmonics_in_noise(RATE, F0, noise=0.05)[0]
    edits = live_postfilter_worth.postfilter_edits([1.0, 2.0], [1, 5])(decoded, decoded, RATE)
    assert list(edits) == [AS_DECODED] + [f"exponent {e:g}, averaged over {k} frames"
                                          for e in (1.0, 2.0) for k in (1, 5)]
    assert torch.equal(edits["exponent 1, averaged over 5 frames"], decoded)
    filtered = edits["exponent 2, averaged over 5 frames"]
    assert filtered.shape == decoded.shape
    assert valley_share(filtered, RATE, F0) < 0.5 * valley_share(decoded, RATE, F0)


@pytest.mark.parametrize("argv", [["--exponents", "0.5"], ["--exponents", "a"],
                                  ["--average-frames", "0"], ["--average-frames", "2.5"]])
def test_bad_options_are_refused(argv):
    with pytest.raises(SystemExit):
        live_postfilter_worth.build_parser().parse_args(["--model", "m", "--data", "d", *argv])
