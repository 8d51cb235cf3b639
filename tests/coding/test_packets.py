"""The packet stream (.qcs): round trips, cuts, damage and hostile headers."""
import dataclasses
import io
import json
import struct
import zlib

import numpy as np
import pytest
from test_bitstream import make_file

from codec.coding import bitstream
from codec.coding.bitstream import BitstreamError
from codec.coding.packets import (
    STREAM_MAGIC,
    STREAM_VERSION,
    PacketReader,
    PacketWriter,
    StreamHeader,
    stream_header_from_dict,
)


def stream_header(**changes) -> StreamHeader:
    """Two channels coded by a mono model with hop 16, 3 codebooks of 1024 codes."""
    fields = dict(model_id="0123456789abcdef", sample_rate=16000, hop_length=16,
                  coded_channels=1, channels=2, n_q=3, codebook_size=1024, gain=0.5)
    return StreamHeader(**{**fields, **changes})


def make_stream(packets: list[int], length: int) -> tuple[bytes, list[np.ndarray], list[int]]:
    """A stream of packets of the given frame counts, the last one ending it; its bytes,
    each packet's codes and the byte where each packet ends."""
    header, handle = stream_header(), io.BytesIO()
    writer = PacketWriter(handle, header)
    rng = np.random.default_rng(0)
    codes = [rng.integers(0, 1024, (2, 3, n)) for n in packets]
    ends = []
    for piece in codes[:-1]:
        writer.write_codes(piece)
        ends.append(handle.tell())
    writer.end(codes[-1], length)
    ends.append(handle.tell())
    return handle.getvalue(), codes, ends


def read_stream(data: bytes) -> tuple[PacketReader, list[np.ndarray]]:
    reader = PacketReader(io.BytesIO(data))
    return reader, list(reader)


def test_packet_stream_round_trip():
    data, codes, _ = make_stream([1, 1, 3, 2], length=7 * 16 - 5)
    reader, got = read_stream(data)
    assert reader.header == stream_header()
    assert [g.tolist() for g in got] == [c.tolist() for c in codes]
    assert (reader.length, reader.frames, reader.problem) == (7 * 16 - 5, 7, None)


def test_packet_stream_is_not_a_qca_file_and_back():
    data, _, _ = make_stream([1], length=16)
    with pytest.raises(BitstreamError, match="magic"):
        bitstream.parse(data)
    qca, _ = make_file()
    with pytest.raises(BitstreamError, match="codec decode"):
        read_stream(qca)


def test_a_stream_cut_anywhere_decodes_its_whole_packets():
    data, codes, ends = make_stream([1, 2, 1, 1], length=5 * 16)
    header_end = ends[0] - (7 + bitstream.packed_bytes(2 * 3 * 1, 10))
    for cut in range(len(data)):
        if cut < header_end:
            with pytest.raises(BitstreamError):
                read_stream(data[:cut])
            continue
        reader, got = read_stream(data[:cut])
        whole = sum(end <= cut for end in ends)
        assert len(got) == whole and reader.length is None and not reader.damaged
        assert reader.stopped_at == (ends[whole - 1] if whole else header_end)
        assert reader.frames == sum(c.shape[-1] for c in codes[:whole])
        assert "cut off" in reader.problem or "without its last packet" in reader.problem


def test_a_damaged_packet_stops_the_stream_there():
    data, _, ends = make_stream([1, 1, 1], length=3 * 16)
    broken = bytearray(data)
    broken[ends[0] + 4] ^= 0x10
    reader, got = read_stream(bytes(broken))
    assert len(got) == 1 and reader.damaged and reader.stopped_at == ends[0]
    assert "checksum" in reader.problem


def test_a_last_packet_with_an_impossible_length_is_damage():
    header, handle = stream_header(), io.BytesIO()
    PacketWriter(handle, header).end(np.zeros((2, 3, 2), dtype=np.int64), 40)
    reader, got = read_stream(handle.getvalue())
    assert got == [] and reader.damaged and "40 samples" in reader.problem


@pytest.mark.parametrize("change, problem", [
    (dict(codebook_size=1000), "power of two"),
    (dict(coded_channels=3), "cannot be"),
    (dict(gain=0.0), "gain"),
    (dict(model_id="xyz"), "hex id"),
])
def test_bad_stream_headers_are_refused(change, problem):
    with pytest.raises(BitstreamError, match=problem):
        stream_header_from_dict({**dataclasses.asdict(stream_header()), **change})


def test_a_stream_header_integer_of_thousands_of_digits_is_refused():
    text = json.dumps(dataclasses.asdict(stream_header())).replace(
        '"sample_rate": 16000', '"sample_rate": ' + "9" * 5000).encode()
    body = struct.pack("<4sBI", STREAM_MAGIC, STREAM_VERSION,
                       len(text)) + text
    data = body + struct.pack("<I", zlib.crc32(body))
    with pytest.raises(BitstreamError, match="not valid JSON"):
        PacketReader(io.BytesIO(data))
