"""Optional entropy coding of codes with measured per-codebook frequency tables.

Bit-packing spends ``log2(codebook_size)`` bits on every code, which is only
optimal if all codes are equally likely. They rarely are, so ``codec
entropy-tables`` counts how often each code of each codebook occurs on training
data, and ``codec encode --entropy`` range-codes the codes with those
frequencies (constriction's RangeEncoder with a categorical model per codebook).
Add-one smoothing keeps every code codable even if it never occurred.

The tables live next to the model (``RUN/entropy.safetensors``) with the model
id they were measured for; a compressed file names the tables by a hash of
their counts, so tables measured again (other data) refuse to decode old files
rather than decode them wrong.

Shapes: codes ``[items, n_q, frames]``; counts ``[n_q, codebook_size]``.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from codec.coding.bitstream import BitstreamError
from codec.errors import CodecError

TABLES_FILE = "entropy.safetensors"
FORMAT = "codec-entropy-tables"


@dataclass
class EntropyTables:
    """Code counts per codebook, measured for the model ``model_id``."""
    model_id: str
    counts: np.ndarray  # [n_q, codebook_size] int64, before smoothing
    _coders: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.counts = np.ascontiguousarray(self.counts, dtype=np.int64)
        if self.counts.ndim != 2 or self.counts.shape[1] < 2 or (self.counts < 0).any():
            raise ValueError(f"counts must be a non-negative [n_q, codebook_size] array, "
                             f"got shape {self.counts.shape}")

    @property
    def n_q(self) -> int:
        return self.counts.shape[0]

    @property
    def codebook_size(self) -> int:
        return self.counts.shape[1]

    @property
    def tables_id(self) -> str:
        """16 hex digits naming these exact counts (and the model they belong to)."""
        digest = hashlib.sha256(self.model_id.encode())
        digest.update(self.counts.astype("<i8").tobytes())
        return digest.hexdigest()[:16]

    def probabilities(self, codebook: int) -> np.ndarray:
        """Add-one smoothed probabilities of codebook ``codebook``: ``[codebook_size]``."""
        smoothed = self.counts[codebook].astype(np.float64) + 1.0
        return smoothed / smoothed.sum()

    def _model(self, codebook: int):
        import constriction

        if codebook not in self._coders:
            self._coders[codebook] = constriction.stream.model.Categorical(
                self.probabilities(codebook), perfect=False)
        return self._coders[codebook]

    def min_stream_bits(self, items: int, n_q: int, frames: int) -> float:
        """A lower bound on the coded size: no symbol costs less than its most likely code.
        Halved for the coder's fixed-point rounding; used to refuse files whose header
        claims far more codes than their payload can hold (a decompression bomb)."""
        per_symbol = [-math.log2(self.probabilities(q).max()) for q in range(n_q)]
        return 0.5 * items * frames * sum(per_symbol) - 64

    def check(self, n_q: int, codebook_size: int) -> None:
        if n_q > self.n_q or codebook_size != self.codebook_size:
            raise CodecError(f"entropy tables cover {self.n_q} codebooks of "
                             f"{self.codebook_size} codes; need {n_q} of {codebook_size}")

    def encode(self, codes: np.ndarray) -> bytes:
        """Codes ``[items, n_q, frames]`` -> range-coded bytes (whole 32-bit words)."""
        import constriction

        items, n_q, _ = codes.shape
        self.check(n_q, self.codebook_size)
        encoder = constriction.stream.queue.RangeEncoder()
        for item in range(items):
            for q in range(n_q):
                encoder.encode(np.ascontiguousarray(codes[item, q], dtype=np.int32),
                               self._model(q))
        return encoder.get_compressed().astype("<u4").tobytes()

    def decode(self, data: bytes, items: int, n_q: int, frames: int) -> np.ndarray:
        """Inverse of :meth:`encode`: codes ``[items, n_q, frames]`` (uint16).

        Damaged input raises BitstreamError (the CRC normally catches it first)."""
        import constriction

        self.check(n_q, self.codebook_size)
        if len(data) * 8 < self.min_stream_bits(items, n_q, frames):
            raise BitstreamError(f"entropy-coded payload of {len(data)} bytes is too small "
                                 f"for the {items * n_q * frames} codes its header claims")
        words = np.frombuffer(data, dtype="<u4").astype(np.uint32)
        codes = np.empty((items, n_q, frames), dtype=np.uint16)
        try:
            decoder = constriction.stream.queue.RangeDecoder(words)
            for item in range(items):
                for q in range(n_q):
                    codes[item, q] = decoder.decode(self._model(q), frames)
        except Exception as error:  # constriction raises plain exceptions on bad data
            raise BitstreamError(f"entropy-coded payload is damaged ({error})") from None
        # A range decoder reads what it needs and nothing after it: coded again, the
        # codes must give exactly these bytes (no words of anything else after them).
        if self.encode(codes) != data:
            raise BitstreamError(f"entropy-coded payload is damaged ({len(data)} bytes, not "
                                 f"the coding of the codes they decode to)")
        return codes


def count_codes(codes: np.ndarray, codebook_size: int) -> np.ndarray:
    """Histogram of codes ``[items, n_q, frames]`` per codebook: ``[n_q, codebook_size]``."""
    flat = np.asarray(codes, dtype=np.int64)
    return np.stack([np.bincount(flat[:, q].reshape(-1), minlength=codebook_size)
                     for q in range(flat.shape[1])])


def save_tables(tables: EntropyTables, path: str | Path, **info: str) -> Path:
    """Write the tables (safetensors + metadata naming the model); returns the path."""
    import torch
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = {"format": FORMAT, "model_id": tables.model_id, **info}
    tmp = path.with_name(path.name + ".tmp")
    save_file({"counts": torch.from_numpy(tables.counts)}, str(tmp), metadata=metadata)
    tmp.replace(path)
    return path


def load_tables(path: str | Path) -> EntropyTables:
    """Read tables written by :func:`save_tables`; CodecError if the file is not one."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework="np") as handle:
            metadata = handle.metadata() or {}
            if metadata.get("format") != FORMAT or "counts" not in handle.keys():
                raise CodecError(f"{path}: not an entropy table file")
            counts = handle.get_tensor("counts")
    except (SafetensorError, OSError) as error:
        raise CodecError(f"{path}: cannot read entropy tables ({error})") from None
    try:
        return EntropyTables(metadata.get("model_id", ""), counts)
    except ValueError as error:
        raise CodecError(f"{path}: {error}") from None


