"""What the input's band levels, met on a codec's decoded speech by a level stage, are worth.

    python -m eval.probes.level_stage_worth --model RUN --data MANIFEST [--kbps 6]
        [--bands 12,24,32,48,64] [--overlap 80] [--step-db 0]

A level stage (codec/network/level_stage.py) brings decoded audio to level vectors sent
beside the codes, one per frame, in mel bands. Before a model is trained with one, this
says what it could give: the speech files are coded as ``codec encode`` does, then each
decoded file is brought to the input's own levels (unquantised, or rounded to
``--step-db``) in each band count of ``--bands``, on frames of 13.3 ms crossfaded over
``--overlap`` samples at 24 kHz (scaled to the file's rate), and scored against the
original file. The levels are the input's, not codes: a row is the most those levels
could give a model that was never trained with them. Needs the ``pesq`` and ``pystoi``
packages.
"""
from __future__ import annotations

import argparse
import sys

import torch

from codec.network.frame_levels import FLOOR_DB, MAX_BANDS, UNIT_DB
from codec.network.level_stage import LevelStage
from eval.probes.speech_edits import (
    AS_DECODED,
    Edits,
    edit_parser,
    live_hop,
    number_list,
    print_edit_scores,
)

REFERENCE_RATE = 24000


def stage_at(rate: int, bands: int, overlap: int) -> LevelStage:
    """A level stage at ``rate`` with frames of 1/75 s, its crossfade and the decoder's
    before it each ``overlap`` samples at 24 kHz, scaled."""
    hop = live_hop(rate)
    scaled = max(1, round(overlap * rate / REFERENCE_RATE))
    return LevelStage(hop=hop, overlap=scaled, delay=scaled, sample_rate=rate, bands=bands)


def brought_to_input_levels(reference: torch.Tensor, decoded: torch.Tensor,
                            stage: LevelStage, step_db: float) -> torch.Tensor:
    """``decoded`` ``[C, T]`` brought by ``stage`` to the levels of ``reference``."""
    length = reference.shape[-1]
    pad = -length % stage.hop
    ref, dec = (torch.nn.functional.pad(x[None].float(), (0, pad)) for x in (reference, decoded))
    levels = stage.input_levels(ref)
    if step_db:
        unit = step_db / UNIT_DB
        floor = -FLOOR_DB / UNIT_DB  # rounded in steps from full scale, as a coder would
        levels = torch.round((levels - floor) / unit) * unit + floor
    return stage(dec, levels)[0, :, :length].to(decoded.dtype)


def level_stage_edits(bands: list[int], overlap: int, step_db: float) -> Edits:
    """``(reference, decoded, rate) -> {name: audio}``: the decoded audio, then brought
    to the input's levels in each band count."""
    def edit(reference: torch.Tensor, decoded: torch.Tensor,
             rate: int) -> dict[str, torch.Tensor]:
        edits = {AS_DECODED: decoded}
        for count in bands:
            stage = stage_at(rate, count, overlap)
            name = f"the input's levels in {count} bands"
            edits[name] = brought_to_input_levels(reference, decoded, stage, step_db)
        return edits
    return edit


def _overlap(text: str) -> int:
    value, hop = int(text), live_hop(REFERENCE_RATE)
    if not 1 <= value <= hop:
        raise argparse.ArgumentTypeError(f"must be 1 to {hop} samples (a hop), got {text!r}")
    return value


def _step(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 24:
        raise argparse.ArgumentTypeError(f"must be 0 (unquantised) to 24 dB, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = edit_parser("eval.probes.level_stage_worth", __doc__)
    parser.add_argument("--bands", type=number_list(int, 1, MAX_BANDS),
                        default=[12, 24, 32, 48, 64],
                        help="band counts, comma-separated (default: 12,24,32,48,64)")
    parser.add_argument("--overlap", type=_overlap, default=80,
                        help="crossfade in samples at 24 kHz, up to a hop (default: 80)")
    parser.add_argument("--step-db", type=_step, default=0.0,
                        help="round the levels to this step, 0 for none (default: 0)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return print_edit_scores("eval.probes.level_stage_worth", args,
                             level_stage_edits(args.bands, args.overlap, args.step_db))


if __name__ == "__main__":
    sys.exit(main())
