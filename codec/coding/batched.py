"""The network run on many windows at once, each giving what it gives when run alone.

A window is an input of some frames (audio ``[C, frames * hop]`` for the encoder, codes
``[n_q, frames]`` for the decoder) of which some frames of output are wanted. Windows of
different lengths share a batch padded to the longest: an output frame further than the
network's reach (:func:`codec.coding.chunking.network_reach`) from its window's end reads
none of the padding, so it is what the window alone gives. The last ``reach`` frames of
a window do read its end; they come from a second run of the window's last ``2 * reach``
frames alone, where each has ``reach`` frames of real context on its left, and such runs
share batches without padding, being all that long. A window of at most ``2 * reach``
frames runs whole, in a batch of windows of its own length.

So every output is computed from the same numbers as alone, in batches whose float sums
may round differently in the last bits (measured on decoded audio: under 1e-6).
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Callable, Iterator

import torch
from torch.nn import functional as F


@dataclass
class Window:
    """An input ``[..., frames * step]`` of which output frames ``keep`` (start, stop)
    are wanted."""
    data: torch.Tensor
    keep: tuple[int, int]


@dataclass(frozen=True)
class _Part:
    """Input frames ``start..stop`` of window ``window``, for its output frames ``keep``;
    ``exact`` when they end where the window does, so that no padding may follow them."""
    window: int
    start: int
    stop: int
    keep: tuple[int, int]
    exact: bool

    @property
    def frames(self) -> int:
        return self.stop - self.start


def _parts(index: int, frames: int, keep: tuple[int, int], reach: int) -> list[_Part]:
    """The runs that give window ``index``'s output frames ``keep``, in order."""
    first, last = keep
    if frames <= 2 * reach:
        return [_Part(index, 0, frames, keep, exact=True)]
    edge = frames - reach  # output frames from here on read the window's end
    parts = []
    if first < edge:
        body = min(last, edge)
        parts.append(_Part(index, 0, body + reach, (first, body), exact=False))
    if last > edge:
        parts.append(_Part(index, frames - 2 * reach, frames, (max(first, edge), last),
                           exact=True))
    return parts


def _batches(parts: list[_Part], batch_size: int) -> Iterator[list[_Part]]:
    """Parts in batches of up to ``batch_size`` of similar length: exact parts only with
    parts of their own length."""
    def by_length(part: _Part) -> int:
        return part.frames

    exact = sorted((p for p in parts if p.exact), key=by_length)
    padded = sorted((p for p in parts if not p.exact), key=by_length)
    groups = [list(group) for _, group in itertools.groupby(exact, key=by_length)] + [padded]
    for group in groups:
        for at in range(0, len(group), batch_size):
            yield group[at:at + batch_size]


def run_windows(run: Callable[[torch.Tensor], torch.Tensor], windows: list[Window], *,
                step_in: int, step_out: int, reach: int,
                batch_size: int) -> list[torch.Tensor]:
    """Each window's wanted output ``[..., kept frames * step_out]``, as ``run`` (a batch
    ``[B, ..., frames * step_in]`` -> ``[B, ..., frames * step_out]``) gives it for that
    window alone, from runs of at most ``batch_size`` inputs."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    parts = [part for index, window in enumerate(windows)
             for part in _parts(index, window.data.shape[-1] // step_in, window.keep, reach)]
    outputs: dict[_Part, torch.Tensor] = {}
    for batch in _batches(parts, batch_size):
        longest = max(part.frames for part in batch) * step_in
        inputs = []
        for part in batch:
            data = windows[part.window].data[..., part.start * step_in:part.stop * step_in]
            inputs.append(F.pad(data, (0, longest - data.shape[-1])))
        for part, output in zip(batch, run(torch.stack(inputs)), strict=True):
            first, last = (k - part.start for k in part.keep)
            outputs[part] = output[..., first * step_out:last * step_out]
    wanted: list[list[torch.Tensor]] = [[] for _ in windows]
    for part in parts:  # in order within each window
        wanted[part.window].append(outputs[part])
    return [torch.cat(pieces, dim=-1) for pieces in wanted]
