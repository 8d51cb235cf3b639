"""The compressed file container (``.qca``): versioned, checksummed, pickle-free.

Layout (integers little-endian)::

    offset  size  field
    0       4     magic  b"\\x89QCA"  (a non-ASCII first byte: no text file starts so)
    4       1     format version (2)
    5       2     header length H
    7       H     header: the fields of :class:`Header`, packed (codec.coding.binary_header)
    7+H     P     payload: P = header.payload_bytes
    7+H+P   4     CRC-32 (zlib) of every byte before it

A one-second file at 6 kbps thus carries about 40-90 bytes besides its payload (prefix,
header and checksum), where format 1 carried 300-640.

Format 1 files, which this toolkit wrote before, still read: there the header length
takes 4 bytes and the header is a UTF-8 JSON object of the same fields.

The payload holds codes ``[items, n_q, frames]`` in that (C) order, either
bit-packed at ``log2(codebook_size)`` bits each, most significant bit first,
or, when ``header.entropy`` is set, as one range-coded stream (codec.coding.entropy);
then, when ``header.band_levels`` is set, the range-coded band levels
(codec.coding.band_levels), ``header.band_levels["bytes"]`` of them.

``codec stream-encode`` writes a second form, a packet stream (``.qcs``), for pipes:
codec.coding.packets, which shares this module's header checks.

A file from anywhere may be hostile: every header field is type- and
range-checked, and the payload size is checked against the frame count,
before anything is allocated from them. All problems raise
:class:`BitstreamError` with a message that says what is wrong.
"""
from __future__ import annotations

import dataclasses
import json
import math
import re
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from codec.coding import binary_header
from codec.errors import CodecError, require_regular_file

MAGIC = b"\x89QCA"
VERSION = 2
JSON_VERSION = 1  # the first format: the same fields as a JSON object
SUFFIX = ".qca"
MAX_HEADER_BYTES = (1 << 16) - 1
MAX_HINT_BYTES = 4096
MAX_LEVEL_BANDS = 64  # codec.coding.band_levels's limit
MAX_SAMPLE_RATE = 768_000
MAX_CHANNELS = 64
MAX_N_Q = 64
MAX_CODEBOOK_SIZE = 1 << 16
MAX_HOP = 1 << 20
# About 88 days at 768 kHz; far beyond any real file, small enough to keep integers sane.
MAX_LENGTH = 1 << 42
# Encoding brings audio to a training loudness; real gains lie within about +-50 dB.
# Far outside, dividing by the gain on decoding would give infinities or silence.
MIN_GAIN = 1e-12
MAX_GAIN = 1e12
_PREFIX = struct.Struct("<4sBH")  # magic, version, header length
_JSON_PREFIX = struct.Struct("<4sBI")  # format 1's
_CRC = struct.Struct("<I")
_MODEL_ID = re.compile(r"^[0-9a-f]{1,64}$")
# Codes are packed in runs of this many (a multiple of 8, so each run ends on a byte).
_PACK_RUN = 1 << 20


class BitstreamError(CodecError):
    """A compressed file that cannot be decoded: truncated, damaged, foreign or too new."""


class _CodesLayout:
    """What a header with ``codebook_size``, ``channels`` and ``coded_channels`` implies."""
    codebook_size: int
    channels: int
    coded_channels: int

    @property
    def bits_per_code(self) -> int:
        return self.codebook_size.bit_length() - 1

    @property
    def items(self) -> int:
        """Independent code streams: one per channel for a mono model, else one."""
        return self.channels if self.coded_channels == 1 else 1


