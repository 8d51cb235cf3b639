"""The binary header of ``.qca`` format 2: format 1's JSON fields, packed.

A one-second file at 6 kbps holds 750 bytes of codes, and format 1's JSON header cost
300-640 bytes beside them (a "6 kbps" second was a 9.3 kbps file). Here each field costs
what it carries:

- every integer is an unsigned LEB128 varint (one byte below 128, two below 16,384);
- the model id and the entropy tables' id are their 8 bytes (16 hex digits as text);
- each band's level spread is one byte, the index of the nearest of :data:`SPREADS`
  (1/25 octave apart; the encoder codes with exactly that value);
- the silent share, which the encoder rounds to thousandths, is an integer in thousandths;
- the other real numbers (gain, level step, floor and silence threshold) are "compact
  reals": a varint that holds a whole number of thousandths, else a float32, else a
  float64, whichever holds the value exactly, so they read back as the encoder's numbers
  (a gain the encoder rounds to float32 takes 5 bytes, a step of 1.5 dB two);
- what follows from other fields is not stored: the frame count (from the length and the
  rates) and the codebook size (stored as its base-2 logarithm).

Layout, in order::

    8 bytes   model id
    1 byte    flags: 1 entropy-coded, 2 band levels, 4 model name, 8 silence flags
    varints   sample_rate hop_length coded_channels source_rate channels length n_q
              log2(codebook_size) chunk_frames context_frames payload_bytes
    real      gain
    [1]       8 bytes: entropy tables id
    [4]       varint byte count, then the model name in UTF-8
    [2]       varints bands, frames; reals step_db, floor_db; a byte per band: its
              spread's index in SPREADS; varint bytes
    [8]       real silence_db; varint silent share in thousandths

:func:`unpack` returns the same dictionary a format-1 JSON header holds, less
``frames``, and raises ValueError for bytes that cannot be such a header; the
container (codec.coding.bitstream) then checks every field as it does format 1's.
"""
from __future__ import annotations

import math
import struct

_FLAG_ENTROPY, _FLAG_LEVELS, _FLAG_HINT, _FLAG_SILENCE = 1, 2, 4, 8
_INTEGERS = ("sample_rate", "hop_length", "coded_channels", "source_rate", "channels",
             "length", "n_q", "codebook_bits", "chunk_frames", "context_frames",
             "payload_bytes")
_ID_BYTES = 8
_FLOAT32, _FLOAT64 = struct.Struct("<f"), struct.Struct("<d")
# The tag in a compact real's varint's two low bits.
_THOUSANDTHS, _TAG_FLOAT32, _TAG_FLOAT64 = 0, 1, 2
# The level spreads a header can hold: 0.05 to 49.7 steps, 1/25 octave (2.8%) apart, far
# finer than a file's spread is measured; rounded so every machine builds the same list.
SPREADS = tuple(round(0.05 * 2 ** (index / 25), 3) for index in range(250))  # see nearest_spread
# Ten varint bytes hold 70 bits, beyond every field's limit; more is damage.
_MAX_VARINT_BYTES = 10


# ---------------------------------------------------------------------------
# Writing


def _varint(value: int) -> bytes:
    if value < 0:
        raise ValueError(f"cannot store {value} as an unsigned varint")
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _thousandths(value: float) -> bytes:
    return _varint(round(value * 1000))


def _zigzag(value: int) -> int:
    return 2 * value if value >= 0 else -2 * value - 1


def _real(value: float) -> bytes:
    """The shortest exact form of ``value`` (see the module's docstring)."""
    whole = round(value * 1000) if math.isfinite(value) else None
    if whole is not None and whole / 1000 == value and abs(whole) < 1 << 60:
        return _varint(_zigzag(whole) << 2 | _THOUSANDTHS)
    if _FLOAT32.unpack(_FLOAT32.pack(value))[0] == value:
        return _varint(_TAG_FLOAT32) + _FLOAT32.pack(value)
    return _varint(_TAG_FLOAT64) + _FLOAT64.pack(value)


def nearest_spread(value: float) -> float:
    """The member of :data:`SPREADS` nearest ``value`` on a log scale (values beyond the
    ends take the end)."""
    steps = 25 * math.log2(max(value, SPREADS[0]) / 0.05)
    return SPREADS[min(round(steps), len(SPREADS) - 1)]


def _spread_index(value: float) -> int:
    try:
        return SPREADS.index(value)
    except ValueError:
        raise ValueError(f"level spread {value} is not one of SPREADS") from None


def _hex_id(text: str) -> bytes:
    raw = bytes.fromhex(text)
    if len(raw) != _ID_BYTES:
        raise ValueError(f"an id of {len(raw)} bytes; format 2 stores {_ID_BYTES}")
    return raw


