"""Encode and decode audio with a trained model: tensors, bytes and files (the Python API).

    model = codec.load("exp/run")
    data = codec.encode(model, audio, sample_rate, kbps=6)   # audio [C, T] -> bytes
    audio, sample_rate = codec.decode(model, data)

Encoding a file reads it twice, block by block:

1. loudness (ITU-R BS.1770, streamed) and peak of the whole input -> one gain that
   brings it to the model's training level (``codec.audio.loudness_gain``, peak-limited);
2. resample to the model rate (``codec.coding.resample``, streamed, memory bounded) -> times
   the gain -> chunks of ``chunk_frames`` frames, each encoded with ``context_frames``
   frames of real audio on both sides, of which only the centre frames are kept
   (``codec.coding.chunking``): every frame is stored once;
3. unless ``level_match`` is off, the codes are decoded as a decoder will, and the
   header's gain takes the ratio of the decoded level to the input's, so that the
   decoded file has the input's RMS (a model can come out a few per cent to a few dB
   low or high, the more so at low bitrates; the gain already travels with the codes,
   so this costs no bits, only a decoding pass while encoding).

Decoding mirrors it: chunks of codes decoded with context frames, centre kept,
divided by the gain, resampled back to the original rate, cut to the original
length and written to the output file block by block. Memory is bounded by the
chunk length; only the codes (the compressed file's size, about 3 MB per hour at
6 kbps) are held whole.

A mono model codes each channel of a multichannel file as its own batch item;
the one gain keeps the channel balance.
"""
from __future__ import annotations

import contextlib
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
import soundfile as sf
import torch
from tqdm import tqdm

from codec.audio import StreamingLoudness, audio_info, loudness_gain
from codec.coding import bitstream
from codec.coding.band_levels import BandLevels, LevelMeter
from codec.coding.bitrate import codebooks_for_kbps, level_grid, level_kbps
from codec.coding.bitstream import BitstreamError, Header
from codec.coding.chunking import (
    ChunkEncoder,
    channels_from_items,
    chunk_frames_for,
    context_frames,
    decode_chunks,
    items_from_channels,
)
from codec.coding.entropy import EntropyTables
from codec.coding.resample import StreamResampler
from codec.errors import CodecError, require_regular_file
from codec.model_name import is_machine_path, model_name
from codec.pretrained import PretrainedModel

READ_BLOCK = 1 << 16
# The lowest input rate encoding takes: the loudness measure's filters (ITU-R BS.1770,
# whose shelf sits at 1.5 kHz) and its 100 ms gating steps need at least this; nothing
# below it is audio a codec can use.
MIN_SOURCE_RATE = 1000
# The level match moves the decoded level by at most this much: further off, the
# decoded audio is mostly coding noise (a near-silent input), and its level says
# little about the input's.
LEVEL_MATCH_LIMIT_DB = 6.0
# ... and in steps of this much: the decoded level comes out of float convolutions whose
# last bits differ between CPUs, and a step far coarser than that keeps the header's
# gain, like the codes, the same on every machine (0.01 dB is 0.1% of the level).
LEVEL_MATCH_STEP_DB = 0.01


def check_model(header: Header, model: PretrainedModel) -> None:
    """BitstreamError unless ``model`` is the one that made the file."""
    found = model.model_id
    if header.model_id != found:
        raise BitstreamError(f"made by model {header.model_id}, but the given model is "
                             f"{found}; decode with the model that encoded it")
    network, config = model.network, model.config
    expected = (config.sample_rate, network.hop_length, config.channels, config.codebook_size)
    claimed = (header.sample_rate, header.hop_length, header.coded_channels,
               header.codebook_size)
    if expected != claimed or header.n_q > config.n_q:
        raise BitstreamError(f"header (rate, hop, channels, codebook size) {claimed} with "
                             f"{header.n_q} codebooks does not fit model {found} {expected}")


def codebooks(model: PretrainedModel, *, kbps: float | None = None,
              n_q: int | None = None) -> int:
    """How many codebooks to code with: the most that fit ``kbps`` (per channel), else
    ``n_q``, else all. CodecError for a rate or count the model cannot give."""
    if kbps is not None:
        return codebooks_for_kbps(model.network, model.coding, kbps)
    try:
        return model.network.quantizer.check_n_q(n_q)
    except ValueError as error:
        raise CodecError(str(error)) from None


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


@dataclass
class EncodedCodes:
    """codes ``[items, n_q, frames]`` (uint16) and what decoding needs to undo."""
    codes: np.ndarray
    gain: float
    length: int
    chunk_frames: int
    context_frames: int
    levels: BandLevels | None = None