@dataclass(frozen=True)
class Header(_CodesLayout):
    """What a compressed file says about itself.

    ``channels``/``length``/``source_rate`` describe the original audio;
    ``coded_channels``/``sample_rate``/``hop_length`` the model that coded it.
    A mono model codes each original channel as its own item; otherwise one item
    holds all channels. ``gain`` was applied before encoding and is undone after
    decoding. ``chunk_frames``/``context_frames`` record how the encoder was run
    (each frame is stored once). ``entropy`` is None for bit-packed codes, else
    ``{"tables_id": ...}`` naming the frequency tables of the range coder.
    ``band_levels`` is None, or how the payload's last ``bytes`` bytes code the input's
    band levels (codec/coding/band_levels.py): ``bands``, ``frames`` per level, ``step_db``,
    ``floor_db``, each band's coding spread, ``scales``, and when the spans at the floor
    are flagged, ``silence_db`` and the flags' ``silent_share``.
    ``model_hint`` is the name of the model that wrote the file
    (:func:`codec.model_name.model_name`: run folder or file name, never a path of
    the machine), which ``codec decode`` looks for when no ``--model`` is given.
    Files from earlier versions may hold an absolute path there; they still read.
    """
    model_id: str
    sample_rate: int
    hop_length: int
    coded_channels: int
    source_rate: int
    channels: int
    length: int
    n_q: int
    codebook_size: int
    frames: int
    gain: float
    chunk_frames: int
    context_frames: int
    payload_bytes: int
    entropy: dict | None = None
    model_hint: str | None = None
    band_levels: dict | None = None

    @property
    def level_bytes(self) -> int:
        return 0 if self.band_levels is None else self.band_levels["bytes"]

    @property
    def codes_bytes(self) -> int:
        return self.payload_bytes - self.level_bytes

    @property
    def num_codes(self) -> int:
        return self.items * self.n_q * self.frames

    @property
    def model_length(self) -> int:
        """Samples at the model rate (what resampling ``length`` samples yields)."""
        return model_length(self.length, self.source_rate, self.sample_rate)

    @property
    def duration(self) -> float:
        return self.length / self.source_rate

    @property
    def nominal_bps(self) -> float:
        """Bits per second of the bit-packed codes of all items."""
        return self.items * self.n_q * self.bits_per_code * self.sample_rate / self.hop_length


