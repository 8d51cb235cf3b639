"""Where decoded speech loses its PESQ and STOI: the input put in place of one part.

    python -m eval.probes.substitute --model RUN --data MANIFEST [--kbps 6] [--split-hz 1500]

Each row scores the decoded speech with one part of it taken from the input instead:
each frame's level (in every frame, or only where the input is quieter, as a gate
driven by the input would), the magnitudes (keeping the decoded phase; in every bin,
or only in the bins where the decoded magnitude is louder, or quieter), the bands below
or above ``--split-hz``, the spectral envelope (the magnitudes smoothed over
``--envelope-hz``, keeping the decoded fine structure between), or the fine structure
(keeping the decoded envelope). The higher a row scores above "as decoded", the more of
what the codec loses lies in that part, so it says where training should aim: at the
phase or the magnitudes, at energy added or left out, the low bands or the high ones,
the envelope or the harmonics. Every row is scored against the original file, in
short-time Fourier frames of about 20 ms. Needs the ``pesq`` and ``pystoi`` packages.
"""
from __future__ import annotations

import argparse
import math
import sys

import torch
import torch.nn.functional as F

from eval.probes.speech_edits import AS_DECODED, Edits, edit_parser, print_edit_scores

FRAME_SECONDS = 0.02
# Magnitudes are floored before the log, far under any audible bin.
LOG_FLOOR = 1e-7


def frame_size(rate: int) -> int:
    """The power of two nearest ``FRAME_SECONDS`` at ``rate``."""
    return 2 ** round(math.log2(FRAME_SECONDS * rate))


def _stft(audio: torch.Tensor, n_fft: int) -> torch.Tensor:
    return torch.stft(audio, n_fft, n_fft // 4, window=torch.hann_window(n_fft),
                      return_complex=True)


def _istft(spectrum: torch.Tensor, n_fft: int, length: int) -> torch.Tensor:
    return torch.istft(spectrum, n_fft, n_fft // 4, window=torch.hann_window(n_fft),
                       length=length)


def envelope(log_magnitude: torch.Tensor, bins: int) -> torch.Tensor:
    """``[..., freq, frames]`` log magnitudes averaged over ``bins`` neighbouring
    frequencies (an odd number; fewer at the edges)."""
    shape = log_magnitude.shape
    rows = log_magnitude.reshape(-1, shape[-2], shape[-1]).transpose(1, 2)
    smooth = F.avg_pool1d(rows.reshape(-1, 1, shape[-2]), bins, 1, bins // 2,
                          count_include_pad=False)
    return smooth.reshape(rows.shape).transpose(1, 2).reshape(shape)


def substitutions(split_hz: float, envelope_hz: float) -> Edits:
    """``(reference, decoded, rate) -> {name: audio}``: the decoded audio, then each
    part of it replaced by the reference's."""
    def edit(reference: torch.Tensor, decoded: torch.Tensor,
             rate: int) -> dict[str, torch.Tensor]:
        n_fft, length = frame_size(rate), reference.shape[-1]
        ref, dec = _stft(reference, n_fft), _stft(decoded, n_fft)
        ref_mag, dec_mag = ref.abs().clamp(min=LOG_FLOOR), dec.abs().clamp(min=LOG_FLOOR)
        phase = dec / dec_mag
        low = torch.fft.rfftfreq(n_fft, 1 / rate)[:, None] < split_hz
        log_ref, log_dec = ref_mag.log(), dec_mag.log()
        bins = 2 * round(envelope_hz / (rate / n_fft) / 2) + 1
        env_ref, env_dec = envelope(log_ref, bins), envelope(log_dec, bins)
        # Each frame's level over all bins; the floored magnitudes keep digital silence's
        # ratio finite.
        level_gain = (ref_mag.pow(2).sum(dim=-2, keepdim=True)
                      / dec_mag.pow(2).sum(dim=-2, keepdim=True)).sqrt()
        spectra = {
            "the input's frame levels": dec * level_gain,
            "the input's frame levels where quieter": dec * level_gain.clamp(max=1.0),
            "the input's magnitudes, decoded phase": phase * ref_mag,
            "the input's magnitudes where the decoded are louder":
                phase * torch.minimum(ref_mag, dec_mag),
            "the input's magnitudes where the decoded are quieter":
                phase * torch.maximum(ref_mag, dec_mag),
            f"the input below {split_hz:g} Hz": torch.where(low, ref, dec),
            f"the input from {split_hz:g} Hz up": torch.where(low, dec, ref),
            "the input's envelope, decoded fine structure":
                phase * (log_dec - env_dec + env_ref).exp(),
            "decoded envelope, the input's fine structure":
                phase * (log_ref - env_ref + env_dec).exp(),
        }
        edits = {AS_DECODED: decoded}
        edits.update({name: _istft(spectrum, n_fft, length)
                      for name, spectrum in spectra.items()})
        return edits
    return edit


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of Hz, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = edit_parser("eval.probes.substitute", __doc__)
    parser.add_argument("--split-hz", type=_positive, default=1500.0,
                        help="the boundary between the low and high bands (default: 1500)")
    parser.add_argument("--envelope-hz", type=_positive, default=250.0,
                        help="the width the envelope is smoothed over (default: 250)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return print_edit_scores("eval.probes.substitute", args,
                             substitutions(args.split_hz, args.envelope_hz))


if __name__ == "__main__":
    sys.exit(main())
