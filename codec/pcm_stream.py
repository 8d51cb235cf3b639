"""Raw PCM through pipes, frame by frame: what ``codec stream-encode`` and
``codec stream-decode`` do.

    arecord -f S16_LE -r 24000 -c 1 -t raw | codec stream-encode --model M > talk.qcs
    codec stream-decode < talk.qcs | aplay -f S16_LE -r 24000 -c 1 -t raw

stream-encode reads interleaved signed 16-bit little-endian PCM from stdin, codes it
with a causal model's :class:`~codec.coding.streaming.StreamingEncoder` and writes a packet
stream (``.qcs``, codec.coding.bitstream) to stdout, one packet per frame as soon as the
frame's last sample has arrived. stream-decode turns packets back into PCM as they
arrive. The result equals offline coding with the same model; the latency is the
model's (``Codec.latency_samples``: a frame, and a causal spectral model's crossfade),
plus what the pipes buffer.

Rate: the PCM must be at the model's rate (resample before the pipe, e.g. with sox).
Level: a stream cannot be measured before it is coded, so instead of the offline
coder's loudness normalisation it takes one fixed gain, ``--gain-db`` (default 0 dB:
coded as it comes). The gain is recorded in the stream header and undone on decoding.
Set it so that speech sits near the level the model trained at (-23 LUFS by default).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import BinaryIO, Iterator

import numpy as np
import torch

from codec.coding.chunking import channels_from_items, items_from_channels
from codec.coding.packets import PacketReader, PacketWriter, StreamHeader
from codec.coding.streaming import StreamingDecoder, StreamingEncoder
from codec.compress import check_model
from codec.pretrained import PretrainedModel

PCM_SCALE = 32768.0  # s16 full scale, as soundfile reads it
# Frames decoded at a time: a second at 75 frames a second.
DECODE_FRAMES = 75
SAMPLE_BYTES = 2


def pcm_to_float(data: bytes, channels: int) -> torch.Tensor:
    """Interleaved s16le bytes (whole sample frames) -> float32 ``[C, n]`` in [-1, 1)."""
    samples = np.frombuffer(data, dtype="<i2").reshape(-1, channels)
    return torch.from_numpy(samples.T.astype(np.float32) / PCM_SCALE)


def float_to_pcm(audio: torch.Tensor) -> tuple[bytes, int]:
    """Float ``[C, n]`` -> (interleaved s16le bytes, samples clipped at full scale)."""
    scaled = np.rint(audio.numpy().T * PCM_SCALE)
    clipped = int(((scaled < -PCM_SCALE) | (scaled > PCM_SCALE - 1)).sum())
    return np.clip(scaled, -PCM_SCALE, PCM_SCALE - 1).astype("<i2").tobytes(), clipped


def read_pcm(handle: BinaryIO, channels: int, samples: int) -> Iterator[torch.Tensor]:
    """Blocks ``[C, samples]`` of PCM read from ``handle`` (the last may be shorter);
    a trailing part of a sample frame is dropped."""
    frame_bytes = channels * SAMPLE_BYTES
    wanted, rest = samples * frame_bytes, b""
    while True:
        data = rest + (handle.read(wanted - len(rest)) or b"")
        if len(data) == len(rest):  # end of input
            return
        whole = len(data) - len(data) % frame_bytes
        data, rest = data[:whole], data[whole:]
        if data:
            yield pcm_to_float(data, channels)


@dataclass
class EncodeSummary:
    """samples read per channel, frames coded."""
    samples: int
    frames: int


def encode_pcm_stream(model: PretrainedModel, source: BinaryIO, sink: BinaryIO, *,
                      channels: int, n_q: int, gain: float = 1.0, packet_frames: int = 1,
                      model_hint: str | None = None) -> EncodeSummary:
    """PCM from ``source`` -> a packet stream on ``sink``, a packet every ``packet_frames``
    frames, each written as soon as its last frame is coded."""
    network = model.network
    header = StreamHeader(
        model_id=model.model_id, sample_rate=network.sample_rate,
        hop_length=network.hop_length, coded_channels=network.config.channels,
        channels=channels, n_q=n_q, codebook_size=network.config.codebook_size, gain=gain,
        model_hint=model_hint)
    device = next(network.parameters()).device
    encoder = StreamingEncoder(network, n_q)  # refuses a non-causal model before any output
    # An empty first block checks the channel layout and fixes the stream's batch size.
    encoder.push(items_from_channels(torch.zeros(channels, 0), network.config.channels).to(device))
    writer = PacketWriter(sink, header)
    held: list[torch.Tensor] = []
    samples = frames = 0
    for block in read_pcm(source, channels, network.hop_length):
        samples += block.shape[-1]
        items = items_from_channels(block * gain, network.config.channels).to(device)
        held.append(encoder.push(items).cpu())
        if sum(codes.shape[-1] for codes in held) >= packet_frames:
            frames += _write(writer.write_codes, held)
            held = []
    held.append(encoder.flush().cpu())
    frames += _write(lambda codes: writer.end(codes, samples), held)
    return EncodeSummary(samples, frames)


def _write(write, held: list[torch.Tensor]) -> int:
    codes = torch.cat(held, dim=-1).numpy().astype(np.uint16)
    write(codes)
    return codes.shape[-1]


@dataclass
class DecodeSummary:
    """What a decoded stream held: ``complete`` if it ended with its last packet, else
    ``problem`` says why it stopped and ``stopped_at`` after which byte."""
    samples: int
    frames: int
    clipped: int
    complete: bool
    problem: str | None = None
    stopped_at: int | None = None


def decode_pcm_stream(model: PretrainedModel, reader: PacketReader,
                      sink: BinaryIO) -> DecodeSummary:
    """Packets from ``reader`` -> PCM on ``sink``, each packet's audio as it arrives,
    up to the last whole packet of a stream that is cut off or damaged."""
    header = reader.header
    check_model(header, model)
    decoder = StreamingDecoder(model.network, model.coding.postfilter)
    device = next(model.network.parameters()).device
    written = clipped = 0

    def emit(audio: torch.Tensor) -> None:
        nonlocal written, clipped
        audio = channels_from_items(audio.float().cpu(), header.channels) / header.gain
        if reader.length is not None:  # the stream's end: cut the padding
            audio = audio[:, :max(reader.length - written, 0)]
        data, over = float_to_pcm(audio)
        sink.write(data)
        sink.flush()
        written, clipped = written + audio.shape[-1], clipped + over

    for codes in reader:
        # A packet may declare up to 65,535 frames; decoding them in pieces bounds the
        # memory a stream from anywhere can ask for.
        for start in range(0, codes.shape[-1], DECODE_FRAMES):
            piece = codes[..., start:start + DECODE_FRAMES].astype(np.int64)
            emit(decoder.push(torch.from_numpy(piece).to(device)))
    emit(decoder.flush())  # what waited for a frame after the last
    return DecodeSummary(written, reader.frames, clipped, reader.length is not None,
                         reader.problem, reader.stopped_at)
