import dataclasses
import json
import math
import struct
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codec.coding import bitstream
from codec.coding.binary_header import SPREADS
from codec.coding.bitstream import MAGIC, BitstreamError, Header
from codec.errors import CodecError


def make_header(**changes) -> Header:
    """Two channels of 1000 samples at 48 kHz, coded at 16 kHz with hop 16 (21 frames)."""
    fields = dict(model_id="0123456789abcdef", sample_rate=16000, hop_length=16,
                  coded_channels=1, source_rate=48000, channels=2, length=1000, n_q=3,
                  codebook_size=1024, frames=21, gain=0.5, chunk_frames=50, context_frames=4,
                  payload_bytes=bitstream.packed_bytes(2 * 3 * 21, 10))
    fields.update(changes)
    return Header(**fields)


def make_file(header: Header | None = None, seed: int = 0) -> tuple[bytes, np.ndarray]:
    header = header or make_header()
    codes = np.random.default_rng(seed).integers(
        0, header.codebook_size, (header.items, header.n_q, header.frames))
    return bitstream.to_bytes(header, bitstream.pack_codes(codes, header.bits_per_code)), codes


def with_raw_header(raw: dict, payload: bytes, version: int = bitstream.JSON_VERSION) -> bytes:
    """A file with any header dict and a correct checksum (what a careful attacker makes),
    in format 1, whose JSON header can hold any value of any type; both formats' fields
    go through the same checks."""
    return with_header_text(json.dumps(raw).encode(), payload, version)


def with_packed_header(packed: bytes, payload: bytes, version: int = bitstream.VERSION) -> bytes:
    """A format-2 file with any header bytes and a correct checksum."""
    body = struct.pack("<4sBH", MAGIC, version, len(packed)) + packed + payload
    return body + struct.pack("<I", zlib.crc32(body))


def split(data: bytes) -> tuple[dict, bytes]:
    header, payload = bitstream.parse(data)
    return dataclasses.asdict(header), payload


# --- bit packing -------------------------------------------------------------------------


def test_pack_known_answer():
    # 1, 2, 3 at 2 bits -> 01 10 11 (+ 2 zero bits) = 0b01101100
    assert bitstream.pack_codes(np.array([1, 2, 3]), 2) == bytes([0b01101100])
    # 10-bit codes 1023, 1 -> 11111111 11000000 00010000 (4 zero bits pad the end)
    assert bitstream.pack_codes(np.array([1023, 1]), 10) == bytes([0xFF, 0xC0, 0x10])


@pytest.mark.parametrize("bits", [1, 3, 8, 10, 13, 16])
@pytest.mark.parametrize("count", [0, 1, 7, 1001])
def test_pack_unpack_round_trip(bits, count):
    codes = np.random.default_rng(bits).integers(0, 1 << bits, count)
    codes[:1] = (1 << bits) - 1  # the largest code survives too
    packed = bitstream.pack_codes(codes, bits)
    assert len(packed) == math.ceil(count * bits / 8)
    np.testing.assert_array_equal(bitstream.unpack_codes(packed, count, bits), codes)


def test_pack_round_trip_across_runs(monkeypatch):
    monkeypatch.setattr(bitstream, "_PACK_RUN", 16)
    codes = np.arange(100) % 1024
    packed = bitstream.pack_codes(codes, 10)
    np.testing.assert_array_equal(bitstream.unpack_codes(packed, 100, 10), codes)


def test_pack_refuses_codes_out_of_range():
    with pytest.raises(ValueError, match="lie in"):
        bitstream.pack_codes(np.array([4]), 2)


# --- container -----------------------------------------------------------------------------


def test_file_round_trip():
    data, codes = make_file()
    header, payload = bitstream.parse(data)
    assert header == make_header()
    got = bitstream.unpack_codes(payload, header.num_codes, header.bits_per_code)
    np.testing.assert_array_equal(got.reshape(codes.shape), codes)
    assert data[:4] == MAGIC and data[4] == bitstream.VERSION


