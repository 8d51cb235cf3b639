import io
import os
import select
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from codec.checkpoint import save_checkpoint
from codec.coding.chunking import postfiltered
from codec.coding.packets import PacketReader
from codec.config import Config, model_config
from codec.network.model import Codec, compute_model_id
from codec.pcm_stream import decode_pcm_stream, encode_pcm_stream, float_to_pcm, pcm_to_float
from codec.pretrained import load

ROOT = Path(__file__).parents[1]
RATE, HOP = 24000, 40


def save_run(path: Path, causal: bool = True) -> Path:
    torch.manual_seed(0)
    model = Codec(model_config("tiny", strides=(2, 4, 5), widths=(8, 16, 32, 64),
                               causal=causal))
    save_checkpoint(path / "best", model_state=model.state_dict(),
                    config=Config(model=model.config), step=1, model_id=compute_model_id(model))
    return path


@pytest.fixture
def run(tmp_path) -> Path:
    return save_run(tmp_path / "run")


def pcm(samples: int, channels: int) -> bytes:
    t = np.arange(samples) / RATE
    waves = [0.3 * np.sin(2 * np.pi * (220 + 110 * c) * t) for c in range(channels)]
    return float_to_pcm(torch.tensor(np.stack(waves), dtype=torch.float32))[0]


def offline_pcm(model: Codec, data: bytes, channels: int) -> np.ndarray:
    """What offline coding gives for the PCM (interleaved s16): each channel encoded and
    decoded whole."""
    audio = pcm_to_float(data, channels)
    decoded = model.decode(model.encode(audio[:, None]))[:, 0, :audio.shape[-1]]
    return np.frombuffer(float_to_pcm(decoded)[0], dtype="<i2")


def env() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def codec_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "codec", *args]


def test_pcm_round_trips_exactly():
    data = np.array([-32768, -1, 0, 1, 32767, 1234], dtype="<i2").tobytes()
    assert float_to_pcm(pcm_to_float(data, 2))[0] == data
    assert float_to_pcm(torch.tensor([[1.5, -2.0, 0.5]]))[1] == 2


