"""ITU-R BS.1770-4 integrated loudness measured block by block, for files too long to hold.

:func:`codec.audio.loudness` (torchaudio) needs the whole signal in memory; an hour of
48 kHz stereo is 1.4 GB of float32 before filtering. :class:`BlockLoudness` takes the
signal in pieces of any size: the K-weighting filters keep their state between pieces
(scipy's ``lfilter`` with ``zi``), each channel's squared output is summed over the same
400 ms gating blocks with 100 ms hops that torchaudio uses, and the absolute (-70 LUFS)
and relative (-10 LU) gates run at the end over the per-block energies (a few floats a
block). Its result equals :func:`codec.audio.loudness` on the whole signal; the tests
compare the two.
"""
from __future__ import annotations

import math

import numpy as np
from scipy.signal import lfilter

# BS.1770-4 channel weights: L, R, C at 1.0, surround channels at 1.41. Channels beyond
# the fifth (which torchaudio refuses) are weighted 1.0.
CHANNEL_WEIGHTS = (1.0, 1.0, 1.0, 1.41, 1.41)
ABSOLUTE_GATE_LUFS = -70.0
RELATIVE_GATE_LU = -10.0
K_WEIGHTING_OFFSET = -0.691


def _shelf_coefficients(sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """High-shelf stage of the K-weighting: +4 dB above about 1.5 kHz (head effect)."""
    gain_db, centre, q = 4.0, 1500.0, 1 / math.sqrt(2)
    w0 = 2 * math.pi * centre / sample_rate
    alpha = math.sin(w0) / (2 * q)
    amp = 10 ** (gain_db / 40)
    cos, root = math.cos(w0), 2 * math.sqrt(amp) * alpha
    b = [amp * ((amp + 1) + (amp - 1) * cos + root),
         -2 * amp * ((amp - 1) + (amp + 1) * cos),
         amp * ((amp + 1) + (amp - 1) * cos - root)]
    a = [(amp + 1) - (amp - 1) * cos + root,
         2 * ((amp - 1) - (amp + 1) * cos),
         (amp + 1) - (amp - 1) * cos - root]
    return np.array(b) / a[0], np.array(a) / a[0]


def _highpass_coefficients(sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """High-pass stage of the K-weighting: the RLB curve, 38 Hz, Q 0.5."""
    w0 = 2 * math.pi * 38.0 / sample_rate
    alpha = math.sin(w0) / (2 * 0.5)
    cos = math.cos(w0)
    b = [(1 + cos) / 2, -(1 + cos), (1 + cos) / 2]
    a = [1 + alpha, -2 * cos, 1 - alpha]
    return np.array(b) / a[0], np.array(a) / a[0]


class BlockLoudness:
    """Integrated loudness of a signal fed in consecutive pieces.

    ``add(piece)`` takes float ``[T, C]`` (soundfile's layout); ``result()`` gives LUFS,
    ``-inf`` when no block passes the absolute gate (silence).
    """

    def __init__(self, sample_rate: int, channels: int):
        # The same block geometry as torchaudio.functional.loudness, so both agree.
        self.gate = int(round(0.4 * sample_rate))
        self.step = int(round(self.gate * 0.25))
        self.weights = np.array([CHANNEL_WEIGHTS[c] if c < len(CHANNEL_WEIGHTS) else 1.0
                                 for c in range(channels)])
        self.stages = [_shelf_coefficients(sample_rate), _highpass_coefficients(sample_rate)]
        # Filter state carried between pieces; zero at the start, as torchaudio filters.
        self.states = [np.zeros((channels, 2)) for _ in self.stages]
        self.squares = np.zeros((channels, 0))  # K-weighted squares not yet in a full block
        self.energies: list[np.ndarray] = []  # per block: mean square of each channel [C]

    def add(self, piece: np.ndarray) -> None:
        signal = np.asarray(piece, dtype=np.float64).T  # [C, T]
        if signal.shape[1] == 0:
            return
        for index, (b, a) in enumerate(self.stages):
            signal, self.states[index] = lfilter(b, a, signal, axis=1, zi=self.states[index])
            # torchaudio's lfilter clamps each stage's output to [-1, 1]; so do we, to agree.
            signal = np.clip(signal, -1.0, 1.0)
        self.squares = np.concatenate([self.squares, signal ** 2], axis=1)
        count = (self.squares.shape[1] - self.gate) // self.step + 1
        if count <= 0:
            return
        sums = np.cumsum(np.pad(self.squares, ((0, 0), (1, 0))), axis=1)
        starts = np.arange(count) * self.step
        self.energies.extend(((sums[:, starts + self.gate] - sums[:, starts]) / self.gate).T)
        self.squares = self.squares[:, count * self.step:]

    def result(self) -> float:
        if not self.energies:
            return float("-inf")
        energy = np.stack(self.energies)  # [blocks, C]
        block_lufs = K_WEIGHTING_OFFSET + 10 * np.log10(
            np.maximum(energy @ self.weights, np.finfo(np.float64).tiny))
        gated = block_lufs > ABSOLUTE_GATE_LUFS
        if not gated.any():
            return float("-inf")
        relative = _gated_lufs(energy, gated, self.weights) + RELATIVE_GATE_LU
        gated &= block_lufs > relative
        return _gated_lufs(energy, gated, self.weights)


def _gated_lufs(energy: np.ndarray, gated: np.ndarray, weights: np.ndarray) -> float:
    """Loudness of the mean energy of the ``gated`` blocks."""
    mean = energy[gated].mean(axis=0) @ weights
    return float(K_WEIGHTING_OFFSET + 10 * math.log10(mean)) if mean > 0 else float("-inf")