def test_errors_are_codec_errors():
    assert issubclass(BitstreamError, CodecError)


@pytest.mark.parametrize("cut", [0, 3, 4, 8, 9, 50, -5, -1])
def test_truncated(cut):
    data, _ = make_file()
    with pytest.raises(BitstreamError, match="truncated"):
        bitstream.parse(data[:cut])


def test_wrong_magic():
    data, _ = make_file()
    with pytest.raises(BitstreamError, match="wrong magic"):
        bitstream.parse(b"RIFF" + data[4:])
    with pytest.raises(BitstreamError, match="wrong magic"):
        bitstream.parse(b"RI")


def test_unknown_version():
    data = make_file()[0]
    (length,) = struct.unpack_from("<H", data, 5)
    with pytest.raises(BitstreamError, match="unknown format version 3"):
        bitstream.parse(with_packed_header(data[7:7 + length], data[7 + length:-4], version=3))


def test_format_1_files_still_read():
    data = bitstream.to_bytes(LEVELS_HEADER, bytes(LEVELS_HEADER.payload_bytes))
    raw, payload = split(data)
    header, got = bitstream.parse(with_raw_header(raw, payload))
    assert header == LEVELS_HEADER and got == payload


LEVELS_HEADER = make_header(
    entropy={"tables_id": "fedcba9876543210"}, model_hint="cpu_hour",
    payload_bytes=40 + 8,
    band_levels={"bands": 3, "frames": 4, "step_db": 1.5, "floor_db": -68.25,
                 "scales": [SPREADS[0], SPREADS[99], SPREADS[-1]], "bytes": 8, "silence_db": -88.0,
                 "silent_share": 0.337})


@pytest.mark.parametrize("gain", [0.5, 0.40944004573175585, float(np.float32(0.4094)),
                                  bitstream.MIN_GAIN, bitstream.MAX_GAIN])
def test_every_field_survives_the_packed_header(gain):
    """Every field reads back exactly, a gain of any precision included."""
    written = dataclasses.replace(LEVELS_HEADER, gain=gain)
    payload = bytes(range(written.payload_bytes))
    header, got = bitstream.parse(bitstream.to_bytes(written, payload))
    assert header == written and got == payload


def test_a_one_second_file_carries_little_besides_its_payload():
    """A second at 6 kbps (752 payload bytes) with entropy tables, a model name and 32
    band levels (what recipes/cpu_hour sends): prefix, header and checksum within 15%
    of the payload."""
    header = make_header(
        length=48000, frames=1000, payload_bytes=752, entropy={"tables_id": "0" * 16},
        model_hint="cpu_hour", band_levels={
            "bands": 32, "frames": 2, "step_db": 1.5, "floor_db": -60.0,
            "scales": [SPREADS[99]] * 32, "bytes": 100, "silence_db": -88.0, "silent_share": 0.5})
    data = bitstream.to_bytes(header, bytes(752))
    assert len(data) - 752 <= 0.15 * 750


@pytest.mark.parametrize("position", [12, 100, -10])
def test_bad_checksum(position):
    data = bytearray(make_file()[0])
    data[position] ^= 0x01
    with pytest.raises(BitstreamError, match="checksum"):
        bitstream.parse(bytes(data))


def test_header_length_limit():
    raw, payload = split(make_file()[0])
    data = bytearray(with_raw_header(raw, payload))
    data[5:9] = struct.pack("<I", bitstream.MAX_HEADER_BYTES + 1)
    with pytest.raises(BitstreamError, match="header length"):
        bitstream.parse(bytes(data))


