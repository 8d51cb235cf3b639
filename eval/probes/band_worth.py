"""What each frequency band of a codec's decoded speech is worth to PESQ and STOI.

    python -m eval.probes.band_worth --model RUN --data MANIFEST [--kbps 6]
        [--cut-from 1500,2000,4000] [--boost-db 10,20] [--boost-band 1500-8000]

``eval.levels`` shows how loud each band comes out; it cannot say whether what is there
helps a listener. This codes the speech files as ``codec encode`` does, then scores the
decoded audio as it is, with everything from each ``--cut-from`` frequency up taken out,
and with ``--boost-band`` raised by each ``--boost-db``. If taking a band out lowers PESQ,
what the codec puts there carries the speech's structure; if it raises PESQ, the band
holds noise that a listener would be better without; if raising a faint band helps, the
decoder has the structure but too little of it. The input is never changed: every
variant is scored against the original file. Needs the ``pesq`` and ``pystoi`` packages.
"""
from __future__ import annotations

import argparse
import sys

import torch

from eval.probes.speech_edits import AS_DECODED, Edits, edit_parser, print_edit_scores


def scale_band(audio: torch.Tensor, rate: int, low_hz: float, high_hz: float,
               gain: float) -> torch.Tensor:
    """``audio`` with the frequencies in ``[low_hz, high_hz)`` multiplied by ``gain``
    (0 takes them out), by the Fourier transform of the whole signal."""
    spectrum = torch.fft.rfft(audio)
    freqs = torch.fft.rfftfreq(audio.shape[-1], 1 / rate)
    in_band = (freqs >= low_hz) & (freqs < high_hz)
    spectrum = torch.where(in_band, spectrum * gain, spectrum)
    return torch.fft.irfft(spectrum, n=audio.shape[-1])


def variants(rate: int, cut_from: list[float], boost_db: list[float],
             boost_band: tuple[float, float]) -> dict[str, tuple[float, float, float]]:
    """``{name: (low_hz, high_hz, gain)}`` of every edit to score, the unedited first."""
    nyquist = rate / 2
    edits = {AS_DECODED: (0.0, 0.0, 1.0)}
    for hz in cut_from:
        if hz < nyquist:
            edits[f"without {hz:g} Hz and up"] = (hz, nyquist + 1, 0.0)
    low, high = boost_band
    for db in boost_db:
        edits[f"{low:g}-{high:g} Hz {db:+g} dB"] = (low, high, 10 ** (db / 20))
    return edits


def band_edits(cut_from: list[float], boost_db: list[float],
               boost_band: tuple[float, float]) -> Edits:
    """The edits this command scores: ``(reference, decoded, rate) -> {name: audio}``."""
    def edit(reference: torch.Tensor, decoded: torch.Tensor,
             rate: int) -> dict[str, torch.Tensor]:
        return {name: decoded if name == AS_DECODED
                else scale_band(decoded, rate, low, high, gain)
                for name, (low, high, gain) in variants(rate, cut_from, boost_db,
                                                        boost_band).items()}
    return edit


def _numbers(text: str) -> list[float]:
    return [float(part) for part in text.split(",") if part.strip()]


def _band(text: str) -> tuple[float, float]:
    low, _, high = text.partition("-")
    try:
        band = float(low), float(high)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a band is LOW-HIGH in Hz, got {text!r}") from None
    if not 0 <= band[0] < band[1]:
        raise argparse.ArgumentTypeError(f"a band needs 0 <= LOW < HIGH, got {text!r}")
    return band


def build_parser() -> argparse.ArgumentParser:
    parser = edit_parser("eval.probes.band_worth", __doc__)
    parser.add_argument("--cut-from", type=_numbers, default=[1500.0, 2000.0, 4000.0],
                        help="comma-separated Hz: score without everything from each up "
                             "(default: 1500,2000,4000)")
    parser.add_argument("--boost-db", type=_numbers, default=[10.0, 20.0],
                        help="comma-separated dB: score with --boost-band raised by each "
                             "(default: 10,20)")
    parser.add_argument("--boost-band", type=_band, default=(1500.0, 8000.0),
                        help="LOW-HIGH Hz (default: 1500-8000)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return print_edit_scores("eval.probes.band_worth", args,
                             band_edits(args.cut_from, args.boost_db, args.boost_band))

if __name__ == "__main__":
    sys.exit(main())
