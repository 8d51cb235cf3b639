"""``codec encode`` / ``codec decode``: audio <-> compressed ``.qca`` files in constant memory.

Encoding a file reads it twice, block by block:

1. loudness (ITU-R BS.1770, streamed) and peak of the whole input -> one gain that
   brings it to the model's training level (``codec.audio.loudness_gain``, peak-limited);
2. resample to the model rate (streamed, exact) -> times the gain -> chunks of
   ``chunk_frames`` frames, each encoded with ``context_frames`` frames of real audio
   on both sides, of which only the centre frames are kept: every frame is stored once.

Decoding mirrors it: chunks of codes decoded with context frames, centre kept,
divided by the gain, resampled back to the original rate, cut to the original
length and written to the output file block by block.

Why context instead of a cross-fade: encoder and decoder are stacks of
convolutions, so each output depends only on inputs within their receptive
field. With at least that much context, a chunk's centre is exactly what the
whole signal would give, so chunked and unchunked coding agree up to float
rounding and there is no seam to hide. Memory is bounded by the chunk length;
only the codes (the compressed file's size, about 3 MB per hour at 6 kbps)
are held whole.

A mono model codes each channel of a multichannel file as its own batch item;
the one gain keeps the channel balance.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import soundfile as sf
import torch
from torchaudio.transforms import Resample
from tqdm import tqdm

from codec import bitstream
from codec.audio import StreamingLoudness, audio_info, loudness_gain
from codec.bitstream import BitstreamError, Header
from codec.entropy import EntropyTables
from codec.errors import CodecError
from codec.nn import Conv1d, ConvTranspose1d

# Audio coded at a time, by default: what fits this working-memory budget. One chunk
# needs about 12 float32 tensors of the first layer's width at the model rate alive at
# once (measured: ~35 MB per second of audio for the base preset), so the default is
# ~5 s for base, ~11 s for small and ~3 s for large; 1 to 30 s in any case.
WORK_MEMORY_BYTES = 192 << 20
LIVE_TENSORS = 12
DEFAULT_TARGET_LUFS = -23.0
READ_BLOCK = 1 << 16
AUDIO_SUFFIXES = frozenset({".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff",
                            ".aifc", ".au", ".caf", ".w64", ".rf64"})
SUBTYPES = ("PCM_16", "PCM_24", "FLOAT")


# ---------------------------------------------------------------------------
# Streamed resampling, equal to resampling the whole signal


class StreamResampler:
    """Resample a signal fed in blocks ``[C, n]``; the concatenated output equals
    ``codec.audio.resample`` of the whole signal (up to float rounding).

    torchaudio's polyphase filter turns each run of ``orig/g`` input samples into
    ``new/g`` output samples (g = gcd) and reads at most ``width + orig/g`` samples
    beyond the run. Cutting the stream at multiples of ``orig/g`` and giving each
    piece that much real context on both sides reproduces the whole-signal result.
    """

    def __init__(self, orig_rate: int, new_rate: int):
        self.orig_rate, self.new_rate = orig_rate, new_rate
        g = math.gcd(orig_rate, new_rate)
        self.in_step, self.out_step = orig_rate // g, new_rate // g
        # torchaudio's filter half-width for lowpass_filter_width=6, rolloff=0.99.
        width = math.ceil(6 * self.in_step / (0.99 * min(self.in_step, self.out_step)))
        self.context = self.in_step * (math.ceil((width + self.in_step) / self.in_step) + 1)
        self.resample = None if orig_rate == new_rate else Resample(orig_rate, new_rate)
        self.buffer: torch.Tensor | None = None
        self.buffer_start = 0  # input index of buffer[:, 0]
        self.done = 0  # input samples whose output has been returned

    def push(self, block: torch.Tensor) -> torch.Tensor:
        if self.resample is None:
            return block
        self.buffer = block if self.buffer is None else torch.cat([self.buffer, block], dim=-1)
        end = self.buffer_start + self.buffer.shape[-1]
        ready = (end - self.context) // self.in_step * self.in_step
        if ready <= self.done:
            return block[:, :0]
        return self._emit(ready, ready + self.context)

    def flush(self) -> torch.Tensor:
        """The output of the rest; call once, after the last push."""
        if self.resample is None or self.buffer is None:
            return torch.zeros(0, 0)
        return self._emit(None, self.buffer_start + self.buffer.shape[-1])

    def _emit(self, stop: int | None, segment_end: int) -> torch.Tensor:
        segment_start = max(0, self.done - self.context)
        segment = self.buffer[:, segment_start - self.buffer_start:segment_end - self.buffer_start]
        out = self.resample(segment)
        offset = (self.done - segment_start) // self.in_step * self.out_step
        if stop is None:
            out = out[:, offset:]
        else:
            out = out[:, offset:offset + (stop - self.done) // self.in_step * self.out_step]
            self.done = stop
            keep_from = max(self.buffer_start, self.done - self.context)
            self.buffer = self.buffer[:, keep_from - self.buffer_start:]
            self.buffer_start = keep_from
        return out


# ---------------------------------------------------------------------------
# Chunked coding with receptive-field context


def context_frames(model) -> int:
    """Frames of context that cover the receptive field of encoder and decoder on each
    side (summed over every conv as if in series, so it errs on the generous side)."""
    hop = model.hop_length
    span, jump = 0, 1  # encoder, in samples
    for module in model.encoder.modules():
        if isinstance(module, Conv1d):
            conv = module.conv
            span += (conv.kernel_size[0] - 1) * conv.dilation[0] * jump
            jump *= conv.stride[0]
    encoder_frames = math.ceil(span / hop)
    span, jump = 0.0, 1.0  # decoder, in frames
    for module in model.decoder.modules():
        if isinstance(module, ConvTranspose1d):
            conv = module.conv
            span += math.ceil(conv.kernel_size[0] / conv.stride[0]) * jump
            jump /= conv.stride[0]
        elif isinstance(module, Conv1d):
            conv = module.conv
            span += (conv.kernel_size[0] - 1) * conv.dilation[0] * jump
    return max(encoder_frames, math.ceil(span)) + 1


def default_chunk_seconds(model) -> float:
    per_second = LIVE_TENSORS * 4 * model.config.widths[0] * model.sample_rate
    return min(30.0, max(1.0, WORK_MEMORY_BYTES / per_second))


def chunk_frames_for(model, chunk_seconds: float | None) -> int:
    """Frames per chunk; ``None`` picks :func:`default_chunk_seconds`."""
    if chunk_seconds is None:
        chunk_seconds = default_chunk_seconds(model)
    if not chunk_seconds > 0:
        raise CodecError(f"chunk length must be positive, got {chunk_seconds} s")
    return max(1, round(chunk_seconds * model.frame_rate))


def _device_of(model) -> torch.device:
    return next(model.parameters()).device


class ChunkEncoder:
    """Codes ``[items, n_q, frames]`` of a model-rate signal fed in blocks
    ``[items, model_channels, n]``, encoded ``chunk_frames`` at a time with context."""

    def __init__(self, model, n_q: int, chunk_frames: int, context: int,
                 progress: tqdm | None = None):
        self.model, self.n_q = model, n_q
        self.hop, self.chunk, self.context = model.hop_length, chunk_frames, context
        self.device = _device_of(model)
        self.progress = progress
        self.buffer: torch.Tensor | None = None
        self.buffer_start = 0  # sample index of buffer[..., 0]
        self.next_frame = 0
        self.codes: list[np.ndarray] = []

    @property
    def _end(self) -> int:
        return self.buffer_start + (0 if self.buffer is None else self.buffer.shape[-1])

    def push(self, block: torch.Tensor) -> None:
        if block.shape[-1] == 0:
            return
        self.buffer = block if self.buffer is None else torch.cat([self.buffer, block], dim=-1)
        while (self.next_frame + self.chunk + self.context) * self.hop <= self._end:
            stop = self.next_frame + self.chunk
            self._encode(stop, (stop + self.context) * self.hop)

    def finish(self) -> np.ndarray:
        total = self._end
        frames = -(-total // self.hop)
        while self.next_frame < frames:
            stop = min(self.next_frame + self.chunk, frames)
            self._encode(stop, min((stop + self.context) * self.hop, total))
        return np.concatenate(self.codes, axis=-1)

    def _encode(self, stop: int, segment_end: int) -> None:
        first = max(0, self.next_frame - self.context)
        segment = self.buffer[..., first * self.hop - self.buffer_start:
                              segment_end - self.buffer_start]
        # One item at a time: peak memory does not grow with the channel count.
        codes = torch.cat([self.model.encode(item[None].to(self.device), self.n_q)
                           for item in segment])
        kept = codes[..., self.next_frame - first:stop - first]
        self.codes.append(kept.cpu().numpy().astype(np.uint16))
        self.next_frame = stop
        keep_from = max(self.buffer_start, (stop - self.context) * self.hop)
        self.buffer = self.buffer[..., keep_from - self.buffer_start:]
        self.buffer_start = keep_from
        if self.progress is not None:
            self.progress.update(1)


def decode_chunks(model, codes: np.ndarray, length: int, chunk_frames: int, context: int,
                  progress: tqdm | None = None) -> Iterator[torch.Tensor]:
    """Model-rate audio ``[items, model_channels, n]`` of codes ``[items, n_q, frames]``,
    chunk by chunk, ``length`` samples in all."""
    hop, frames, device = model.hop_length, codes.shape[-1], _device_of(model)
    for start in range(0, frames, chunk_frames):
        stop = min(start + chunk_frames, frames)
        first, last = max(0, start - context), min(frames, stop + context)
        keep = min(stop * hop, length) - start * hop
        offset = (start - first) * hop
        pieces = []
        for item in codes[..., first:last]:  # one item at a time, as in encoding
            window = torch.from_numpy(item[None].astype(np.int64)).to(device)
            pieces.append(model.decode(window)[..., offset:offset + keep].float().cpu())
        yield torch.cat(pieces)
        if progress is not None:
            progress.update(1)


# ---------------------------------------------------------------------------
# Channel layout and model identity


def items_from_channels(audio: torch.Tensor, model_channels: int) -> torch.Tensor:
    """``[C, n]`` -> ``[items, model_channels, n]``: a mono model codes each channel
    as a batch item; a multichannel model takes matching audio whole (mono is repeated)."""
    channels = audio.shape[0]
    if model_channels == 1:
        return audio[:, None]
    if channels == model_channels:
        return audio[None]
    if channels == 1:
        return audio.expand(model_channels, -1)[None]
    raise CodecError(f"cannot code {channels} channels with a {model_channels}-channel model")


def channels_from_items(audio: torch.Tensor, channels: int) -> torch.Tensor:
    """Inverse of :func:`items_from_channels`: ``[items, model_channels, n]`` -> ``[C, n]``."""
    if audio.shape[1] == 1:
        return audio[:, 0]
    if audio.shape[1] == channels:
        return audio[0]
    return audio[0].mean(dim=0, keepdim=True)


def model_id_of(model) -> str:
    from codec.model import compute_model_id

    return getattr(model, "model_id", None) or compute_model_id(model)


def check_model(header: Header, model) -> None:
    """BitstreamError unless ``model`` is the one that made the file."""
    found = model_id_of(model)
    if header.model_id != found:
        raise BitstreamError(f"made by model {header.model_id}, but the given model is "
                             f"{found}; decode with the model that encoded it")
    config = model.config
    expected = (config.sample_rate, model.hop_length, config.channels, config.codebook_size)
    claimed = (header.sample_rate, header.hop_length, header.coded_channels,
               header.codebook_size)
    if expected != claimed or header.n_q > config.n_q:
        raise BitstreamError(f"header (rate, hop, channels, codebook size) {claimed} with "
                             f"{header.n_q} codebooks does not fit model {found} {expected}")


# ---------------------------------------------------------------------------
# Encoding


@dataclass
class AudioSource:
    """Audio read in blocks ``[C, n]`` float32, as often as ``blocks()`` is called."""
    name: str
    sample_rate: int
    channels: int
    blocks: Callable[[], Iterator[torch.Tensor]]


def tensor_source(audio: torch.Tensor, sample_rate: int, name: str = "audio") -> AudioSource:
    if not isinstance(audio, torch.Tensor) or audio.dim() != 2:
        raise ValueError(f"audio must be a [channels, samples] tensor, got "
                         f"{getattr(audio, 'shape', type(audio).__name__)}")
    audio = audio.detach().float().cpu()
    return AudioSource(name, int(sample_rate), audio.shape[0],
                       lambda: (audio[:, i:i + READ_BLOCK]
                                for i in range(0, audio.shape[1], READ_BLOCK)))


def file_source(path: str | Path, max_frames: int | None = None) -> AudioSource:
    """Blocks of an audio file (its first ``max_frames`` frames if given)."""
    path = Path(path)
    if not path.exists():
        raise CodecError(f"{path}: no such file or directory")
    info = audio_info(path)

    def blocks() -> Iterator[torch.Tensor]:
        remaining = info.frames if max_frames is None else min(max_frames, info.frames)
        try:
            with sf.SoundFile(str(path)) as handle:
                while remaining > 0:
                    data = handle.read(min(READ_BLOCK, remaining), dtype="float32",
                                       always_2d=True)
                    if len(data) == 0:
                        break
                    remaining -= len(data)
                    yield torch.from_numpy(np.ascontiguousarray(data.T))
        except (sf.LibsndfileError, RuntimeError, OSError) as error:
            first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
            raise CodecError(f"{path}: cannot read audio ({first_line})") from None

    return AudioSource(str(path), info.sample_rate, info.channels, blocks)


def _measure(source: AudioSource) -> StreamingLoudness:
    meter = StreamingLoudness(source.sample_rate, source.channels)
    for block in source.blocks():
        if not torch.isfinite(block).all():
            raise CodecError("audio contains NaN or infinite samples")
        meter.push(block)
    return meter


def _target_level(model, target_lufs: float | None) -> float | None:
    return target_lufs if target_lufs is not None else getattr(model, "target_lufs",
                                                               DEFAULT_TARGET_LUFS)


@dataclass
class EncodedCodes:
    """codes ``[items, n_q, frames]`` (uint16) and what decoding needs to undo."""
    codes: np.ndarray
    gain: float
    length: int
    chunk_frames: int
    context_frames: int


def encode_codes(model, source: AudioSource, n_q: int, *,
                 chunk_seconds: float | None = None,
                 target_lufs: float | None = None, progress: bool = False) -> EncodedCodes:
    """The codes of a source at the model rate, loudness-normalised, chunk by chunk."""
    n_q = model.quantizer.check_n_q(n_q)
    if not 1 <= source.sample_rate <= bitstream.MAX_SAMPLE_RATE:
        raise CodecError(f"sample rate {source.sample_rate} Hz is outside "
                         f"[1, {bitstream.MAX_SAMPLE_RATE}]")
    if not 1 <= source.channels <= bitstream.MAX_CHANNELS:
        raise CodecError(f"{source.channels} channels; at most {bitstream.MAX_CHANNELS}")
    items_from_channels(torch.zeros(source.channels, 0), model.config.channels)
    meter = _measure(source)
    if meter.frames == 0:
        raise CodecError("empty audio (0 samples)")
    target = _target_level(model, target_lufs)
    gain = 1.0 if target is None else loudness_gain(meter.loudness(), target, meter.peak)
    chunk, context = chunk_frames_for(model, chunk_seconds), context_frames(model)
    frames = bitstream.frame_count(meter.frames, source.sample_rate, model.sample_rate,
                                   model.hop_length)
    bar = tqdm(total=-(-frames // chunk), unit="chunk", desc=f"encode {source.name}",
               disable=None if progress else True, leave=False)
    with bar:
        resampler = StreamResampler(source.sample_rate, model.sample_rate)
        encoder = ChunkEncoder(model, n_q, chunk, context, bar)
        for block in source.blocks():
            resampled = resampler.push(block)
            encoder.push(items_from_channels(resampled * gain, model.config.channels))
        rest = resampler.flush()
        if rest.numel():
            encoder.push(items_from_channels(rest * gain, model.config.channels))
        codes = encoder.finish()
    if codes.shape[-1] != frames:  # the file changed between the two reads
        raise CodecError(f"read {codes.shape[-1]} frames where {frames} were expected")
    return EncodedCodes(codes, gain, meter.frames, chunk, context)


def _encode_source(model, source: AudioSource, n_q: int, *, chunk_seconds: float | None,
                   entropy_tables: EntropyTables | None, target_lufs: float | None,
                   model_hint: str | None, progress: bool) -> bytes:
    result = encode_codes(model, source, n_q, chunk_seconds=chunk_seconds,
                          target_lufs=target_lufs, progress=progress)
    bits = model.config.codebook_size.bit_length() - 1
    model_id = model_id_of(model)
    if entropy_tables is not None:
        if entropy_tables.model_id != model_id:
            raise CodecError(f"entropy tables were measured for model "
                             f"{entropy_tables.model_id}, not {model_id}")
        payload = entropy_tables.encode(result.codes)
        entropy = {"tables_id": entropy_tables.tables_id}
    else:
        payload, entropy = bitstream.pack_codes(result.codes, bits), None
    header = Header(
        model_id=model_id, sample_rate=model.sample_rate, hop_length=model.hop_length,
        coded_channels=model.config.channels, source_rate=source.sample_rate,
        channels=source.channels, length=result.length, n_q=result.codes.shape[1],
        codebook_size=model.config.codebook_size, frames=result.codes.shape[-1],
        gain=result.gain, chunk_frames=result.chunk_frames,
        context_frames=result.context_frames, payload_bytes=len(payload), entropy=entropy,
        model_hint=model_hint)
    return bitstream.to_bytes(header, payload)


def encode_audio(model, audio: torch.Tensor, sample_rate: int, n_q: int, *,
                 chunk_seconds: float | None = None,
                 entropy_tables: EntropyTables | None = None,
                 target_lufs: float | None = None, model_hint: str | None = None,
                 progress: bool = False) -> bytes:
    """Audio ``[C, T]`` float32 at any rate -> the bytes of a ``.qca`` file.

    ``target_lufs``: the level the model was trained at (default: ``model.target_lufs``
    if set, else -23 LUFS; a model with ``target_lufs = None`` gets no gain).
    ``entropy_tables``: range-code the codes with these tables instead of bit-packing.
    """
    return _encode_source(model, tensor_source(audio, sample_rate), n_q,
                          chunk_seconds=chunk_seconds, entropy_tables=entropy_tables,
                          target_lufs=target_lufs, model_hint=model_hint, progress=progress)


@contextlib.contextmanager
def _atomic_path(path: Path) -> Iterator[Path]:
    """A temporary name beside ``path``, renamed to it only if the block succeeds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _named(path: Path, error: CodecError) -> CodecError:
    """The same error with the file's name in front (once)."""
    text = str(error)
    return error if text.startswith(str(path)) else type(error)(f"{path}: {text}")