@pytest.mark.parametrize("field, value, message", [
    ("sample_rate", 0, "outside"),
    ("source_rate", 768001, "outside"),
    ("channels", 65, "outside"),
    ("n_q", 0, "outside"),
    ("n_q", 65, "outside"),
    ("codebook_size", 1000, "power of two"),
    ("codebook_size", 1 << 17, "outside"),
    ("frames", 22, "frames"),
    ("length", 2 ** 60, "outside"),
    ("payload_bytes", 10, "payload bytes"),
    ("gain", float("nan"), "gain"),
    ("gain", -1.0, "gain"),
    ("gain", "loud", "gain"),
    ("gain", 5e-324, "gain"),  # dividing by it would make every sample infinite
    ("gain", 1e300, "gain"),
    ("n_q", 2.5, "integer"),
    ("n_q", True, "integer"),
    ("model_id", "not hex!", "model_id"),
    ("entropy", {"tables_id": 3}, "entropy"),
    ("coded_channels", 3, "cannot be"),
    ("band_levels", {"bands": 4}, "band_levels"),
    ("band_levels", {"bands": 2, "frames": 3, "step_db": 4.0, "floor_db": -68.0,
                     "scales": [1.0], "bytes": 0}, r"bad \['scales'\]"),
    ("band_levels", {"bands": 1, "frames": 3, "step_db": 0.0, "floor_db": -68.0,
                     "scales": [1.0], "bytes": 4}, r"bad \['step_db'\]"),
    ("band_levels", {"bands": 1, "frames": 3, "step_db": 4.0, "floor_db": -68.0,
                     "scales": [1.0], "bytes": 10 ** 6}, "bytes of band levels"),
    ("band_levels", {"bands": 1, "frames": 3, "step_db": 4.0, "floor_db": -68.0,
                     "silence_db": -88.0, "silent_share": 1.0, "scales": [1.0], "bytes": 0},
     r"bad \['silent_share'\]"),
    ("band_levels", {"bands": 1, "frames": 3, "step_db": 4.0, "floor_db": -68.0,
                     "silence_db": -88.0, "scales": [1.0], "bytes": 0}, "optionally"),
])
def test_header_fields_are_checked(field, value, message):
    raw, payload = split(make_file()[0])
    raw[field] = value
    with pytest.raises(BitstreamError, match=message):
        bitstream.parse(with_raw_header(raw, payload))


def test_missing_and_unknown_header_fields():
    raw, payload = split(make_file()[0])
    del raw["gain"]
    raw["extra"] = 1
    with pytest.raises(BitstreamError, match=r"missing \['gain'\].*unknown \['extra'\]"):
        bitstream.parse(with_raw_header(raw, payload))


def test_huge_frame_count_is_refused_before_allocation():
    # A consistent header claiming ~2**40 samples with a tiny payload must fail on size.
    length = 2 ** 40
    raw, payload = split(make_file()[0])
    raw.update(length=length, frames=bitstream.frame_count(length, 48000, 16000, 16))
    with pytest.raises(BitstreamError, match="payload bytes"):
        bitstream.parse(with_raw_header(raw, payload))


def with_header_text(text: bytes, payload: bytes, version: int = bitstream.JSON_VERSION) -> bytes:
    body = struct.pack("<4sBI", MAGIC, version, len(text)) + text + payload
    return body + struct.pack("<I", zlib.crc32(body))


def test_integer_with_thousands_of_digits_is_refused():
    raw, payload = split(make_file()[0])
    text = json.dumps(raw).replace(f'"length": {raw["length"]}', '"length": ' + "9" * 5000)
    with pytest.raises(BitstreamError, match="not valid JSON"):
        bitstream.parse(with_header_text(text.encode(), payload))


def test_writer_refuses_inconsistent_header():
    with pytest.raises(BitstreamError):
        bitstream.to_bytes(make_header(frames=5, payload_bytes=0), b"")


# --- hostile input never escapes as anything but BitstreamError --------------------------