def tables_dir(model_path: str | Path) -> Path:
    """Where tables for the model at ``model_path`` are saved: the run directory."""
    path = Path(model_path)
    if path.is_file():
        path = path.parent
    # RUN/best/ or RUN/checkpoints/step-N/ -> RUN
    if path.parent.name == "checkpoints":
        return path.parent.parent
    if path.name == "best":
        return path.parent
    return path


def find_tables(model_path: str | Path, model_id: str) -> EntropyTables | None:
    """Tables saved for this model next to ``model_path`` (or in its run directory), if
    their model id matches; None otherwise."""
    path = Path(model_path)
    candidates = [tables_dir(path) / TABLES_FILE, (path if path.is_dir() else path.parent)
                  / TABLES_FILE]
    for candidate in dict.fromkeys(candidates):
        if candidate.is_file():
            tables = load_tables(candidate)
            if tables.model_id == model_id:
                return tables
    return None


def mean_code_bits(tables: EntropyTables) -> float:
    """Average bits per code an ideal coder spends on the measured data with the smoothed
    tables (cross-entropy of the counts under the probabilities)."""
    bits = [-(tables.counts[q] * np.log2(tables.probabilities(q))).sum()
            / max(int(tables.counts[q].sum()), 1) for q in range(tables.n_q)]
    return float(np.mean(bits))