def encode_file(model, in_path: str | Path, out_path: str | Path, n_q: int, *,
                chunk_seconds: float | None = None,
                entropy_tables: EntropyTables | None = None,
                target_lufs: float | None = None, model_hint: str | None = None,
                progress: bool = False) -> Path:
    """Compress an audio file to ``out_path`` (written under a temporary name first)."""
    in_path, out_path = Path(in_path), Path(out_path)
    try:
        data = _encode_source(model, file_source(in_path), n_q, chunk_seconds=chunk_seconds,
                              entropy_tables=entropy_tables, target_lufs=target_lufs,
                              model_hint=model_hint, progress=progress)
    except CodecError as error:
        raise _named(in_path, error) from None
    with _atomic_path(out_path) as tmp:
        tmp.write_bytes(data)
    return out_path


# ---------------------------------------------------------------------------
# Decoding


def _payload_codes(header: Header, payload: bytes,
                   entropy_tables: EntropyTables | None) -> np.ndarray:
    shape = (header.items, header.n_q, header.frames)
    if header.entropy is None:
        return bitstream.unpack_codes(payload, header.num_codes,
                                      header.bits_per_code).reshape(shape)
    wanted = header.entropy["tables_id"]
    if entropy_tables is None:
        raise BitstreamError(f"entropy-coded with tables {wanted}, and no entropy tables "
                             f"were found next to the model (codec entropy-tables makes them)")
    if entropy_tables.tables_id != wanted:
        raise BitstreamError(f"entropy-coded with tables {wanted}, but the model's tables are "
                             f"{entropy_tables.tables_id} (measured again since?)")
    return entropy_tables.decode(payload, *shape)


