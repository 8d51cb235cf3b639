"""The one rule that turns a bitrate into what is sent: codebooks and band levels.

``codec encode --kbps``, the Python API and training's validation all ask it, so a
figure logged at 6 kbps is of the codec a user gets at 6 kbps. The band levels (when the
coding sends them) take ``coding.band_level_kbps`` of a bitrate, or as much as the codes
take when that is less, so that a low bitrate is split evenly; the codebooks take the rest.
"""
from __future__ import annotations

import math

from codec.coding.band_levels import LevelGrid, grid_for
from codec.config import CodingConfig
from codec.errors import CodecError
from codec.network.model import Codec


def level_kbps(network: Codec, coding: CodingConfig, n_q: int) -> float:
    """The share of the bitrate the band levels may take beside ``n_q`` codebooks:
    ``coding.band_level_kbps``, or as much as the codebooks take when that is less; 0
    when the coding sends none."""
    if not coding.band_levels:
        return 0.0
    return min(coding.band_level_kbps, network.bitrate(n_q) / 1000)


def coded_kbps(network: Codec, coding: CodingConfig, n_q: int) -> float:
    """The nominal bitrate of ``n_q`` codebooks and the band levels beside them."""
    return network.bitrate(n_q) / 1000 + level_kbps(network, coding, n_q)


def codebooks_for_kbps(network: Codec, coding: CodingConfig, kbps: float) -> int:
    """The most codebooks whose :func:`coded_kbps` is within ``kbps``; CodecError when
    even one is not."""
    if not math.isfinite(kbps):
        raise CodecError(f"the bitrate must be a finite number of kbps, got {kbps}")
    fitting = [n_q for n_q in range(1, network.config.n_q + 1)
               if coded_kbps(network, coding, n_q) <= kbps + 1e-9]
    if not fitting:
        levels = " and its band levels" if coding.band_levels else ""
        raise CodecError(f"{kbps} kbps is below this model's lowest bitrate "
                         f"({coded_kbps(network, coding, 1):g} kbps with one "
                         f"codebook{levels})")
    return max(fitting)


def level_grid(network: Codec, coding: CodingConfig, target_lufs: float | None,
               n_q: int) -> LevelGrid | None:
    """The grid the encoder measures band levels on beside ``n_q`` codebooks, for a model
    trained on audio at ``target_lufs``, or None when the coding sends none."""
    return grid_for(coding, network.sample_rate, network.hop_length, target_lufs,
                    level_kbps(network, coding, n_q))
