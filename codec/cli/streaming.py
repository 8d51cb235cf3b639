"""``codec stream-encode`` and ``codec stream-decode``: messages and exit codes around
``codec.pcm_stream``, which codes raw PCM from stdin to stdout frame by frame."""
from __future__ import annotations

import argparse
import sys
from typing import BinaryIO

from codec.cli.coding import _load, _n_q, add_rate_arguments
from codec.coding.bitstream import MAX_CHANNELS
from codec.errors import CodecError
from codec.model_name import find_stream_model, model_name


def _binary_stdout() -> BinaryIO:
    if sys.stdout.isatty():
        raise CodecError("will not write binary data to a terminal; redirect stdout")
    return sys.stdout.buffer


def run_stream_encode(args: argparse.Namespace) -> int:
    from codec.pcm_stream import encode_pcm_stream

    if not 1 <= args.channels <= MAX_CHANNELS:
        raise CodecError(f"--channels must be 1 to {MAX_CHANNELS}, got {args.channels}")
    if args.packet_frames < 1:
        raise CodecError(f"--packet-frames must be at least 1, got {args.packet_frames}")
    model = _load(args.model, args.device)
    if args.rate is not None and args.rate != model.sample_rate:
        raise CodecError(f"--rate {args.rate}: this model codes {model.sample_rate} Hz PCM; "
                         f"resample before the pipe")
    sink = _binary_stdout()
    try:
        encode_pcm_stream(model, sys.stdin.buffer, sink, channels=args.channels,
                          n_q=_n_q(model, args), gain=10 ** (args.gain_db / 20),
                          packet_frames=args.packet_frames,
                          model_hint=model_name(args.model))
    except BrokenPipeError:
        raise CodecError("the reader of stdout went away") from None
    return 0


def run_stream_decode(args: argparse.Namespace) -> int:
    from codec.coding.packets import PacketReader
    from codec.pcm_stream import decode_pcm_stream

    sink = _binary_stdout()
    reader = PacketReader(sys.stdin.buffer)
    path = args.model or find_stream_model(reader.header.model_hint)
    if not path:
        named = reader.header.model_hint
        raise CodecError(f"no --model given, and the model the stream names "
                         f"({named!r:.80}) is not in the current folder or its exp/; "
                         f"pass --model" if named else
                         "no --model given, and the stream names none")
    model = _load(path, args.device)
    if args.postfilter is not None:
        model = model.with_postfilter(args.postfilter)
    try:
        summary = decode_pcm_stream(model, reader, sink)
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
    add_rate_arguments(enc)
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
                                     "model the stream names, found in the current folder "
                                     "or its exp/)")
    dec.add_argument("--postfilter", type=float, metavar="EXPONENT",
                     help="decode through the live post-filter with this exponent, 1 for "
                          "none; it adds no delay (default: the model's "
                          "coding.postfilter)")
    dec.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    dec.set_defaults(run=run_stream_decode)