@pytest.mark.parametrize("channels", [1, 2])
def test_pipe_equals_offline_coding(run, channels):
    data = pcm(RATE // 5 + 7, channels)  # ends inside a frame
    encode = subprocess.Popen(codec_command("stream-encode", "--model", str(run), "--rate",
                                            str(RATE), "--channels", str(channels)),
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env())
    # Without --model the decoder finds the model the stream names in its own folder.
    decode = subprocess.Popen(codec_command("stream-decode"), stdin=encode.stdout,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env(),
                              cwd=run.parent)
    encode.stdout.close()  # the decoder holds the pipe now
    encode.stdin.write(data)
    encode.stdin.close()
    out, err = decode.communicate(timeout=300)
    assert encode.wait(timeout=60) == 0 and decode.returncode == 0, err.decode()[-2000:]
    got = np.frombuffer(out, dtype="<i2")
    expected = offline_pcm(load(str(run)).network, data, channels)
    assert got.shape == expected.shape
    assert np.abs(got.astype(int) - expected).max() <= 1


def test_packets_leave_as_frames_arrive(run):
    """One frame of PCM in, its packet out, while stdin stays open."""
    encode = subprocess.Popen(codec_command("stream-encode", "--model", str(run)),
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env())
    try:
        encode.stdin.write(pcm(HOP, 1))
        encode.stdin.flush()
        received = b""
        while True:
            ready, _, _ = select.select([encode.stdout], [], [], 120)
            assert ready, "no packet within 120 s of its frame"
            received += os.read(encode.stdout.fileno(), 1 << 16)
            reader = PacketReader(io.BytesIO(received))
            if [codes.shape[-1] for codes in reader] == [1]:
                break
    finally:
        encode.kill()
        encode.wait()


def coded_stream(run: Path, data: bytes) -> bytes:
    sink = io.BytesIO()
    encode_pcm_stream(load(str(run)), io.BytesIO(data), sink, channels=1, n_q=2)
    return sink.getvalue()


def test_a_cut_stream_decodes_to_its_last_whole_packet(run):
    model = load(str(run))
    stream = coded_stream(run, pcm(10 * HOP, 1))
    full = io.BytesIO()
    decode_pcm_stream(model, PacketReader(io.BytesIO(stream)), full)
    # Ten packets of one frame (kind, count, 2 codes of 8 bits, CRC), then the last packet
    # (kind, count, length, CRC) with none: the PCM ended on a frame boundary.
    packet, last = 3 + 2 + 4, 3 + 8 + 4
    first = len(stream) - last - 10 * packet
    cut = first + 6 * packet + 4  # inside the seventh packet
    out = io.BytesIO()
    summary = decode_pcm_stream(model, PacketReader(io.BytesIO(stream[:cut])), out)
    assert not summary.complete and summary.frames == 6 and "cut off" in summary.problem
    assert summary.stopped_at == first + 6 * packet
    assert out.getvalue() == full.getvalue()[:6 * HOP * 2]


def test_the_stream_decodes_through_the_live_post_filter(run):
    """``--postfilter`` (or the model's ``coding.postfilter``): each frame's audio through
    the live post-filter as it comes, equal to offline decoding through it."""
    data = pcm(RATE // 5 + 7, 1)
    stream = coded_stream(run, data)
    network = load(str(run)).network
    audio = pcm_to_float(data, 1)
    decoded = postfiltered(network, network.decode(network.encode(audio[:, None], 2)), 1.8)
    expected = np.frombuffer(float_to_pcm(decoded[:, 0, :audio.shape[-1]])[0], dtype="<i2")
    done = subprocess.run(codec_command("stream-decode", "--model", str(run), "--postfilter",
                                        "1.8"), input=stream, capture_output=True, env=env(),
                          timeout=300)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    got = np.frombuffer(done.stdout, dtype="<i2")
    assert got.shape == expected.shape and np.abs(got.astype(int) - expected).max() <= 1
    plain = io.BytesIO()
    decode_pcm_stream(load(str(run)), PacketReader(io.BytesIO(stream)), plain)
    assert np.abs(np.frombuffer(plain.getvalue(), dtype="<i2").astype(int) - expected).max() > 1


def test_cli_warns_where_a_cut_stream_stopped(run):
    stream = coded_stream(run, pcm(5 * HOP, 1))
    done = subprocess.run(codec_command("stream-decode", "--model", str(run)),
                          input=stream[:-5], capture_output=True, env=env(), timeout=300)
    assert done.returncode == 0
    assert len(done.stdout) == 5 * HOP * 2  # all five frames; only the last packet is cut
    warning = done.stderr.decode().strip()
    assert warning.startswith("codec stream-decode: warning:") and "decoded 5 frames" in warning


@pytest.mark.parametrize("args, problem", [
    (["--rate", "16000"], "resample"),
    (["--channels", "0"], "--channels"),
])
def test_cli_refuses_bad_options(run, args, problem):
    done = subprocess.run(codec_command("stream-encode", "--model", str(run), *args),
                          input=b"", capture_output=True, env=env(), timeout=300)
    assert done.returncode == 2 and done.stdout == b""
    assert problem in done.stderr.decode() and "Traceback" not in done.stderr.decode()


def test_cli_refuses_a_non_causal_model(tmp_path):
    lookahead = save_run(tmp_path / "offline", causal=False)
    done = subprocess.run(codec_command("stream-encode", "--model", str(lookahead)),
                          input=pcm(HOP, 1), capture_output=True, env=env(), timeout=300)
    assert done.returncode == 2 and done.stdout == b""
    assert "causal" in done.stderr.decode() and len(done.stderr.decode().splitlines()) == 1


def test_empty_input_makes_an_empty_complete_stream(run):
    model = load(str(run))
    sink = io.BytesIO()
    encode_pcm_stream(model, io.BytesIO(b""), sink, channels=2, n_q=1)
    out = io.BytesIO()
    summary = decode_pcm_stream(model, PacketReader(io.BytesIO(sink.getvalue())), out)
    assert summary.complete and summary.samples == 0 and out.getvalue() == b""


@pytest.mark.parametrize("named", ["/etc", "../../../../etc", "exp/../../x"])
def test_a_stream_does_not_choose_the_file_the_decoder_opens(run, tmp_path, named):
    """A stream naming a path is decoded only with --model: the decoder opens no path a
    stranger's stream gives, and says so in one line."""

    from codec.coding.packets import PacketWriter, StreamHeader

    model = load(str(run))
    header = StreamHeader(model_id=model.model_id, sample_rate=RATE, hop_length=HOP,
                          coded_channels=1, channels=1, n_q=1,
                          codebook_size=model.config.codebook_size, gain=1.0,
                          model_hint=named)
    handle = io.BytesIO()
    PacketWriter(handle, header).end(np.zeros((1, 1, 1), np.int64), HOP)
    done = subprocess.run(codec_command("stream-decode"), input=handle.getvalue(),
                          capture_output=True, env=env(), cwd=tmp_path, timeout=120)
    assert done.returncode == 2 and done.stdout == b""
    (line,) = done.stderr.decode().strip().splitlines()
    assert "is not in the current folder or its exp/; pass --model" in line


def test_stream_encode_records_the_models_name_not_its_path(run):
    done = subprocess.run(codec_command("stream-encode", "--model", str(run)),
                          input=pcm(HOP, 1), capture_output=True, env=env(), timeout=120)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    from codec.coding.packets import PacketReader

    assert PacketReader(io.BytesIO(done.stdout)).header.model_hint == run.name


def test_a_packet_of_many_frames_is_decoded_a_piece_at_a_time(run, monkeypatch):
    """A stream may declare a packet of 65,535 frames; the decoder never takes more than
    DECODE_FRAMES at once, so the memory it needs does not grow with the packet."""
    from codec import pcm_stream
    from codec.coding.packets import PacketReader, PacketWriter, StreamHeader
    from codec.coding.streaming import StreamingDecoder

    model = load(str(run))
    header = StreamHeader(model_id=model.model_id, sample_rate=RATE, hop_length=HOP,
                          coded_channels=1, channels=1, n_q=1,
                          codebook_size=model.config.codebook_size, gain=1.0)
    frames = 4 * pcm_stream.DECODE_FRAMES + 3
    handle = io.BytesIO()
    PacketWriter(handle, header).end(np.zeros((1, 1, frames), np.int64), frames * HOP)
    widest = []
    push = StreamingDecoder.push

    def spy(self, codes):
        widest.append(codes.shape[-1])
        return push(self, codes)

    monkeypatch.setattr(StreamingDecoder, "push", spy)
    sink = io.BytesIO()
    summary = pcm_stream.decode_pcm_stream(model, PacketReader(io.BytesIO(handle.getvalue())),
                                           sink)
    assert max(widest) == pcm_stream.DECODE_FRAMES and sum(widest) == frames
    assert summary.complete and summary.samples == frames * HOP
    assert len(sink.getvalue()) == 2 * frames * HOP