@dataclass
class EncodingPlan:
    """What encoding a source needs to know before its codes: the gain that brings it to
    the model's training loudness, its chunks, and its length (``input_frames`` at its
    own rate, ``length`` samples and ``frames`` codec frames at the model's)."""
    input_frames: int
    gain: float
    chunk: int
    context: int
    frames: int
    length: int


@dataclass
class InputMeasures:
    """What encoding measures of the model-rate input on the way to the encoder: its
    energy (for the level match) and its band levels."""
    energy: float = 0.0
    levels: LevelMeter | None = None


def plan_encoding(model: PretrainedModel, source: AudioSource,
                  chunk_seconds: float | None) -> EncodingPlan:
    """CodecError for a source the model cannot code; else its :class:`EncodingPlan`,
    after one read of the source to measure its loudness."""
    network, target = model.network, model.target_lufs
    if not MIN_SOURCE_RATE <= source.sample_rate <= bitstream.MAX_SAMPLE_RATE:
        raise CodecError(f"sample rate {source.sample_rate} Hz is outside "
                         f"[{MIN_SOURCE_RATE}, {bitstream.MAX_SAMPLE_RATE}]")
    if not 1 <= source.channels <= bitstream.MAX_CHANNELS:
        raise CodecError(f"{source.channels} channels; at most {bitstream.MAX_CHANNELS}")
    items_from_channels(torch.zeros(source.channels, 0), network.config.channels)
    meter = _measure(source)
    if meter.frames == 0:
        raise CodecError("empty audio (0 samples)")
    gain = 1.0 if target is None else as_float32(
        loudness_gain(meter.loudness(), target, meter.peak))
    frames = bitstream.frame_count(meter.frames, source.sample_rate, network.sample_rate,
                                   network.hop_length)
    length = bitstream.model_length(meter.frames, source.sample_rate, network.sample_rate)
    return EncodingPlan(meter.frames, gain, chunk_frames_for(network, chunk_seconds),
                        context_frames(network, model.coding.postfilter), frames, length)


def read_model_rate(model: PretrainedModel, source: AudioSource, plan: EncodingPlan, n_q: int,
                    push: Callable[[torch.Tensor], None], *, level_match: bool,
                    band_levels: bool) -> InputMeasures:
    """Read the source again, at the model rate and times the gain, into ``push`` as
    items ``[items, model_channels, n]`` block by block; measuring its energy (with
    ``level_match``) and, with ``band_levels`` and a model that sends them, its levels."""
    network = model.network
    resampler = StreamResampler(source.sample_rate, network.sample_rate, length=plan.length)
    grid = level_grid(network, model.coding, model.target_lufs, n_q) if band_levels else None
    measures = InputMeasures()
    for block in _resampled(source, resampler):
        if block.numel():
            items = items_from_channels(block * plan.gain, network.config.channels)
            if level_match:
                measures.energy += float(items.double().pow(2).sum())
            push(items)
            if grid is not None:
                rows = items.reshape(-1, items.shape[-1])  # one per item and channel
                if measures.levels is None:
                    measures.levels = LevelMeter(grid, rows.shape[0])
                measures.levels.push(rows)
    return measures


def fitted_levels(model: PretrainedModel, plan: EncodingPlan, measures: InputMeasures,
                  codes: np.ndarray, n_q: int) -> BandLevels | None:
    """The band levels that go with ``codes``, fitted to their share of the bitrate (None
    for none); CodecError if the codes are not the plan's length."""
    if codes.shape[-1] != plan.frames:  # the file changed between the two reads
        raise CodecError(f"read {codes.shape[-1]} frames where {plan.frames} were expected")
    meter = measures.levels
    if meter is None:
        return None
    network = model.network
    seconds = plan.length / network.sample_rate
    share = level_kbps(network, model.coding, n_q)
    # The share is per coded item, as the codebooks' rate is: a mono model codes each
    # channel as an item, a stereo model both channels as one.
    items = meter.rows // network.config.channels
    budget = share * 1000 / 8 * seconds * items or None
    # None when even the coarsest levels pass their share: the codes go alone.
    return BandLevels.fitted(meter.finish(plan.frames), meter.grid, budget)


