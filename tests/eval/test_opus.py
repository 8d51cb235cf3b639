import math
import struct

import pytest
import torch

from eval import opus

needs_opus = pytest.mark.skipif(not opus.available(), reason="opus-tools not installed")


def ogg_page(packets: list[bytes]) -> bytes:
    """One Ogg page holding whole packets (CRC left zero: the reader does not check it)."""
    lacing = b""
    for packet in packets:
        lacing += bytes([255] * (len(packet) // 255) + [len(packet) % 255])
    header = b"OggS" + struct.pack("<BBqIIIB", 0, 0, 0, 1, 0, 0, len(lacing))
    return header + lacing + b"".join(packets)


def test_payload_excludes_page_headers_and_the_two_header_packets(tmp_path):
    path = tmp_path / "x.opus"
    audio = [b"a" * 30, b"b" * 300, b"c" * 255]  # 300 and 255 need two lacing values
    path.write_bytes(ogg_page([b"OpusHead" + bytes(11)]) + ogg_page([b"OpusTags" + bytes(8)])
                     + ogg_page(audio[:2]) + ogg_page(audio[2:]))
    assert opus.ogg_payload_bytes(path) == 30 + 300 + 255


def test_not_ogg_is_refused(tmp_path):
    (tmp_path / "x.opus").write_bytes(b"RIFF0000")
    with pytest.raises(ValueError, match="not an Ogg"):
        opus.ogg_payload_bytes(tmp_path / "x.opus")


@needs_opus
@pytest.mark.parametrize("rate,channels", [(24000, 1), (44100, 2)])
def test_round_trip_keeps_rate_length_and_spends_the_asked_bitrate(tmp_path, rate, channels):
    t = torch.arange(2 * rate) / rate
    audio = (0.3 * torch.sin(2 * math.pi * 330 * t)).repeat(channels, 1)
    result = opus.encode_decode(audio, rate, 12, tmp_path)
    assert result.audio.shape == audio.shape and result.sample_rate == rate
    # Hard CBR at 12 kbit/s in 20 ms packets: 30 bytes per packet, one packet per 20 ms
    # (plus the encoder's look-ahead of at most two more).
    packets = result.payload_bytes / 30
    assert packets == int(packets)
    assert 100 <= packets <= 102
    assert result.file_kbps > result.payload_kbps
    # A steady tone survives 12 kbit/s well.
    error = (result.audio - audio).pow(2).mean() / audio.pow(2).mean()
    assert error < 0.1
    assert not list(tmp_path.iterdir())


@needs_opus
def test_keep_leaves_the_opus_file(tmp_path):
    audio = torch.zeros(1, 8000)
    opus.encode_decode(audio, 8000, 6, tmp_path, name="silence", keep=True)
    assert [p.name for p in tmp_path.iterdir()] == ["silence.opus"]
