"""What counting a token set's codes says about it: each codebook's usage, entropy and
perplexity, and its entropy given the same codebook's code in the frame before, and
given the next coarser codebook's code in the same frame.

The estimates are plug-in: the entropy of the observed frequencies, and a conditional
entropy as ``H(X, Y) - H(Y)`` of the observed pair frequencies, in bits. The first frame
of a sequence has no frame before; it is counted with a start symbol in its place, so
that every frame enters every estimate, and each conditional estimate is then never
above the unconditional one. Plug-in estimates err low when there are few frames per
pair of codes (``pairs_seen`` against the frames counted says how far from that a set
is): they are descriptions of the set counted, not of the source it was drawn from,
which is what the code language model's held-out cross-entropy measures. Conditioning
on all coarser codebooks at once would need more frames than any set has for each of
the ``codebook_size ** k`` contexts, so only the next coarser one is used here.
"""
from __future__ import annotations

import numpy as np

# Frames gathered before their pairs are counted (bounds the memory of the indices).
FLUSH_FRAMES = 1 << 21


def entropy_bits(counts: np.ndarray) -> float:
    """The plug-in entropy in bits of the frequencies ``counts`` (any shape)."""
    counts = counts[counts > 0].astype(np.float64)
    if counts.size == 0:
        return 0.0
    p = counts / counts.sum()
    return float(-(p * np.log2(p)).sum())


class CodeCounts:
    """Counts of the codes of sequences ``[frames, n_q]``: each code, each pair (code
    in the frame before, code), and each pair (next coarser code, code)."""

    def __init__(self, n_q: int, codebook_size: int):
        self.n_q, self.size = n_q, codebook_size
        self.frames = 0
        self.sequences = 0
        self.single = np.zeros((n_q, codebook_size), dtype=np.int64)
        # The code before: size + 1 values, the last the start of a sequence.
        self.after = np.zeros((n_q, (codebook_size + 1) * codebook_size), dtype=np.int64)
        self.under = np.zeros((max(n_q - 1, 0), codebook_size * codebook_size), dtype=np.int64)
        self._waiting: list[np.ndarray] = []
        self._waiting_frames = 0

    def add(self, sequence: np.ndarray) -> None:
        """Count one sequence ``[frames, n_q]`` of codes."""
        codes = np.asarray(sequence, dtype=np.int64)
        self.frames += len(codes)
        self.sequences += 1
        previous = np.vstack([np.full((1, self.n_q), self.size), codes[:-1]])
        self._waiting.append(np.stack([codes, previous]))
        self._waiting_frames += len(codes)
        if self._waiting_frames >= FLUSH_FRAMES:
            self._flush()

    def _flush(self) -> None:
        if not self._waiting:
            return
        codes, previous = np.concatenate(self._waiting, axis=1)
        self._waiting, self._waiting_frames = [], 0
        for k in range(self.n_q):
            self.single[k] += np.bincount(codes[:, k], minlength=self.size)
            self.after[k] += np.bincount(previous[:, k] * self.size + codes[:, k],
                                         minlength=self.after.shape[1])
            if k:
                self.under[k - 1] += np.bincount(codes[:, k - 1] * self.size + codes[:, k],
                                                 minlength=self.under.shape[1])

    def codebook_figures(self) -> list[dict]:
        """Per codebook: usage (share of its codes seen), entropy, perplexity, and the
        conditional entropies (None given the coarser code, for the first codebook)."""
        self._flush()
        rows = []
        for k in range(self.n_q):
            entropy = entropy_bits(self.single[k])
            before = self.after[k].reshape(self.size + 1, self.size)
            given_before = entropy_bits(before) - entropy_bits(before.sum(axis=1))
            given_coarser = None
            if k:
                pairs = self.under[k - 1].reshape(self.size, self.size)
                given_coarser = entropy_bits(pairs) - entropy_bits(pairs.sum(axis=1))
            rows.append({"codebook": k + 1,
                         "usage": float((self.single[k] > 0).mean()),
                         "entropy_bits": entropy, "perplexity": 2 ** entropy,
                         "given_previous_frame_bits": _within(given_before, entropy),
                         "given_coarser_bits": (None if given_coarser is None
                                                else _within(given_coarser, entropy)),
                         "pairs_seen": int((self.after[k] > 0).sum())})
        return rows


def _within(conditional: float, entropy: float) -> float:
    """A plug-in conditional entropy, which is within [0, entropy], kept there when the
    difference of two sums rounds a last bit outside."""
    return min(max(conditional, 0.0), entropy)


def totals(rows: list[dict], frame_rate: float, bits_per_code: int) -> dict:
    """Bits per second: the bit-packed codes', and the codebooks' entropies summed (each
    codebook alone, and each given its code in the frame before)."""
    def per_second(name: str) -> float:
        return frame_rate * sum(row[name] for row in rows)

    return {"nominal_bps": frame_rate * bits_per_code * len(rows),
            "entropy_bps": per_second("entropy_bits"),
            "given_previous_frame_bps": per_second("given_previous_frame_bits")}
