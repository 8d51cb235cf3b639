"""What the live post-filter is worth on a codec's decoded speech, by exponent and by how
many frames its spectra are averaged over.

    python -m eval.probes.live_postfilter_worth --model RUN --data MANIFEST [--kbps 6]
        [--exponents 1.5,1.8,2.5] [--average-frames 5]

The speech files are coded as ``codec encode`` does, decoded without a post-filter
(unless ``--postfilter`` names one), and each decoded file goes through the live
post-filter (codec/coding/live_postfilter.py) with every exponent and averaging of the
options, on frames of 1/75 s at the file's rate, then is scored against the original.
``codec decode --postfilter`` applies the filter at the model's rate instead; choose
there, by ``eval.evaluate``, once this has narrowed the choice. Needs the ``pesq`` and
``pystoi`` packages.
"""
from __future__ import annotations

import argparse
import sys

import torch

from codec.coding.live_postfilter import AVERAGE_FRAMES, LivePostFilter
from eval.probes.speech_edits import (
    AS_DECODED,
    Edits,
    edit_parser,
    live_hop,
    number_list,
    print_edit_scores,
)


def postfilter_edits(exponents: list[float], average_frames: list[int]) -> Edits:
    """``(reference, decoded, rate) -> {name: audio}``: the decoded audio, then through
    the live post-filter with each exponent and averaging."""
    def edit(reference: torch.Tensor, decoded: torch.Tensor,
             rate: int) -> dict[str, torch.Tensor]:
        edits = {AS_DECODED: decoded}
        hop = live_hop(rate)
        for exponent in exponents:
            for frames in average_frames:
                live = LivePostFilter(rate, hop, exponent, average_frames=frames)
                name = f"exponent {exponent:g}, averaged over {frames} frames"
                edits[name] = live.apply(decoded[None])[0]
        return edits
    return edit


def build_parser() -> argparse.ArgumentParser:
    parser = edit_parser("eval.probes.live_postfilter_worth", __doc__)
    parser.add_argument("--exponents", type=number_list(float, 1.0, 4.0), default=[1.5, 1.8, 2.5],
                        help="exponents, comma-separated (default: 1.5,1.8,2.5)")
    parser.add_argument("--average-frames", type=number_list(int, 1, 32),
                        default=[AVERAGE_FRAMES],
                        help=f"frames each spectrum is averaged over, comma-separated "
                             f"(default: {AVERAGE_FRAMES})")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.postfilter is None:  # the edits are the filter: decode without the model's
        args.postfilter = 1.0
    return print_edit_scores("eval.probes.live_postfilter_worth", args,
                             postfilter_edits(args.exponents, args.average_frames))


if __name__ == "__main__":
    sys.exit(main())