def encoded_codes(plan: EncodingPlan, measures: InputMeasures, codes: np.ndarray,
                  levels: BandLevels | None,
                  decoded: Iterable[torch.Tensor] | None) -> EncodedCodes:
    """The :class:`EncodedCodes` of ``codes``; given the ``decoded`` model-rate audio of
    the codes, chunk by chunk, with the level-matched gain."""
    gain = plan.gain
    if decoded is not None:
        decoded_energy = sum(float(piece.double().pow(2).sum()) for piece in decoded)
        gain = as_float32(matched_gain(gain, measures.energy, decoded_energy))
    return EncodedCodes(codes, gain, plan.input_frames, plan.chunk, plan.context, levels)


def encode_codes(model: PretrainedModel, source: AudioSource, n_q: int, *,
                 chunk_seconds: float | None = None, level_match: bool = True,
                 progress: bool = False, band_levels: bool = True) -> EncodedCodes:
    """The codes of a source at the model rate, brought to the model's training loudness
    (no gain when ``model.target_lufs`` is None), chunk by chunk; with ``level_match``
    the gain also undoes the decoded level's error (:func:`matched_gain`); with
    ``band_levels``, and a model that sends them, the input's band levels too."""
    network = model.network
    n_q = network.quantizer.check_n_q(n_q)
    plan = plan_encoding(model, source, chunk_seconds)
    chunks = -(-plan.frames // plan.chunk)
    with _chunk_bar(chunks, f"encode {source.name}", progress) as bar:
        encoder = ChunkEncoder(network, n_q, plan.chunk, plan.context, bar)
        measures = read_model_rate(model, source, plan, n_q, encoder.push,
                                   level_match=level_match, band_levels=band_levels)
        codes = encoder.finish()
    levels = fitted_levels(model, plan, measures, codes, n_q)
    if not level_match:
        return encoded_codes(plan, measures, codes, levels, None)
    with _chunk_bar(chunks, f"level {source.name}", progress) as bar:
        decoded = decode_chunks(network, codes, plan.length, plan.chunk, plan.context, bar,
                                levels, model.coding.postfilter)
        return encoded_codes(plan, measures, codes, levels, decoded)


def _chunk_bar(total: int, desc: str, progress: bool) -> tqdm:
    """A progress bar over chunks, shown when ``progress`` is set and on a terminal."""
    return tqdm(total=total, unit="chunk", desc=desc, disable=None if progress else True,
                leave=False)


def _resampled(source: AudioSource, resampler: StreamResampler) -> Iterator[torch.Tensor]:
    for block in source.blocks():
        yield resampler.push(block)
    yield resampler.flush()


def as_float32(gain: float) -> float:
    """``gain`` to float32 precision (6e-8 relative, a millionth of a dB): the header then
    holds it in 4 bytes, and decoding divides by exactly the gain encoding applied."""
    return float(np.float32(gain))


def matched_gain(gain: float, input_energy: float, decoded_energy: float) -> float:
    """The header gain that gives the decoded audio the input's RMS: ``gain`` times the
    decoded level over the input's (decoding divides by the header gain), the ratio
    held within ``LEVEL_MATCH_LIMIT_DB`` and rounded to ``LEVEL_MATCH_STEP_DB``; ``gain``
    itself for silence on either side."""
    if input_energy <= 0 or decoded_energy <= 0:
        return gain
    ratio_db = 10 * math.log10(decoded_energy / input_energy)
    ratio_db = min(max(ratio_db, -LEVEL_MATCH_LIMIT_DB), LEVEL_MATCH_LIMIT_DB)
    ratio_db = round(ratio_db / LEVEL_MATCH_STEP_DB) * LEVEL_MATCH_STEP_DB
    return min(max(gain * 10 ** (ratio_db / 20), bitstream.MIN_GAIN), bitstream.MAX_GAIN)


def _encode_source(model: PretrainedModel, source: AudioSource, n_q: int, *,
                   chunk_seconds: float | None, entropy: bool, model_hint: str | None,
                   progress: bool, level_match: bool = True) -> bytes:
    """The bytes of a ``.qca`` file: the source's codes and the header that undoes them."""
    entropy_tables = model.require_entropy_tables() if entropy else None
    result = encode_codes(model, source, n_q, chunk_seconds=chunk_seconds,
                          level_match=level_match, progress=progress)
    return file_bytes(model, source, result, entropy_tables, model_hint)


def file_bytes(model: PretrainedModel, source: AudioSource, result: EncodedCodes,
               entropy_tables: EntropyTables | None, model_hint: str | None) -> bytes:
    """The bytes of a ``.qca`` file holding ``result``, the codes of ``source``."""
    network, config, model_id = model.network, model.config, model.model_id
    bits = config.codebook_size.bit_length() - 1
    if entropy_tables is not None:
        if entropy_tables.model_id != model_id:
            raise CodecError(f"entropy tables were measured for model "
                             f"{entropy_tables.model_id}, not {model_id}")
        payload = entropy_tables.encode(result.codes)
        coding = {"tables_id": entropy_tables.tables_id}
    else:
        payload, coding = bitstream.pack_codes(result.codes, bits), None
    level_field = None
    if result.levels is not None:
        level_data, level_field = result.levels.to_bytes()
        payload += level_data
    header = Header(
        model_id=model_id, sample_rate=network.sample_rate, hop_length=network.hop_length,
        coded_channels=config.channels, source_rate=source.sample_rate,
        channels=source.channels, length=result.length, n_q=result.codes.shape[1],
        codebook_size=config.codebook_size, frames=result.codes.shape[-1],
        gain=result.gain, chunk_frames=result.chunk_frames,
        context_frames=result.context_frames, payload_bytes=len(payload), entropy=coding,
        model_hint=recorded_name(model, model_hint), band_levels=level_field)
    return bitstream.to_bytes(header, payload)


def recorded_name(model: PretrainedModel, model_hint: str | None) -> str | None:
    """The model name a header records: ``model_hint`` (a path is cut down to its name),
    else the name of the path the model was loaded from, else none."""
    if model_hint is None:
        return None if model.source.path is None else model_name(model.source.path)
    return model_name(model_hint) if is_machine_path(model_hint) else model_hint


def encode(model: PretrainedModel, audio: torch.Tensor, sample_rate: int, *,
           kbps: float | None = None, n_q: int | None = None, entropy: bool = False,
           chunk_seconds: float | None = None, model_hint: str | None = None,
           level_match: bool = True, progress: bool = False) -> bytes:
    """Audio ``[C, T]`` float32 at any rate -> the bytes of a ``.qca`` file.

    ``kbps`` (per channel) or ``n_q`` picks the codebooks (default: all, see
    :func:`codebooks`); ``entropy`` range-codes the codes with ``model.entropy_tables``
    instead of bit-packing them; ``chunk_seconds`` bounds memory (default: what fits
    ``codec.coding.chunking.WORK_MEMORY_BYTES``); ``model_hint`` names the model for ``codec
    decode`` (default: :func:`codec.model_name.model_name` of where it was loaded from);
    ``level_match`` decodes the codes once more so that the decoded audio gets the
    input's RMS (off: a single pass, the level the model gives).
    """
    return _encode_source(model, tensor_source(audio, sample_rate),
                          codebooks(model, kbps=kbps, n_q=n_q), chunk_seconds=chunk_seconds,
                          entropy=entropy, model_hint=model_hint, progress=progress,
                          level_match=level_match)


@contextlib.contextmanager
def _atomic_path(path: Path, overwrite: bool = True) -> Iterator[Path]:
    """A temporary name beside ``path``, renamed to it only if the block succeeds. A
    failure to write (no permission, a full disk) is a CodecError, and leaves nothing.
    Without ``overwrite`` the file appears only if no file of that name exists by then,
    in one step (a hard link), so two processes writing one name cannot both succeed."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        yield tmp
        if overwrite:
            os.replace(tmp, path)
        else:
            _link_new(tmp, path)
    except OSError as error:
        raise CodecError(f"{path}: cannot write ({error.strerror or error})") from None
    except sf.LibsndfileError as error:  # it reports a full disk as "System error."
        raise CodecError(f"{path}: cannot write ({str(error).strip()} Is the disk full or "
                         f"the folder read-only?)") from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def _link_new(tmp: Path, path: Path) -> None:
    """``tmp`` under the name ``path``, which must not exist: CodecError if it does."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise CodecError(f"{path}: exists (written meanwhile by another process?); "
                         f"pass -f/--force to overwrite") from None
    except OSError:  # a file system without hard links: the check, then the rename
        if path.exists():
            raise CodecError(f"{path}: exists; pass -f/--force to overwrite") from None
        os.replace(tmp, path)


