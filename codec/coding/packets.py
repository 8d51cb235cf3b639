"""The packet stream (``.qcs``) that ``codec stream-encode`` writes for pipes: a header,
then packets written as their frames are coded, each with its own CRC-32, so that a
stream cut off anywhere decodes up to its last whole packet. Its layout is at
:class:`PacketWriter`; its header is checked as a ``.qca`` file's is (codec.coding.bitstream).
"""
from __future__ import annotations

import dataclasses
import json
import struct
import zlib
from dataclasses import dataclass
from typing import Any, BinaryIO, Iterator

import numpy as np

from codec.coding.bitstream import (
    _CRC,
    _JSON_PREFIX,
    _MODEL_LIMITS,
    MAGIC,
    BitstreamError,
    _check_field_names,
    _check_layout,
    _check_prefix_fields,
    _CodesLayout,
    _gain_field,
    _int_field,
    _model_hint_field,
    _model_id_field,
    pack_codes,
    packed_bytes,
    unpack_codes,
)

STREAM_MAGIC = b"\x89QCS"
STREAM_VERSION = 1
STREAM_SUFFIX = ".qcs"
MAX_PACKET_FRAMES = (1 << 16) - 1
MAX_PACKET_BYTES = 1 << 24
CODES_PACKET, LAST_PACKET = b"C", b"L"
_PACKET = struct.Struct("<cH")  # kind, frames
_LENGTH = struct.Struct("<Q")


@dataclass(frozen=True)
class StreamHeader(_CodesLayout):
    """What a packet stream says about itself: the fields of :class:`Header` that are
    known before the audio ends. The stream is at the model rate (``sample_rate``);
    ``gain`` was applied before encoding and is undone after decoding."""
    model_id: str
    sample_rate: int
    hop_length: int
    coded_channels: int
    channels: int
    n_q: int
    codebook_size: int
    gain: float
    model_hint: str | None = None

    def packet_bytes(self, frames: int) -> int:
        """Bytes of the codes of ``frames`` frames in a packet."""
        return packed_bytes(self.items * self.n_q * frames, self.bits_per_code)


def stream_header_from_dict(raw: Any) -> StreamHeader:
    """Check a stream header's fields as :func:`header_from_dict` does a file's."""
    _check_field_names(raw, StreamHeader)
    header = StreamHeader(
        model_id=_model_id_field(raw),
        **{name: _int_field(raw, name, *limits) for name, limits in _MODEL_LIMITS.items()},
        gain=_gain_field(raw), model_hint=_model_hint_field(raw))
    _check_layout(header)
    if header.packet_bytes(MAX_PACKET_FRAMES) > MAX_PACKET_BYTES:
        raise BitstreamError("header describes packets too large to read")
    return header


class PacketWriter:
    """Writes a packet stream to a binary file object, flushing after every write.

    Layout (integers little-endian)::

        0    4  magic b"\\x89QCS"
        4    1  stream format version (1)
        5    4  header length H, at most MAX_HEADER_BYTES
        9    H  header: UTF-8 JSON object, the fields of :class:`StreamHeader`
        9+H  4  CRC-32 of every byte before it

    then packets, each one as soon as its frames are coded::

        0    1  kind: b"C" codes, b"L" the last packet (codes, then the stream's length)
        1    2  F: frames in the packet (0 to 65535; 0 only in the last packet)
        3    8  last packet only: the stream's length in samples (cuts the padding)
        .    P  codes [items, n_q, F], bit-packed as in ``.qca``
        .    4  CRC-32 of the packet's bytes before it
    """

    def __init__(self, handle: BinaryIO, header: StreamHeader):
        stream_header_from_dict(dataclasses.asdict(header))  # never write what we cannot read
        self.handle, self.header = handle, header
        text = json.dumps(dataclasses.asdict(header), separators=(",", ":")).encode()
        self._write(_JSON_PREFIX.pack(STREAM_MAGIC, STREAM_VERSION, len(text)) + text)

    def write_codes(self, codes: np.ndarray) -> None:
        """Codes ``[items, n_q, F]``, in packets of at most MAX_PACKET_FRAMES frames."""
        self._check(codes)
        for start in range(0, codes.shape[-1], MAX_PACKET_FRAMES):
            piece = codes[..., start:start + MAX_PACKET_FRAMES]
            self._write(_PACKET.pack(CODES_PACKET, piece.shape[-1])
                        + pack_codes(piece, self.header.bits_per_code))

    def end(self, codes: np.ndarray, length: int) -> None:
        """The last codes ``[items, n_q, F]`` (F may be 0) and the stream's length in
        samples, which tells the decoder how much of the last frame is padding."""
        self._check(codes)
        split = max(0, codes.shape[-1] - MAX_PACKET_FRAMES)
        self.write_codes(codes[..., :split])
        piece = codes[..., split:]
        self._write(_PACKET.pack(LAST_PACKET, piece.shape[-1]) + _LENGTH.pack(length)
                    + pack_codes(piece, self.header.bits_per_code))

    def _check(self, codes: np.ndarray) -> None:
        expected = (self.header.items, self.header.n_q)
        if codes.ndim != 3 or tuple(codes.shape[:2]) != expected:
            raise ValueError(f"codes of shape {codes.shape}; this stream takes "
                             f"[{expected[0]}, {expected[1]}, frames]")

    def _write(self, body: bytes) -> None:
        self.handle.write(body + _CRC.pack(zlib.crc32(body)))
        self.handle.flush()