VALID, _ = make_file()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_and_truncated_files_raise_only_bitstream_error(data):
    blob = bytearray(VALID)
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(blob) - 1))
        blob[position] = data.draw(st.integers(0, 255))
    blob = blob[:data.draw(st.integers(0, len(blob)))]
    try:
        header, payload = bitstream.parse(bytes(blob))
    except BitstreamError:
        return
    assert len(payload) == header.payload_bytes  # only an unchanged file gets here


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_header_text_with_valid_checksum_raises_only_bitstream_error(data):
    raw, payload = split(VALID)
    text = bytearray(json.dumps(raw).encode())
    for _ in range(data.draw(st.integers(1, 3))):
        position = data.draw(st.integers(0, len(text)))
        insert = data.draw(st.sampled_from([b"9" * 5000, b"e999", b"-", b"0", b"[", b"}", b"\\x00",
                                            b"\xff", b"NaN", b"1e-320"]))
        text[position:position + data.draw(st.integers(0, 2))] = insert
    try:
        header, got = bitstream.parse(with_header_text(bytes(text), payload))
    except BitstreamError:
        return
    assert len(got) == header.payload_bytes


@pytest.mark.parametrize("change, message", [
    (lambda packed: packed[:-1], "ends at byte"),
    (lambda packed: packed + b"\x00", "after the last header field"),
    (lambda packed: packed[:8] + b"\x40" + packed[9:], "unknown header flags"),
    (lambda packed: packed[:9] + b"\xff" * 11 + packed[10:], "varint longer"),
])
def test_damaged_packed_headers_are_named(change, message):
    data = make_file()[0]
    (length,) = struct.unpack_from("<H", data, 5)
    damaged = with_packed_header(change(data[7:7 + length]), data[7 + length:-4])
    with pytest.raises(BitstreamError, match=message):
        bitstream.parse(damaged)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_packed_header_with_valid_checksum_raises_only_bitstream_error(data):
    valid = bitstream.to_bytes(LEVELS_HEADER, bytes(LEVELS_HEADER.payload_bytes))
    (length,) = struct.unpack_from("<H", valid, 5)
    packed = bytearray(valid[7:7 + length])
    for _ in range(data.draw(st.integers(1, 3))):
        position = data.draw(st.integers(0, len(packed)))
        insert = data.draw(st.sampled_from([b"\xff" * 12, b"\x80", b"\x00", b"\x7f",
                                            b"\xff\xff\xff\x7f", b"\x00" * 8]))
        packed[position:position + data.draw(st.integers(0, 2))] = insert
    try:
        header, got = bitstream.parse(with_packed_header(bytes(packed), valid[7 + length:-4]))
    except BitstreamError:
        return
    assert len(got) == header.payload_bytes


header_values = st.one_of(st.integers(-2, 2 ** 64), st.floats(allow_nan=True), st.text(max_size=8),
                          st.none(), st.booleans(), st.lists(st.integers(), max_size=2))


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from([f.name for f in dataclasses.fields(Header)]),
                       header_values, max_size=6))
def test_any_header_with_valid_checksum_raises_only_bitstream_error(changes):
    raw, payload = split(VALID)
    raw.update(changes)
    try:
        header, got = bitstream.parse(with_raw_header(raw, payload))
    except BitstreamError:
        return
    # Accepted: then it is self-consistent and the payload is exactly what it declares.
    assert len(got) == header.payload_bytes == bitstream.packed_bytes(header.num_codes,
                                                                      header.bits_per_code)


# --- describe -------------------------------------------------------------------------------


def test_describe(tmp_path):
    header = make_header(length=48000, frames=1000,
                         payload_bytes=bitstream.packed_bytes(2 * 3 * 1000, 10))
    data, _ = make_file(header)
    path = tmp_path / "a.qca"
    path.write_bytes(data)
    info = bitstream.describe(path)
    assert info["model_id"] == header.model_id
    assert info["sample_rate"] == 48000 and info["channels"] == 2
    assert info["duration_seconds"] == 1.0
    assert info["codebooks_used"] == 3
    # 2 items x 3 codebooks x 10 bits x 1000 frames/s
    assert info["nominal_kbps"] == 60.0
    assert info["file_kbps"] == pytest.approx(len(data) * 8 / 1000)
    assert not info["entropy_coded"] and "payload_saving_percent" not in info


def test_read_file_names_the_file(tmp_path):
    path = tmp_path / "bad.qca"
    path.write_bytes(b"nonsense")
    with pytest.raises(BitstreamError, match=r"bad\.qca: not a compressed audio file"):
        bitstream.read_file(path)
