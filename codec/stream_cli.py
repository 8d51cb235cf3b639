"""``codec stream-encode`` / ``codec stream-decode``: raw PCM through pipes, frame by frame.

    arecord -f S16_LE -r 24000 -c 1 -t raw | codec stream-encode --model M > talk.qcs
    codec stream-decode < talk.qcs | aplay -f S16_LE -r 24000 -c 1 -t raw

stream-encode reads interleaved signed 16-bit little-endian PCM from stdin, codes it
with a causal model's :class:`~codec.streaming.StreamingEncoder` and writes a packet
stream (``.qcs``, codec.bitstream) to stdout, one packet per frame as soon as the
frame's last sample has arrived. stream-decode turns packets back into PCM as they
arrive. The result equals offline coding with the same model; the latency is the
model's, one frame (hop), plus what the pipes buffer.

Rate: the PCM must be at the model's rate (resample before the pipe, e.g. with sox).
Level: a stream cannot be measured before it is coded, so instead of the offline
coder's loudness normalisation it takes one fixed gain, ``--gain-db`` (default 0 dB:
coded as it comes). The gain is recorded in the stream header and undone on decoding.
Set it so that speech sits near the level the model trained at (-23 LUFS by default).
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator

import numpy as np
import torch

from codec.bitstream import MAX_CHANNELS, PacketReader, PacketWriter, StreamHeader
from codec.compress import (
    _n_q,
    channels_from_items,
    check_model,
    items_from_channels,
    load_coding_model,
    model_id_of,
)
from codec.errors import CodecError
from codec.streaming import StreamingDecoder, StreamingEncoder

PCM_SCALE = 32768.0  # s16 full scale, as soundfile reads it
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


def encode_pcm_stream(model, source: BinaryIO, sink: BinaryIO, *, channels: int, n_q: int,
                      gain: float = 1.0, packet_frames: int = 1,
                      model_hint: str | None = None) -> EncodeSummary:
    """PCM from ``source`` -> a packet stream on ``sink``, a packet every ``packet_frames``
    frames, each written as soon as its last frame is coded."""
    header = StreamHeader(
        model_id=model_id_of(model), sample_rate=model.sample_rate,
        hop_length=model.hop_length, coded_channels=model.config.channels, channels=channels,
        n_q=n_q, codebook_size=model.config.codebook_size, gain=gain, model_hint=model_hint)
    device = next(model.parameters()).device
    encoder = StreamingEncoder(model, n_q)  # refuses a non-causal model before any output
    # An empty first block checks the channel layout and fixes the stream's batch size.
    encoder.push(items_from_channels(torch.zeros(channels, 0), model.config.channels).to(device))
    writer = PacketWriter(sink, header)
    held: list[torch.Tensor] = []
    samples = frames = 0
    for block in read_pcm(source, channels, model.hop_length):
        samples += block.shape[-1]
        items = items_from_channels(block * gain, model.config.channels).to(device)
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


def decode_pcm_stream(model, reader: PacketReader, sink: BinaryIO) -> DecodeSummary:
    """Packets from ``reader`` -> PCM on ``sink``, each packet's audio as it arrives,
    up to the last whole packet of a stream that is cut off or damaged."""
    header = reader.header
    check_model(header, model)
    decoder = StreamingDecoder(model)
    device = next(model.parameters()).device
    written = clipped = 0
    for codes in reader:
        audio = decoder.push(torch.from_numpy(codes.astype(np.int64)).to(device))
        audio = channels_from_items(audio.float().cpu(), header.channels) / header.gain
        if reader.length is not None:  # the last packet: cut the padding
            audio = audio[:, :reader.length - written]
        data, over = float_to_pcm(audio)
        sink.write(data)
        sink.flush()
        written, clipped = written + audio.shape[-1], clipped + over
    return DecodeSummary(written, reader.frames, clipped, reader.length is not None,
                         reader.problem, reader.stopped_at)


# ---------------------------------------------------------------------------
# Command line


def _binary_stdout() -> BinaryIO:
    if sys.stdout.isatty():
        raise CodecError("will not write binary data to a terminal; redirect stdout")
    return sys.stdout.buffer


def run_stream_encode(args: argparse.Namespace) -> int:
    if not 1 <= args.channels <= MAX_CHANNELS:
        raise CodecError(f"--channels must be 1 to {MAX_CHANNELS}, got {args.channels}")
    if args.packet_frames < 1:
        raise CodecError(f"--packet-frames must be at least 1, got {args.packet_frames}")
    model = load_coding_model(args.model, args.device)
    if args.rate is not None and args.rate != model.sample_rate:
        raise CodecError(f"--rate {args.rate}: this model codes {model.sample_rate} Hz PCM; "
                         f"resample before the pipe")
    sink = _binary_stdout()
    try:
        encode_pcm_stream(model, sys.stdin.buffer, sink, channels=args.channels,
                          n_q=_n_q(model, args), gain=10 ** (args.gain_db / 20),
                          packet_frames=args.packet_frames,
                          model_hint=str(Path(args.model).resolve()))
    except BrokenPipeError:
        raise CodecError("the reader of stdout went away") from None
    return 0


def run_stream_decode(args: argparse.Namespace) -> int:
    sink = _binary_stdout()
    reader = PacketReader(sys.stdin.buffer)
    path = args.model or reader.header.model_hint
    if not path:
        raise CodecError("no --model given, and the stream names none")
    try:
        summary = decode_pcm_stream(load_coding_model(path, args.device), reader, sink)
    except BrokenPipeError:
        raise CodecError("the reader of stdout went away") from None
    if summary.clipped:
        print(f"codec stream-decode: warning: {summary.clipped} samples beyond full scale "
              f"were clipped", file=sys.stderr)
    if not summary.complete:
        print(f"codec stream-decode: warning: {summary.problem}; decoded {summary.frames} "
              f"frames ({summary.samples} samples), up to byte {summary.stopped_at}",
              file=sys.stderr)
    return 2 if reader.damaged else 0


def register(subparsers: argparse._SubParsersAction) -> None:
    enc = subparsers.add_parser(
        "stream-encode", help="code raw PCM from stdin to a packet stream on stdout",
        description="Read interleaved s16le PCM at the model's rate from stdin and write "
                    "a packet stream to stdout, a packet as soon as each frame is coded. "
                    "Needs a causal model.")
    enc.add_argument("--model", required=True, help="run directory, checkpoint or model file")
    enc.add_argument("--rate", type=int, help="PCM sample rate; must be the model's "
                                              "(default: the model's)")
    enc.add_argument("--channels", type=int, default=1, help="PCM channels (default: 1)")
    rate = enc.add_mutually_exclusive_group()
    rate.add_argument("--kbps", type=float, help="largest bitrate to use (per channel)")
    rate.add_argument("--n-q", type=int, help="codebooks to use (default: all)")
    enc.add_argument("--gain-db", type=float, default=0.0,
                     help="fixed gain before coding, undone by decoding (default: 0)")
    enc.add_argument("--packet-frames", type=int, default=1,
                     help="frames per packet: more saves 7 bytes of framing per packet "
                          "and adds a frame of delay each (default: 1)")
    enc.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    enc.set_defaults(run=run_stream_encode)

    dec = subparsers.add_parser(
        "stream-decode", help="decode a packet stream from stdin to raw PCM on stdout",
        description="Read a packet stream from stdin and write interleaved s16le PCM at "
                    "the model's rate to stdout as packets arrive. A stream cut off "
                    "decodes up to its last whole packet, with a warning.")
    dec.add_argument("--model", help="the model that encoded the stream (default: the "
                                     "model path the stream names)")
    dec.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    dec.set_defaults(run=run_stream_decode)