def decode_blocks(model, data: bytes, *, entropy_tables: EntropyTables | None = None,
                  chunk_seconds: float | None = None,
                  progress: bool = False) -> tuple[Header, Iterator[torch.Tensor]]:
    """Check a file's bytes and return its header and a generator of decoded blocks
    ``[C, n]`` at the original rate, ``header.length`` samples in all."""
    header, payload = bitstream.parse(data)
    check_model(header, model)
    tables = entropy_tables if entropy_tables is not None else \
        getattr(model, "entropy_tables", None)
    codes = _payload_codes(header, payload, tables)

    def blocks() -> Iterator[torch.Tensor]:
        chunk = chunk_frames_for(model, chunk_seconds)
        resampler = StreamResampler(header.sample_rate, header.source_rate)
        remaining = header.length
        bar = tqdm(total=-(-header.frames // chunk), unit="chunk", desc="decode",
                   disable=None if progress else True, leave=False)
        with bar:
            for piece in decode_chunks(model, codes, header.model_length, chunk,
                                       context_frames(model), bar):
                audio = resampler.push(channels_from_items(piece, header.channels) / header.gain)
                yield audio[:, :remaining]
                remaining -= min(remaining, audio.shape[-1])
            rest = resampler.flush()
            if rest.numel():
                yield rest[:, :remaining]

    return header, blocks()


def decode_bytes(model, data: bytes, *, entropy_tables: EntropyTables | None = None,
                 progress: bool = False) -> tuple[torch.Tensor, int]:
    """The bytes of a ``.qca`` file -> (audio ``[C, T]`` float32 at the original rate and
    length, that rate). BitstreamError for damaged files or another model's files."""
    header, blocks = decode_blocks(model, data, entropy_tables=entropy_tables,
                                   progress=progress)
    audio = torch.cat([b for b in blocks if b.numel()], dim=-1)
    return audio, header.source_rate


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise CodecError(f"{path}: no such file or directory") from None
    except OSError as error:
        raise CodecError(f"{path}: cannot read ({error.strerror or error})") from None


def _output_format(path: Path, subtype: str) -> str:
    fmt = path.suffix.lstrip(".").upper() or "WAV"
    if fmt not in sf.available_formats():
        raise CodecError(f"{path}: unknown audio format {path.suffix!r} (use .wav or .flac)")
    if not sf.check_format(fmt, subtype):
        raise CodecError(f"{path}: format {fmt} cannot store {subtype} samples")
    return fmt


def decode_file(model, in_path: str | Path, out_path: str | Path, *,
                subtype: str = "PCM_16", entropy_tables: EntropyTables | None = None,
                chunk_seconds: float | None = None, progress: bool = False) -> int:
    """Decode a ``.qca`` file to an audio file written block by block under a temporary
    name. Integer subtypes clip samples beyond [-1, 1] (the decoder is unbounded and
    the original level is restored, so a file peaking near 0 dBFS can overshoot a
    little); returns how many samples were clipped (0 with ``subtype="FLOAT"``)."""
    in_path, out_path = Path(in_path), Path(out_path)
    fmt = _output_format(out_path, subtype)
    try:
        header, blocks = decode_blocks(model, _read_bytes(in_path),
                                       entropy_tables=entropy_tables,
                                       chunk_seconds=chunk_seconds, progress=progress)
    except CodecError as error:
        raise _named(in_path, error) from None
    clipped = 0
    with _atomic_path(out_path) as tmp:
        with sf.SoundFile(str(tmp), "w", header.source_rate, header.channels, subtype,
                          format=fmt) as handle:
            for block in blocks:
                data = block.numpy().T
                if subtype != "FLOAT":
                    over = np.abs(data) > 1.0
                    clipped += int(over.sum())
                    data = np.clip(data, -1.0, 1.0)
                handle.write(data)
    return clipped


# ---------------------------------------------------------------------------
# Command line


def _plan(inputs: list[str], output: str | None, suffixes: frozenset[str],
          out_suffix: str) -> list[tuple[Path, Path]]:
    """(input, output) pairs. One file -> OUTPUT is the file (or a directory to put it in);
    folders are walked and their trees mirrored under OUTPUT."""
    if output is None:
        if len(inputs) < 2:
            raise CodecError("name the output: -o OUTPUT (or INPUT... OUTPUT)")
        *inputs, output = inputs
    out, paths = Path(output), [Path(p) for p in inputs]
    if len(paths) == 1 and not paths[0].is_dir():
        target = out / (paths[0].stem + out_suffix) if out.is_dir() else out
        return [(paths[0], target)]
    pairs = []
    for path in paths:
        if path.is_dir():
            base = out if len(paths) == 1 else out / path.name
            pairs += [(f, (base / f.relative_to(path)).with_suffix(out_suffix))
                      for f in sorted(path.rglob("*"))
                      if f.is_file() and f.suffix.lower() in suffixes]
        else:
            pairs.append((path, out / (path.stem + out_suffix)))
    seen: dict[Path, Path] = {}
    for source, target in pairs:
        if target in seen:
            raise CodecError(f"{source} and {seen[target]} would both be written to {target}")
        seen[target] = source
    return pairs


def _run_each(pairs: list[tuple[Path, Path]], command: str,
              work: Callable[[Path, Path], None]) -> int:
    """Run ``work`` on every pair. A single file's error propagates (one line from the
    CLI); in a batch each failure is reported on one line and the rest still run."""
    if len(pairs) == 1:
        work(*pairs[0])
        return 0
    failed = 0
    for source, target in tqdm(pairs, unit="file", desc=command, disable=None):
        try:
            work(source, target)
        except CodecError as error:
            failed += 1
            tqdm.write(f"codec {command}: error: {_named(source, error)}", file=sys.stderr)
    return 2 if failed else 0


def _check_device(device: str) -> str:
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise CodecError("--device cuda: no CUDA device is available")
    return device


def load_coding_model(model_path: str, device: str = "cpu"):
    """A model from a run / checkpoint path as ``codec encode`` uses it: in eval mode,
    with ``model.target_lufs`` set to the level its run trained at (-23 LUFS if unknown)."""
    from codec.checkpoint import META_FILE, load_model, resolve_model_path

    model = load_model(model_path, device=_check_device(device))
    if hasattr(model, "target_lufs"):  # exported models record it
        return model
    model.target_lufs = DEFAULT_TARGET_LUFS
    with contextlib.suppress(CodecError, OSError, ValueError, KeyError, TypeError):
        meta = json.loads((resolve_model_path(model_path).parent / META_FILE).read_text())
        model.target_lufs = meta["config"]["data"]["target_lufs"]
    return model


def entropy_tables_for(model_path: str, model, required: bool) -> EntropyTables | None:
    """The entropy tables saved for ``model`` in its run directory; None if there are
    none, or CodecError saying how to make them when ``required``."""
    from codec.entropy import TABLES_FILE, find_tables, tables_dir

    model_id = model_id_of(model)
    tables = find_tables(model_path, model_id)
    if tables is None and required:
        where = tables_dir(model_path) / TABLES_FILE
        problem = "were measured for another model" if where.is_file() else "do not exist"
        raise CodecError(f"--entropy: the entropy tables {where} {problem}; make them with "
                         f"codec entropy-tables --model {model_path} --data TRAIN.jsonl")
    return tables


def _n_q(model, args: argparse.Namespace) -> int:
    try:
        if args.kbps is not None:
            return model.n_q_for_kbps(args.kbps)
        return model.quantizer.check_n_q(args.n_q)
    except ValueError as error:
        raise CodecError(f"--{'kbps' if args.kbps is not None else 'n-q'}: {error}") from None


def _check_chunk(args: argparse.Namespace) -> None:
    if args.chunk_seconds is not None and not args.chunk_seconds > 0:
        raise CodecError(f"--chunk-seconds must be positive, got {args.chunk_seconds}")


def run_encode(args: argparse.Namespace) -> int:
    _check_chunk(args)
    model = load_coding_model(args.model, args.device)
    n_q = _n_q(model, args)
    tables = entropy_tables_for(args.model, model, required=True) if args.entropy else None
    pairs = _plan(args.inputs, args.output, AUDIO_SUFFIXES, bitstream.SUFFIX)
    if len(pairs) == 1 and pairs[0][1].suffix != bitstream.SUFFIX:
        raise CodecError(f"{pairs[0][1]}: the output of encode should end in "
                         f"{bitstream.SUFFIX}")
    hint = str(Path(args.model).resolve())

    def work(source: Path, target: Path) -> None:
        encode_file(model, source, target, n_q, chunk_seconds=args.chunk_seconds,
                    entropy_tables=tables, model_hint=hint, progress=len(pairs) == 1)

    return _run_each(pairs, "encode", work)


def run_decode(args: argparse.Namespace) -> int:
    _check_chunk(args)
    pairs = _plan(args.inputs, args.output, frozenset({bitstream.SUFFIX}), ".wav")
    if len(pairs) == 1 and pairs[0][1].suffix == bitstream.SUFFIX:
        raise CodecError(f"{pairs[0][1]}: the output of decode is audio (.wav or .flac)")
    models: dict[str, tuple] = {}

    def model_for(source: Path) -> tuple:
        path = args.model
        if path is None:
            path = bitstream.read_file(source)[0].model_hint
            if not path or not Path(path).exists():
                raise CodecError(f"{source}: no --model given, and the model it was encoded "
                                 f"with ({path or 'not recorded'}) is not found; "
                                 f"pass --model")
        if path not in models:
            model = load_coding_model(path, args.device)
            models[path] = (model, entropy_tables_for(path, model, required=False))
        return models[path]

    def work(source: Path, target: Path) -> None:
        model, tables = model_for(source)
        clipped = decode_file(model, source, target, subtype=args.subtype,
                              entropy_tables=tables, chunk_seconds=args.chunk_seconds,
                              progress=len(pairs) == 1)
        if clipped:
            tqdm.write(f"codec decode: warning: {target}: {clipped} samples beyond full scale "
                       f"were clipped; --subtype FLOAT keeps them", file=sys.stderr)

    return _run_each(pairs, "decode", work)


def _training_files(data: list[str]) -> list[Path]:
    """Audio files named by JSONL manifests (a ``path`` per line, relative to the manifest
    if not found from here), folders (walked) or audio files."""
    files: list[Path] = []
    for entry in map(Path, data):
        if entry.is_dir():
            files += sorted(f for f in entry.rglob("*") if f.suffix.lower() in AUDIO_SUFFIXES)
        elif entry.suffix == ".jsonl":
            try:
                lines = entry.read_text().splitlines()
            except OSError as error:
                raise CodecError(f"{entry}: cannot read ({error.strerror})") from None
            for number, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                    path = Path(record["path"])
                except (json.JSONDecodeError, KeyError, TypeError):
                    raise CodecError(f"{entry}:{number}: expected a JSON object with a "
                                     f"'path'") from None
                files.append(path if path.is_absolute() or path.exists()
                             else entry.parent / path)
        elif entry.is_file():
            files.append(entry)
        else:
            raise CodecError(f"{entry}: no such manifest, folder or file")
    return files


def run_entropy_tables(args: argparse.Namespace) -> int:
    from codec import entropy

    model = load_coding_model(args.model, args.device)
    files = _training_files(args.data)[:args.max_files]
    if not files:
        raise CodecError("no audio files found in --data")
    size = model.config.codebook_size
    counts = np.zeros((model.config.n_q, size), dtype=np.int64)
    used = 0
    for path in tqdm(files, unit="file", desc="count codes", disable=None):
        try:
            rate = audio_info(path).sample_rate if path.exists() else 1
            source = file_source(path, max_frames=int(args.max_seconds * rate))
            result = encode_codes(model, source, model.config.n_q)
        except CodecError as error:
            tqdm.write(f"codec entropy-tables: skipped: {_named(path, error)}", file=sys.stderr)
            continue
        counts += entropy.count_codes(result.codes, size)
        used += 1
    if used == 0:
        raise CodecError("none of the --data files could be read")
    tables = entropy.EntropyTables(model_id_of(model), counts)
    target = entropy.tables_dir(args.model) / entropy.TABLES_FILE
    entropy.save_tables(tables, target, files=str(used))
    saving = 1 - entropy.mean_code_bits(tables) / (size.bit_length() - 1)
    print(f"wrote {target}: {used} files, {int(counts[0].sum())} frames; expected saving "
          f"{100 * saving:.1f}% of the bit-packed size on this data")
    return 0


def _add_running_arguments(parser: argparse.ArgumentParser, done: str) -> None:
    """--device and --chunk-seconds, as encode and decode take them."""
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    parser.add_argument("--chunk-seconds", type=float,
                        help=f"audio {done} at a time; bounds memory (default: what fits in "
                             f"{WORK_MEMORY_BYTES >> 20} MiB of working memory)")


def register(subparsers: argparse._SubParsersAction) -> None:
    enc = subparsers.add_parser(
        "encode", help="compress audio files with a trained model",
        description="Compress audio files (or folders of them) to .qca files. "
                    "Without -o, the last INPUT is the output.")
    enc.add_argument("inputs", nargs="+", metavar="INPUT", help="audio files or folders")
    enc.add_argument("-o", "--output", help="output .qca file, or folder for several inputs")
    enc.add_argument("--model", required=True, help="run directory, checkpoint or model file")
    rate = enc.add_mutually_exclusive_group()
    rate.add_argument("--kbps", type=float, help="largest bitrate to use (per channel)")
    rate.add_argument("--n-q", type=int, help="codebooks to use (default: all)")
    enc.add_argument("--entropy", action="store_true",
                     help="range-code the codes with the model's entropy tables")
    _add_running_arguments(enc, "coded")
    enc.set_defaults(run=run_encode)

    dec = subparsers.add_parser(
        "decode", help="decompress .qca files to audio",
        description="Decode .qca files (or folders of them) to audio files. "
                    "Without -o, the last INPUT is the output.")
    dec.add_argument("inputs", nargs="+", metavar="INPUT", help=".qca files or folders")
    dec.add_argument("-o", "--output", help="output audio file, or folder for several inputs")
    dec.add_argument("--model", help="the model that encoded the files (default: the model "
                                     "path recorded in each file, if it still exists)")
    dec.add_argument("--subtype", choices=SUBTYPES, default="PCM_16",
                     help="sample format; PCM clips beyond full scale, FLOAT keeps everything "
                          "(default: %(default)s)")
    _add_running_arguments(dec, "decoded")
    dec.set_defaults(run=run_decode)

    tab = subparsers.add_parser(
        "entropy-tables", help="measure code frequencies for --entropy",
        description="Count how often each code of each codebook occurs on training data "
                    "and save the tables next to the model (RUN/entropy.safetensors).")
    tab.add_argument("--model", required=True, help="run directory, checkpoint or model file")
    tab.add_argument("--data", required=True, nargs="+",
                     help="JSONL manifests (a 'path' per line), folders or audio files")
    tab.add_argument("--max-files", type=int, default=500, help="default: %(default)s")
    tab.add_argument("--max-seconds", type=float, default=60.0,
                     help="seconds read from each file (default: %(default)s)")
    tab.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    tab.set_defaults(run=run_entropy_tables)