class PacketReader:
    """Reads a packet stream from a binary file object as it arrives.

    The header must be whole and sound (BitstreamError if not). Iterating yields the
    codes ``[items, n_q, F]`` (uint16) of each packet in turn, and stops after the last
    packet, or at the first packet that is cut off or damaged. Then ``length`` holds
    the stream's length in samples if it ended properly; otherwise ``problem`` says
    what went wrong and ``stopped_at`` the byte where the last whole packet ended.
    """

    def __init__(self, handle: BinaryIO):
        self.handle = handle
        self.offset = 0  # bytes read
        self.frames = 0  # frames in the whole packets read
        self.length: int | None = None
        self.problem: str | None = None
        self.damaged = False  # a packet failed its check (not merely cut off)
        self.stopped_at: int | None = None
        self.header = self._read_header()

    def __iter__(self) -> Iterator[np.ndarray]:
        while self.length is None and self.problem is None:
            codes = self._next_packet()
            if codes is not None:
                yield codes

    def _read(self, size: int) -> bytes:
        """Up to ``size`` bytes: fewer only at the end of the stream."""
        chunks, got = [], 0
        while got < size:
            chunk = self.handle.read(size - got)
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
        self.offset += got
        return b"".join(chunks)

    def _read_header(self) -> StreamHeader:
        prefix = self._read(_JSON_PREFIX.size)
        if prefix[:len(MAGIC)] == MAGIC[:len(prefix)] and prefix:
            raise BitstreamError("a .qca file, not a packet stream: decode it with codec decode")
        if prefix[:len(STREAM_MAGIC)] != STREAM_MAGIC[:len(prefix)] or not prefix:
            raise BitstreamError("not a packet stream (wrong magic bytes)")
        if len(prefix) < _JSON_PREFIX.size:
            raise BitstreamError(f"stream cut off in its prefix ({len(prefix)} bytes)")
        _, version, size = _JSON_PREFIX.unpack(prefix)
        _check_prefix_fields(version, size, STREAM_VERSION)
        text, check = self._read(size), self._read(_CRC.size)
        if len(check) < _CRC.size:
            raise BitstreamError(f"stream cut off in its header (at byte {self.offset})")
        if zlib.crc32(prefix + text) != _CRC.unpack(check)[0]:
            raise BitstreamError("bad checksum (the stream header is damaged)")
        try:
            raw = json.loads(text.decode("utf-8"))
        # ValueError also covers an integer too long to convert (Python's digit limit).
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise BitstreamError("stream header is not valid JSON") from None
        return stream_header_from_dict(raw)

    def _stop(self, start: int, problem: str, damaged: bool = False) -> None:
        self.stopped_at, self.problem, self.damaged = start, problem, damaged

    def _next_packet(self) -> np.ndarray | None:
        start = self.offset
        head = self._read(_PACKET.size)
        if not head:
            self._stop(start, f"the stream ends at byte {start} without its last packet")
            return None
        kind, frames = _PACKET.unpack(head) if len(head) == _PACKET.size else (None, 0)
        if kind is not None and kind not in (CODES_PACKET, LAST_PACKET):
            self._stop(start, f"unknown packet kind {kind!r} at byte {start}", damaged=True)
            return None
        extra = self._read(_LENGTH.size) if kind == LAST_PACKET else b""
        body = self._read(self.header.packet_bytes(frames))
        check = self._read(_CRC.size)
        if kind is None or len(check) < _CRC.size:
            self._stop(start, f"the stream is cut off at byte {self.offset}, inside the "
                              f"packet that starts at byte {start}")
            return None
        if zlib.crc32(head + extra + body) != _CRC.unpack(check)[0]:
            self._stop(start, f"bad checksum in the packet at byte {start}", damaged=True)
            return None
        if kind == LAST_PACKET and not self._finish(start, frames, _LENGTH.unpack(extra)[0]):
            return None
        self.frames += frames
        codes = unpack_codes(body, self.header.items * self.header.n_q * frames,
                             self.header.bits_per_code)
        return codes.reshape(self.header.items, self.header.n_q, frames)

    def _finish(self, start: int, frames: int, length: int) -> bool:
        """Take the stream's length from its last packet, if the frames can hold it."""
        total, hop = self.frames + frames, self.header.hop_length
        if not (total - 1) * hop < length <= total * hop:
            self._stop(start, f"the last packet gives a length of {length} samples, which "
                              f"{total} frames cannot hold", damaged=True)
            return False
        self.length = length
        return True