def named_error(path: Path, error: CodecError) -> CodecError:
    """The same error with the file's name in front (once)."""
    text = str(error)
    return error if text.startswith(str(path)) else type(error)(f"{path}: {text}")


def encode_file(model: PretrainedModel, in_path: str | Path, out_path: str | Path, *,
                kbps: float | None = None, n_q: int | None = None, entropy: bool = False,
                chunk_seconds: float | None = None, model_hint: str | None = None,
                level_match: bool = True, progress: bool = False,
                overwrite: bool = True) -> Path:
    """Compress an audio file to ``out_path`` (written under a temporary name first);
    the options are :func:`encode`'s. Without ``overwrite``, CodecError if ``out_path``
    exists when the file is ready."""
    in_path, out_path = Path(in_path), Path(out_path)
    try:
        data = _encode_source(model, file_source(in_path), codebooks(model, kbps=kbps, n_q=n_q),
                              chunk_seconds=chunk_seconds, entropy=entropy,
                              model_hint=model_hint, progress=progress,
                              level_match=level_match)
    except CodecError as error:
        raise named_error(in_path, error) from None
    with _atomic_path(out_path, overwrite) as tmp:
        tmp.write_bytes(data)
    return out_path


def payload_codes(header: Header, payload: bytes,
                  entropy_tables: EntropyTables | None) -> np.ndarray:
    """The codes ``[items, n_q, frames]`` of a file's payload: bit-packed, or range-coded
    with ``entropy_tables`` (BitstreamError when those are missing or not the file's)."""
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


