"""Many clips coded at once, the network running on batches of them:

    data = codec.encode_batch(model, [audio_a, audio_b], 44100, kbps=6)  # [C, T] each
    decoded = codec.decode_batch(model, data)            # [(audio, sample_rate), ...]

Each clip gets what ``codec.encode`` and ``codec.decode`` give it alone: everything but
the network's calls is theirs, clip by clip (the loudness gain, resampling, band levels,
the chunks with their context, the level match, the header), and each chunk of each
clip is a window of ``codec.coding.batched``, which runs windows of different lengths
together without any frame reading another clip or the padding. The codes and the
bytes are the same; decoded samples may differ from one-by-one decoding in their last
bits, where batched float sums round differently (measured: under 1e-6 of full scale,
far under 16-bit PCM's step of 3e-5). A code could only
change where two codewords are within such rounding of the same distance; the header's
gain is kept to 0.01 dB steps for the same reason (``codec.compress``).

Unlike the file functions, these hold every clip whole in memory; the chunks bound only
the size of each network call (``batch_size`` chunks at once).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

from codec.coding.band_levels import BandLevels
from codec.coding.batched import Window, run_windows
from codec.coding.bitstream import Header
from codec.coding.chunking import (
    chunk_frames_for,
    chunk_windows,
    context_frames,
    decoded_piece,
    network_reach,
)
from codec.compress import (
    AudioSource,
    EncodingPlan,
    InputMeasures,
    codebooks,
    encoded_codes,
    file_bytes,
    fitted_levels,
    parse_file,
    plan_encoding,
    read_model_rate,
    restored,
    tensor_source,
)
from codec.errors import CodecError
from codec.pretrained import PretrainedModel

# Chunks the network codes at once, by default.
BATCH_SIZE = 8


@dataclass
class _Clip:
    """A clip read for encoding: its model-rate items ``[items, model_channels, n]``."""
    source: AudioSource
    plan: EncodingPlan
    measures: InputMeasures
    items: torch.Tensor


@dataclass
class _Coded:
    """Codes ``[items, n_q, frames]`` to decode: ``length`` model-rate samples, in chunks
    of ``chunk`` frames with ``context`` frames each side, brought to ``levels``."""
    codes: np.ndarray
    length: int
    chunk: int
    context: int
    levels: BandLevels | None


def _named(index: int, error: CodecError, what: str) -> CodecError:
    return type(error)(f"{what} {index}: {error}")


def _read(model: PretrainedModel, source: AudioSource, n_q: int, chunk_seconds: float | None,
          level_match: bool) -> _Clip:
    plan = plan_encoding(model, source, chunk_seconds)
    blocks: list[torch.Tensor] = []
    measures = read_model_rate(model, source, plan, n_q, blocks.append,
                               level_match=level_match, band_levels=True)
    return _Clip(source, plan, measures, torch.cat(blocks, dim=-1))


def _codes(model: PretrainedModel, clips: list[_Clip], n_q: int,
           batch_size: int) -> list[np.ndarray]:
    """Each clip's codes, chunk by chunk as ``codec.coding.chunking.ChunkEncoder`` encodes
    them: the same windows of audio, each item on its own."""
    network = model.network
    hop, device = network.hop_length, next(network.parameters()).device
    windows, places = [], []  # places: (clip, chunk) of each window, items in order
    for index, clip in enumerate(clips):
        frames = -(-clip.items.shape[-1] // hop)
        chunks = chunk_windows(frames, clip.plan.chunk, clip.plan.context)
        for chunk, (first, start, stop, last) in enumerate(chunks):
            segment = clip.items[..., first * hop:last * hop]
            # Zeros up to a whole frame, as the encoder pads its input itself.
            segment = F.pad(segment, (0, (last - first) * hop - segment.shape[-1]))
            windows += [Window(item, (start - first, stop - first)) for item in segment]
            places += [(index, chunk)] * len(segment)
    codes = run_windows(lambda batch: network.encode(batch.to(device), n_q), windows,
                        step_in=hop, step_out=1, reach=network_reach(network, decoding=False),
                        batch_size=batch_size)
    return [np.concatenate([chunk.cpu().numpy().astype(np.uint16) for chunk in chunks], axis=-1)
            for chunks in _gathered(codes, places, len(clips))]


def _gathered(outputs: list[torch.Tensor], places: list[tuple[int, int]],
              count: int) -> list[list[torch.Tensor]]:
    """Window outputs as ``count`` lists of chunks ``[items, ...]``, from the (clip,
    chunk) ``places`` of the windows, items in order."""
    chunks: list[dict[int, list[torch.Tensor]]] = [{} for _ in range(count)]
    for output, (clip, chunk) in zip(outputs, places, strict=True):
        chunks[clip].setdefault(chunk, []).append(output)
    return [[torch.stack(items) for _, items in sorted(clip.items())] for clip in chunks]


def _decoded(model: PretrainedModel, coded: list[_Coded],
             batch_size: int) -> list[list[torch.Tensor]]:
    """Each entry's model-rate audio as ``codec.coding.chunking.decode_chunks`` gives it:
    a list of chunks ``[items, model_channels, n]``."""
    network, exponent = model.network, model.coding.postfilter
    device = next(network.parameters()).device
    windows, places, finishing = [], [], []
    for index, entry in enumerate(coded):
        context = entry.context + (0 if entry.levels is None else entry.levels.grid.reach_frames)
        chunks = chunk_windows(entry.codes.shape[-1], entry.chunk, context)
        for chunk, window in enumerate(chunks):
            first, _, _, last = window
            for item, codes in enumerate(entry.codes[..., first:last]):
                windows.append(Window(torch.from_numpy(codes.astype(np.int64)),
                                      (0, last - first)))
                places.append((index, chunk))
                finishing.append((item, window, entry))
    audio = run_windows(lambda batch: network.decode(batch.to(device)), windows,
                        step_in=1, step_out=network.hop_length,
                        reach=network_reach(network, decoding=True), batch_size=batch_size)
    pieces = [decoded_piece(network, decoded[None], item, window, entry.length,
                            entry.levels, exponent)[0]
              for decoded, (item, window, entry) in zip(audio, finishing, strict=True)]
    return _gathered(pieces, places, len(coded))


def encode_batch(model: PretrainedModel, audios: list[torch.Tensor], sample_rate: int, *,
                 kbps: float | None = None, n_q: int | None = None, entropy: bool = False,
                 chunk_seconds: float | None = None, model_hint: str | None = None,
                 level_match: bool = True, batch_size: int = BATCH_SIZE) -> list[bytes]:
    """``[codec.encode(model, audio, sample_rate, ...) for audio in audios]`` (the same
    options; each audio ``[C, T]``, any lengths), with up to ``batch_size`` chunks in each
    run of the network. A CodecError names the clip (its index) that caused it."""
    n_q = model.network.quantizer.check_n_q(codebooks(model, kbps=kbps, n_q=n_q))
    entropy_tables = model.require_entropy_tables() if entropy else None
    clips = []
    for index, audio in enumerate(audios):
        try:
            clips.append(_read(model, tensor_source(audio, sample_rate, f"audio {index}"),
                               n_q, chunk_seconds, level_match))
        except CodecError as error:
            raise _named(index, error, "audio") from None
    all_codes = _codes(model, clips, n_q, batch_size)
    coded = [_Coded(codes, clip.plan.length, clip.plan.chunk, clip.plan.context,
                    fitted_levels(model, clip.plan, clip.measures, codes, n_q))
             for clip, codes in zip(clips, all_codes, strict=True)]
    decoded = _decoded(model, coded, batch_size) if level_match else [None] * len(clips)
    results = [encoded_codes(clip.plan, clip.measures, entry.codes, entry.levels, chunks)
               for clip, entry, chunks in zip(clips, coded, decoded, strict=True)]
    return [file_bytes(model, clip.source, result, entropy_tables, model_hint)
            for clip, result in zip(clips, results, strict=True)]


def decode_batch(model: PretrainedModel, data: list[bytes], *,
                 chunk_seconds: float | None = None,
                 batch_size: int = BATCH_SIZE) -> list[tuple[torch.Tensor, int]]:
    """``[codec.decode(model, item, ...) for item in data]``, with up to ``batch_size``
    chunks in each run of the network. A BitstreamError names the file (its index)."""
    network = model.network
    parsed: list[tuple[Header, np.ndarray, BandLevels | None]] = []
    for index, item in enumerate(data):
        try:
            parsed.append(parse_file(model, item))
        except CodecError as error:
            raise _named(index, error, "file") from None
    chunk = chunk_frames_for(network, chunk_seconds)
    context = context_frames(network, model.coding.postfilter)
    decoded = _decoded(model, [_Coded(codes, header.model_length, chunk, context, levels)
                               for header, codes, levels in parsed], batch_size)
    audio = [torch.cat([block for block in restored(header, chunks) if block.numel()], -1)
             for (header, _, _), chunks in zip(parsed, decoded, strict=True)]
    return [(clip, header.source_rate) for clip, (header, _, _) in zip(audio, parsed, strict=True)]
