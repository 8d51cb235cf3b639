"""A small language model of codes, trained briefly on one token set and scored on
another: how many bits per second a sequence model needs for the codes, beside the
bitrate they are sent at.

Each frame's codes are predicted from the frames before (a 2-layer GRU over the sum of
the previous frame's code embeddings) and, for codebook ``k``, the codes of the coarser
codebooks of the same frame (their embeddings added to the GRU state before codebook
``k``'s output layer): the factorisation a delay-free sequence model of residual codes
uses. Its held-out cross-entropy is an upper bound on the entropy rate of the codes; a
model this small, trained this briefly, leaves it well above what a real one reaches.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from tqdm import tqdm

# Frames per sequence the scoring feeds at once (the GRU's state carries across).
SCORE_FRAMES = 4096


@dataclass
class LMSettings:
    steps: int = 300
    width: int = 128
    layers: int = 2
    batch: int = 32
    window: int = 64
    lr: float = 2e-3
    seed: int = 0


class CodeLM(nn.Module):
    """Codes ``[batch, frames, n_q]`` -> logits ``[batch, frames, n_q, codebook_size]``."""

    def __init__(self, n_q: int, codebook_size: int, width: int, layers: int):
        super().__init__()
        self.size = codebook_size
        # The previous frame's codes; index codebook_size is the start of a sequence.
        self.before = nn.ModuleList(nn.Embedding(codebook_size + 1, width) for _ in range(n_q))
        self.gru = nn.GRU(width, width, layers, batch_first=True)
        self.coarser = nn.ModuleList(nn.Embedding(codebook_size, width) for _ in range(n_q - 1))
        self.heads = nn.ModuleList(nn.Sequential(nn.Linear(width, width), nn.GELU(),
                                                 nn.Linear(width, codebook_size))
                                   for _ in range(n_q))

    def forward(self, codes: torch.Tensor, previous: torch.Tensor,
                state: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits for ``codes``, given ``previous`` (the frames before each, the start
        symbol where there is none) and the GRU ``state`` to go on from; the new state."""
        summed = sum(embed(previous[..., k]) for k, embed in enumerate(self.before))
        hidden, state = self.gru(summed, state)
        logits = []
        for k, head in enumerate(self.heads):
            logits.append(head(hidden))
            if k < len(self.coarser):
                hidden = hidden + self.coarser[k](codes[..., k])
        return torch.stack(logits, dim=2), state


def _previous(sequence: np.ndarray, start: int, stop: int, size: int) -> np.ndarray:
    """The frames before ``start:stop`` (the start symbol before frame 0)."""
    if start > 0:
        return sequence[start - 1:stop - 1]
    first = np.full((1, sequence.shape[1]), size, dtype=sequence.dtype)
    return np.concatenate([first, sequence[:stop - 1]])


def _batch(sequences: list[np.ndarray], weights: np.ndarray, window: int, count: int,
           size: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` windows of ``window`` frames, at places drawn uniformly over all frames."""
    codes, previous = [], []
    for choice in rng.choice(len(sequences), size=count, p=weights):
        sequence = sequences[choice]
        start = int(rng.integers(0, len(sequence) - window + 1))
        codes.append(sequence[start:start + window])
        previous.append(_previous(sequence, start, start + window, size))
    return (torch.from_numpy(np.stack(codes)).long(),
            torch.from_numpy(np.stack(previous)).long())


def _loss_bits(model: CodeLM, codes: torch.Tensor, previous: torch.Tensor,
               state: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Bits per code summed over the codes ``[batch, frames, n_q]``, per codebook."""
    logits, state = model(codes, previous, state)
    nats = F.cross_entropy(logits.flatten(0, 2), codes.flatten(), reduction="none")
    return nats.view(codes.shape).sum(dim=(0, 1)) / math.log(2), state


def train(sequences: list[np.ndarray], n_q: int, size: int, settings: LMSettings) -> CodeLM:
    """A :class:`CodeLM` trained for ``settings.steps`` steps on windows of ``sequences``."""
    torch.manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    window = min(settings.window, max(len(s) for s in sequences))
    usable = [s.astype(np.int64) for s in sequences if len(s) >= window]
    weights = np.array([len(s) - window + 1 for s in usable], dtype=np.float64)
    model = CodeLM(n_q, size, settings.width, settings.layers)
    optimiser = torch.optim.AdamW(model.parameters(), lr=settings.lr)
    for _ in tqdm(range(settings.steps), desc="code LM", unit="step", disable=None,
                  leave=False):
        codes, previous = _batch(usable, weights / weights.sum(), window, settings.batch,
                                 size, rng)
        bits, _ = _loss_bits(model, codes, previous)
        optimiser.zero_grad()
        (bits.sum() / codes[..., 0].numel()).backward()
        optimiser.step()
    return model.eval()


@torch.no_grad()
def score(model: CodeLM, sequences: list[np.ndarray]) -> tuple[np.ndarray, int]:
    """Bits per frame of each codebook on ``sequences``, and the frames scored."""
    total, frames = torch.zeros(len(model.heads), dtype=torch.float64), 0
    for sequence in sequences:
        sequence, state = sequence.astype(np.int64), None
        for start in range(0, len(sequence), SCORE_FRAMES):
            stop = min(start + SCORE_FRAMES, len(sequence))
            codes = torch.from_numpy(sequence[start:stop])[None]
            previous = torch.from_numpy(_previous(sequence, start, stop, model.size))[None]
            bits, state = _loss_bits(model, codes, previous, state)
            total += bits.double()
        frames += len(sequence)
    return (total / max(frames, 1)).numpy(), frames