def decode_blocks(model: PretrainedModel, data: bytes, *, chunk_seconds: float | None = None,
                  progress: bool = False) -> tuple[Header, Iterator[torch.Tensor]]:
    """Check a file's bytes and return its header and a generator of decoded blocks
    ``[C, n]`` at the original rate, ``header.length`` samples in all."""
    header, codes, levels = parse_file(model, data)
    network = model.network

    def blocks() -> Iterator[torch.Tensor]:
        chunk = chunk_frames_for(network, chunk_seconds)
        with _chunk_bar(-(-header.frames // chunk), "decode", progress) as bar:
            exponent = model.coding.postfilter
            yield from restored(header, decode_chunks(network, codes, header.model_length,
                                                      chunk, context_frames(network, exponent),
                                                      bar, levels, exponent))

    return header, blocks()


def parse_file(model: PretrainedModel,
               data: bytes) -> tuple[Header, np.ndarray, BandLevels | None]:
    """A file's header, codes ``[items, n_q, frames]`` and band levels (None if it has
    none); BitstreamError for damaged files or another model's files."""
    header, payload = bitstream.parse(data)
    check_model(header, model)
    codes = payload_codes(header, payload[:header.codes_bytes], model.entropy_tables)
    levels = None
    if header.band_levels is not None:
        levels = BandLevels.from_bytes(payload[header.codes_bytes:], header.band_levels,
                                       header.sample_rate, header.hop_length,
                                       codes.shape[0] * header.coded_channels, header.frames)
    return header, codes, levels


def restored(header: Header, pieces: Iterable[torch.Tensor]) -> Iterator[torch.Tensor]:
    """Decoded model-rate ``pieces`` ``[items, model_channels, n]`` as blocks ``[C, n]``
    at the original rate and level, ``header.length`` samples in all."""
    resampler = StreamResampler(header.sample_rate, header.source_rate, length=header.length)
    for piece in pieces:
        yield resampler.push(channels_from_items(piece, header.channels) / header.gain)
    rest = resampler.flush()
    if rest.numel():
        yield rest


def decode(model: PretrainedModel, data: bytes, *, chunk_seconds: float | None = None,
           progress: bool = False) -> tuple[torch.Tensor, int]:
    """The bytes of a ``.qca`` file -> (audio ``[C, T]`` float32 at the original rate and
    length, that rate). BitstreamError for damaged files or another model's files."""
    header, blocks = decode_blocks(model, data, chunk_seconds=chunk_seconds,
                                   progress=progress)
    audio = torch.cat([b for b in blocks if b.numel()], dim=-1)
    return audio, header.source_rate


def _read_bytes(path: Path) -> bytes:
    require_regular_file(path)
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


def decode_file(model: PretrainedModel, in_path: str | Path, out_path: str | Path, *,
                subtype: str = "PCM_16", chunk_seconds: float | None = None,
                progress: bool = False, overwrite: bool = True) -> int:
    """Decode a ``.qca`` file to an audio file written block by block under a temporary
    name. Integer subtypes clip samples beyond [-1, 1] (the decoder is unbounded and
    the original level is restored, so a file peaking near 0 dBFS can overshoot a
    little); returns how many samples were clipped (0 with ``subtype="FLOAT"``). Without
    ``overwrite``, CodecError if ``out_path`` exists when the audio is ready."""
    in_path, out_path = Path(in_path), Path(out_path)
    fmt = _output_format(out_path, subtype)
    try:
        header, blocks = decode_blocks(model, _read_bytes(in_path),
                                       chunk_seconds=chunk_seconds, progress=progress)
    except CodecError as error:
        raise named_error(in_path, error) from None
    clipped = 0
    with _atomic_path(out_path, overwrite) as tmp:
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