def model_length(length: int, source_rate: int, sample_rate: int) -> int:
    """Samples after resampling ``length`` samples (torchaudio rounds up)."""
    return -(-length * sample_rate // source_rate)


def frame_count(length: int, source_rate: int, sample_rate: int, hop_length: int) -> int:
    return -(-model_length(length, source_rate, sample_rate) // hop_length)


def packed_bytes(num_codes: int, bits: int) -> int:
    return -(-num_codes * bits // 8)


# ---------------------------------------------------------------------------
# Bit packing


def pack_codes(codes: np.ndarray, bits: int) -> bytes:
    """Integer codes (any shape, each < 2**bits, bits <= 16) -> bytes, ``bits`` per code,
    most significant bit first. Vectorised: each code becomes 16 bits by numpy, and
    the top ``16 - bits`` (always zero) are dropped before repacking."""
    flat = np.ascontiguousarray(codes, dtype=np.int64).reshape(-1)
    if flat.size and (flat.min() < 0 or flat.max() >= 1 << bits):
        raise ValueError(f"codes must lie in [0, {1 << bits}) to pack at {bits} bits")
    out = []
    for start in range(0, flat.size, _PACK_RUN):
        run = flat[start:start + _PACK_RUN].astype(">u2")
        bit_rows = np.unpackbits(run.view(np.uint8)).reshape(-1, 16)[:, 16 - bits:]
        out.append(np.packbits(bit_rows.reshape(-1)).tobytes())
    return b"".join(out)


def unpack_codes(data: bytes, num_codes: int, bits: int) -> np.ndarray:
    """Inverse of :func:`pack_codes`: ``num_codes`` codes as a flat uint16 array."""
    if len(data) != packed_bytes(num_codes, bits):
        raise BitstreamError(f"payload holds {len(data)} bytes; {num_codes} codes of {bits} "
                             f"bits need {packed_bytes(num_codes, bits)}")
    buffer = np.frombuffer(data, dtype=np.uint8)
    codes = np.empty(num_codes, dtype=np.uint16)
    run_bytes = _PACK_RUN * bits // 8
    for index, start in enumerate(range(0, num_codes, _PACK_RUN)):
        count = min(_PACK_RUN, num_codes - start)
        chunk = buffer[index * run_bytes:index * run_bytes + packed_bytes(count, bits)]
        bit_rows = np.unpackbits(chunk)[:count * bits].reshape(count, bits)
        wide = np.zeros((count, 16), dtype=np.uint8)
        wide[:, 16 - bits:] = bit_rows
        codes[start:start + count] = np.packbits(wide, axis=1).view(">u2").reshape(-1)
    return codes


# ---------------------------------------------------------------------------
# Header validation


def _int_field(raw: dict, name: str, low: int, high: int) -> int:
    value = raw[name]
    if isinstance(value, bool) or not isinstance(value, int):
        raise BitstreamError(f"header field {name!r} must be an integer, got {value!r:.40}")
    if not low <= value <= high:
        raise BitstreamError(f"header field {name!r} = {value} is outside [{low}, {high}]")
    return value


# The ranges of the integer fields that both headers have.
_MODEL_LIMITS = {"sample_rate": (1, MAX_SAMPLE_RATE), "hop_length": (1, MAX_HOP),
                 "coded_channels": (1, MAX_CHANNELS), "channels": (1, MAX_CHANNELS),
                 "n_q": (1, MAX_N_Q), "codebook_size": (2, MAX_CODEBOOK_SIZE)}


def _model_id_field(raw: dict) -> str:
    model_id = raw["model_id"]
    if not isinstance(model_id, str) or not _MODEL_ID.match(model_id):
        raise BitstreamError(f"header field 'model_id' is not a hex id: {model_id!r:.80}")
    return model_id


def _gain_field(raw: dict) -> float:
    gain = raw["gain"]
    if (isinstance(gain, bool) or not isinstance(gain, (int, float)) or not math.isfinite(gain)
            or not MIN_GAIN <= gain <= MAX_GAIN):
        raise BitstreamError(f"header field 'gain' must be a number in [{MIN_GAIN:g}, "
                             f"{MAX_GAIN:g}], got {gain!r:.40}")
    return float(gain)


def _model_hint_field(raw: dict) -> str | None:
    hint = raw.get("model_hint")
    if hint is not None and (not isinstance(hint, str) or len(hint) > MAX_HINT_BYTES):
        raise BitstreamError("header field 'model_hint' must be a path string")
    return hint


def _check_field_names(raw: Any, cls: type) -> None:
    if not isinstance(raw, dict):
        raise BitstreamError("header is not a JSON object")
    names = [f.name for f in dataclasses.fields(cls)]
    required = [f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING]
    missing = [n for n in required if n not in raw]
    unknown = sorted(set(raw) - set(names))
    if missing or unknown:
        raise BitstreamError(f"header fields missing {missing} / unknown {unknown}")


def header_from_dict(raw: Any) -> Header:
    """Check every field's type and range, and their consistency; BitstreamError if not."""
    _check_field_names(raw, Header)
    values = dict(
        model_id=_model_id_field(raw),
        **{name: _int_field(raw, name, *limits) for name, limits in _MODEL_LIMITS.items()},
        source_rate=_int_field(raw, "source_rate", 1, MAX_SAMPLE_RATE),
        length=_int_field(raw, "length", 1, MAX_LENGTH),
        frames=_int_field(raw, "frames", 1, MAX_LENGTH),
        chunk_frames=_int_field(raw, "chunk_frames", 1, MAX_LENGTH),
        context_frames=_int_field(raw, "context_frames", 0, MAX_LENGTH),
        payload_bytes=_int_field(raw, "payload_bytes", 0, MAX_LENGTH),
    )
    values["gain"] = _gain_field(raw)
    values["entropy"] = _check_entropy(raw.get("entropy"))
    values["model_hint"] = _model_hint_field(raw)
    values["band_levels"] = _check_band_levels(raw.get("band_levels"))
    header = Header(**values)
    _check_consistency(header)
    return header


def _check_entropy(entropy: Any) -> dict | None:
    if entropy is None:
        return None
    if (not isinstance(entropy, dict) or set(entropy) != {"tables_id"}
            or not isinstance(entropy["tables_id"], str)
            or not _MODEL_ID.match(entropy["tables_id"])):
        raise BitstreamError("header field 'entropy' must be null or {\"tables_id\": hex id}")
    return dict(entropy)


_LEVEL_FIELDS = {"bands", "frames", "step_db", "floor_db", "scales", "bytes"}
_SILENCE_FIELDS = {"silence_db", "silent_share"}


def _number(value: Any, low: float, high: float) -> bool:
    return (not isinstance(value, bool) and isinstance(value, (int, float))
            and math.isfinite(value) and low <= value <= high)


def _check_band_levels(levels: Any) -> dict | None:
    if levels is None:
        return None
    if not isinstance(levels, dict) or set(levels) not in (_LEVEL_FIELDS,
                                                           _LEVEL_FIELDS | _SILENCE_FIELDS):
        raise BitstreamError(f"header field 'band_levels' must be null or an object with "
                             f"{sorted(_LEVEL_FIELDS)}, and optionally {sorted(_SILENCE_FIELDS)}")
    bands = _int_field(levels, "bands", 1, MAX_LEVEL_BANDS)
    _int_field(levels, "frames", 1, 1024)
    checks = {"bytes": _int_field(levels, "bytes", 0, MAX_LENGTH) % 4 == 0,
              "step_db": _number(levels["step_db"], 0.1, 24),
              "floor_db": _number(levels["floor_db"], -400, 100),
              "silence_db": "silence_db" not in levels or _number(levels["silence_db"], -500, 100),
              "silent_share": "silent_share" not in levels
              or _number(levels["silent_share"], 0.01, 0.99),  # band_levels.MIN_SHARE
              "scales": isinstance(levels["scales"], list) and len(levels["scales"]) == bands
              and all(_number(s, 0.01, 100) for s in levels["scales"])}
    wrong = [name for name, ok in checks.items() if not ok]
    if wrong:
        raise BitstreamError(f"header field 'band_levels' has bad {wrong}")
    return dict(levels)


def _check_layout(header: _CodesLayout) -> None:
    size = header.codebook_size
    if size & (size - 1):
        raise BitstreamError(f"header field 'codebook_size' = {size} is not a power of two")
    if header.coded_channels not in (1, header.channels) and header.channels != 1:
        raise BitstreamError(f"header says {header.channels} channels coded by a "
                             f"{header.coded_channels}-channel model, which cannot be")


def _check_consistency(header: Header) -> None:
    _check_layout(header)
    expected = frame_count(header.length, header.source_rate, header.sample_rate,
                           header.hop_length)
    if header.frames != expected:
        raise BitstreamError(f"header says {header.frames} frames; {header.length} samples "
                             f"at {header.source_rate} Hz make {expected}")
    if header.level_bytes > header.payload_bytes:
        raise BitstreamError(f"header says {header.level_bytes} bytes of band levels in a "
                             f"payload of {header.payload_bytes}")
    if header.entropy is None:
        need = packed_bytes(header.num_codes, header.bits_per_code)
        if header.codes_bytes != need:
            raise BitstreamError(f"header says {header.codes_bytes} payload bytes for codes; "
                                 f"{header.num_codes} codes of {header.bits_per_code} bits "
                                 f"need {need}")
    elif header.codes_bytes % 4:
        raise BitstreamError("an entropy-coded payload must be whole 32-bit words")


# ---------------------------------------------------------------------------
# Writing and reading


def to_bytes(header: Header, payload: bytes) -> bytes:
    """The complete file: prefix, packed header, payload, CRC-32."""
    if len(payload) != header.payload_bytes:
        raise ValueError(f"payload has {len(payload)} bytes, header says "
                         f"{header.payload_bytes}")
    fields = dataclasses.asdict(header)
    header_from_dict(fields)  # never write what we would refuse to read
    packed = binary_header.pack(fields)
    if len(packed) > MAX_HEADER_BYTES:
        raise ValueError(f"header of {len(packed)} bytes exceeds {MAX_HEADER_BYTES}")
    body = _PREFIX.pack(MAGIC, VERSION, len(packed)) + packed + payload
    return body + _CRC.pack(zlib.crc32(body))


def _read_prefix(data: bytes) -> tuple[int, int, int]:
    """Check magic and version: (version, prefix size, header length)."""
    if data[:len(MAGIC)] != MAGIC[:len(data)]:
        raise BitstreamError("not a compressed audio file (wrong magic bytes)")
    if len(data) <= len(MAGIC):
        raise BitstreamError(f"truncated ({len(data)} bytes, shorter than the file prefix)")
    prefix = _JSON_PREFIX if data[len(MAGIC)] == JSON_VERSION else _PREFIX
    if len(data) < prefix.size:
        raise BitstreamError(f"truncated ({len(data)} bytes, shorter than the file prefix)")
    _, version, header_bytes = prefix.unpack_from(data)
    _check_prefix_fields(version, header_bytes, JSON_VERSION if version == JSON_VERSION
                         else VERSION)
    return version, prefix.size, header_bytes


def _check_prefix_fields(version: int, header_bytes: int, expected_version: int) -> None:
    """The version and header length of a file's or a stream's prefix, before any of the
    header is read or allocated."""
    if version != expected_version:
        raise BitstreamError(f"unknown format version {version} (this toolkit reads "
                             f"version {expected_version}; a newer toolkit may read it)")
    if header_bytes > MAX_HEADER_BYTES:
        raise BitstreamError(f"header length {header_bytes} exceeds the limit of "
                             f"{MAX_HEADER_BYTES} bytes")


def _checksum_ok(data: bytes) -> bool:
    return len(data) >= _CRC.size and \
        zlib.crc32(data[:-_CRC.size]) == _CRC.unpack_from(data, len(data) - _CRC.size)[0]


def _json_fields(text: bytes) -> Any:
    try:
        return json.loads(text.decode("utf-8"))
    # ValueError also covers an integer too long to convert (Python's digit limit).
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise BitstreamError("header is not valid JSON") from None


def _packed_fields(packed: bytes) -> dict:
    try:
        fields = binary_header.unpack(packed, max_hint_bytes=MAX_HINT_BYTES,
                                      max_bands=MAX_LEVEL_BANDS)
    except ValueError as error:
        raise BitstreamError(f"damaged header: {error}") from None
    rates = (fields["length"], fields["source_rate"], fields["sample_rate"],
             fields["hop_length"])
    # A rate or length out of range is named by the checks; no frame count follows from it.
    in_range = all(1 <= value <= MAX_LENGTH for value in rates)
    fields["frames"] = frame_count(*rates) if in_range else 0
    return fields


def _header_fields(data: bytes, version: int, start: int, header_bytes: int) -> Any:
    """The raw fields of the header (unchecked), or BitstreamError when they cannot be read;
    damage found only by the checksum is named as such."""
    text = data[start:start + header_bytes]
    try:
        return _json_fields(text) if version == JSON_VERSION else _packed_fields(text)
    except BitstreamError:
        if not _checksum_ok(data):
            raise BitstreamError("bad checksum (the header is damaged)") from None
        raise


def parse(data: bytes) -> tuple[Header, bytes]:
    """A whole file's bytes -> (checked header, payload bytes); BitstreamError if bad."""
    version, start, header_bytes = _read_prefix(data)
    if len(data) < start + header_bytes + _CRC.size:
        raise BitstreamError(f"truncated ({len(data)} bytes; the header alone needs "
                             f"{start + header_bytes + _CRC.size})")
    raw = _header_fields(data, version, start, header_bytes)
    payload_bytes = raw.get("payload_bytes") if isinstance(raw, dict) else None
    if isinstance(payload_bytes, int) and not isinstance(payload_bytes, bool):
        expected = start + header_bytes + payload_bytes + _CRC.size
        if len(data) < expected:
            raise BitstreamError(f"truncated ({len(data)} bytes of {expected})")
    if not _checksum_ok(data):
        raise BitstreamError("bad checksum (the file is damaged)")
    header = header_from_dict(raw)
    payload_start = start + header_bytes
    if len(data) != payload_start + header.payload_bytes + _CRC.size:
        raise BitstreamError(f"{len(data)} bytes, but the header describes "
                             f"{payload_start + header.payload_bytes + _CRC.size}")
    return header, data[payload_start:payload_start + header.payload_bytes]


def file_version(data: bytes) -> int:
    """The format version of a file that :func:`parse` accepts."""
    return data[len(MAGIC)]


def read_file(path: str | Path) -> tuple[Header, bytes]:
    """Parse a compressed file; errors name the file."""
    path = Path(path)
    try:
        require_regular_file(path)
        data = path.read_bytes()
    except CodecError as error:
        raise BitstreamError(str(error)) from None
    except OSError as error:
        raise BitstreamError(f"{path}: cannot read ({error.strerror or error})") from None
    try:
        return parse(data)
    except BitstreamError as error:
        raise BitstreamError(f"{path}: {error}") from None


def describe(path: str | Path) -> dict:
    """What ``codec info FILE`` prints: model, audio, and rates nominal and actual."""
    path = Path(path)
    header, payload = read_file(path)
    file_bytes = path.stat().st_size
    with open(path, "rb") as file:
        version = file_version(file.read(len(MAGIC) + 1))
    nominal_bits = header.num_codes * header.bits_per_code
    result = {
        "file": str(path),
        "format_version": version,
        "model_id": header.model_id,
        "model_hint": header.model_hint,
        "sample_rate": header.source_rate,
        "model_sample_rate": header.sample_rate,
        "channels": header.channels,
        "duration_seconds": round(header.duration, 6),
        "samples": header.length,
        "codebooks_used": header.n_q,
        "codebook_size": header.codebook_size,
        "frames": header.frames,
        "gain_db": round(20 * math.log10(header.gain), 3),
        "entropy_coded": header.entropy is not None,
        "nominal_kbps": round(header.nominal_bps / 1000, 4),
        "file_bytes": file_bytes,
        "overhead_bytes": file_bytes - header.payload_bytes,
        "file_kbps": round(file_bytes * 8 / header.duration / 1000, 4),
    }
    if header.entropy is not None:
        result["payload_saving_percent"] = round(
            100 * (1 - header.codes_bytes * 8 / nominal_bits), 2)
    if header.band_levels is not None:
        result["band_levels"] = header.band_levels["bands"]
        result["band_levels_kbps"] = round(header.level_bytes * 8 / header.duration / 1000, 4)
    return result