def pack(fields: dict) -> bytes:
    """A checked header's fields (as ``dataclasses.asdict`` gives them) -> header bytes."""
    entropy, hint, levels = fields["entropy"], fields["model_hint"], fields["band_levels"]
    silence = levels is not None and "silence_db" in levels
    flags = ((_FLAG_ENTROPY if entropy else 0) | (_FLAG_LEVELS if levels else 0)
             | (_FLAG_HINT if hint is not None else 0) | (_FLAG_SILENCE if silence else 0))
    integers = {**fields, "codebook_bits": fields["codebook_size"].bit_length() - 1}
    out = [_hex_id(fields["model_id"]), bytes([flags])]
    out += [_varint(integers[name]) for name in _INTEGERS]
    out.append(_real(fields["gain"]))
    if entropy:
        out.append(_hex_id(entropy["tables_id"]))
    if hint is not None:
        text = hint.encode("utf-8")
        out += [_varint(len(text)), text]
    if levels:
        out += [_varint(levels["bands"]), _varint(levels["frames"]),
                _real(levels["step_db"]), _real(levels["floor_db"]),
                bytes(_spread_index(scale) for scale in levels["scales"]),
                _varint(levels["bytes"])]
    if silence:
        out += [_real(levels["silence_db"]), _thousandths(levels["silent_share"])]
    return b"".join(out)


# ---------------------------------------------------------------------------
# Reading


class _Reader:
    """Reads fields off the header's bytes; ValueError at the first that is not there."""

    def __init__(self, data: bytes):
        self.data, self.position = data, 0

    def take(self, count: int) -> bytes:
        if self.position + count > len(self.data):
            raise ValueError(f"header ends at byte {len(self.data)}, inside a field")
        piece = self.data[self.position:self.position + count]
        self.position += count
        return piece

    def varint(self) -> int:
        value = 0
        for shift in range(0, 7 * _MAX_VARINT_BYTES, 7):
            byte = self.take(1)[0]
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
        raise ValueError(f"a varint longer than {_MAX_VARINT_BYTES} bytes")

    def real(self) -> float:
        tagged = self.varint()
        if tagged & 3 == _THOUSANDTHS:
            half, negative = divmod(tagged >> 2, 2)
            return (-half - 1 if negative else half) / 1000
        if tagged == _TAG_FLOAT32:
            return _FLOAT32.unpack(self.take(_FLOAT32.size))[0]
        if tagged == _TAG_FLOAT64:
            return _FLOAT64.unpack(self.take(_FLOAT64.size))[0]
        raise ValueError(f"unknown number form {tagged}")

    def spread(self) -> float:
        index = self.take(1)[0]
        if index >= len(SPREADS):
            raise ValueError(f"level spread index {index} (at most {len(SPREADS) - 1})")
        return SPREADS[index]

    def hex_id(self) -> str:
        return self.take(_ID_BYTES).hex()

    def text(self, limit: int) -> str:
        count = self.varint()
        if count > limit:
            raise ValueError(f"a model name of {count} bytes (at most {limit})")
        try:
            return self.take(count).decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError("the model name is not UTF-8") from None


def _band_levels(reader: _Reader, silence: bool, max_bands: int) -> dict:
    levels = {"bands": reader.varint(), "frames": reader.varint(),
              "step_db": reader.real(), "floor_db": reader.real()}
    if levels["bands"] > max_bands:
        raise ValueError(f"{levels['bands']} level bands (at most {max_bands})")
    levels["scales"] = [reader.spread() for _ in range(levels["bands"])]
    levels["bytes"] = reader.varint()
    if silence:
        levels["silence_db"] = reader.real()
        levels["silent_share"] = reader.varint() / 1000
    return levels


def unpack(data: bytes, *, max_hint_bytes: int, max_bands: int) -> dict:
    """Header bytes -> the fields of a format-1 header, less ``frames`` (unchecked);
    ValueError when the bytes are too few, too many, or hold an unknown flag."""
    reader = _Reader(data)
    fields: dict = {"model_id": reader.hex_id()}
    flags = reader.take(1)[0]
    if flags & ~(_FLAG_ENTROPY | _FLAG_LEVELS | _FLAG_HINT | _FLAG_SILENCE):
        raise ValueError(f"unknown header flags {flags:#04x}")
    if flags & _FLAG_SILENCE and not flags & _FLAG_LEVELS:
        raise ValueError("silence flags without band levels")
    fields.update((name, reader.varint()) for name in _INTEGERS)
    bits = fields.pop("codebook_bits")
    if bits > 62:
        raise ValueError(f"a codebook of 2**{bits} codes")
    fields["codebook_size"] = 1 << bits  # beyond the container's limit: refused there
    fields["gain"] = reader.real()
    fields["entropy"] = {"tables_id": reader.hex_id()} if flags & _FLAG_ENTROPY else None
    fields["model_hint"] = reader.text(max_hint_bytes) if flags & _FLAG_HINT else None
    fields["band_levels"] = (_band_levels(reader, bool(flags & _FLAG_SILENCE), max_bands)
                             if flags & _FLAG_LEVELS else None)
    if reader.position != len(data):
        raise ValueError(f"{len(data) - reader.position} bytes after the last header field")
    return fields
