import dataclasses
import math
import re

import numpy as np
import pytest
import soundfile as sf
import torch

from codec import Codec, compress, model_config
from codec.audio import loudness
from codec.cli import main
from codec.coding import bitstream, entropy
from codec.coding.bitrate import coded_kbps
from codec.coding.bitstream import BitstreamError
from codec.config import CodingConfig, Config
from codec.errors import CodecError
from codec.metrics import rms_ratio, snr
from codec.pretrained import PretrainedModel

MODEL_RATE = 16000
SMALL_CHUNK = 0.05  # seconds: 50 frames, so a clip of a few seconds crosses many seams


def tones(channels: int, length: int, rate: int, seed: int = 0, rms: float = 0.07) -> torch.Tensor:
    """Sums of three tones between 100 and 1600 Hz with a slow swell and a little noise,
    ``[channels, length]`` (or ``[channels, 1, length]`` batches via ``tones_batch``)."""
    return tones_batch(channels, length, rate, torch.Generator().manual_seed(seed), rms)[:, 0]


def tones_batch(batch: int, length: int, rate: int, generator: torch.Generator,
                rms: float = 0.07) -> torch.Tensor:
    t = torch.arange(length) / rate
    freq = 100 * 2 ** (torch.rand(batch, 3, 1, generator=generator) * 4)
    amp = torch.rand(batch, 3, 1, generator=generator)
    phase = torch.rand(batch, 3, 1, generator=generator) * 2 * math.pi
    x = (amp * torch.sin(2 * math.pi * freq * t + phase)).sum(1, keepdim=True)
    x = x + 0.02 * torch.randn(batch, 1, length, generator=generator)
    swell = torch.rand(batch, 1, 1, generator=generator) * 3
    x = x * (0.8 + 0.2 * torch.sin(2 * math.pi * swell * t))
    return x / x.pow(2).mean(-1, keepdim=True).sqrt() * rms


def small_model(**changes) -> Codec:
    """Hop 16 at 16 kHz: 1000 frames/s, 8 bits a code, 4 codebooks."""
    options = dict(sample_rate=MODEL_RATE, strides=(4, 4), widths=(16, 32, 64), latent_dim=32,
                   n_q=4, codebook_size=256, ema_decay=0.9)
    return Codec(model_config("tiny", **{**options, **changes}))


@pytest.fixture(scope="session")
def trained_model() -> PretrainedModel:
    """A small model trained for 200 quick steps on tones (waveform L1 + commitment), so
    that levels and SNR of round trips mean something. About 10 s on one CPU thread."""
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    model = small_model()
    steps = 200
    optimizer = torch.optim.Adam(model.parameters(), 3e-3)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, 3e-3, total_steps=steps,
                                                   pct_start=0.1)
    generator = torch.Generator().manual_seed(0)
    for _ in range(steps):
        audio = tones_batch(8, 2048, MODEL_RATE, generator)
        out = model(audio)
        loss = 10 * (out.audio - audio).abs().mean() + out.losses["commit"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    torch.set_num_threads(threads)
    return PretrainedModel.from_network(model)


@pytest.fixture
def untrained_model() -> PretrainedModel:
    return PretrainedModel.from_network(small_model())


# --- streamed resampling equals its whole-signal version ---------------------------------


# --- chunking ----------------------------------------------------------------------------


def test_chunked_codes_equal_whole_signal_codes(untrained_model):
    audio = tones(2, 48000 * 2, 48000)
    source = compress.tensor_source(audio, 48000)
    whole = compress.encode_codes(untrained_model, source, 4, chunk_seconds=100)
    chunked = compress.encode_codes(untrained_model, source, 4, chunk_seconds=SMALL_CHUNK)
    assert whole.codes.shape == chunked.codes.shape == (2, 4, 2000)
    assert (whole.codes == chunked.codes).mean() > 0.999  # rare float ties may flip one


def test_context_is_what_makes_chunks_exact(untrained_model, monkeypatch):
    audio = tones(1, MODEL_RATE * 2, MODEL_RATE)
    source = compress.tensor_source(audio, MODEL_RATE)
    whole = compress.encode_codes(untrained_model, source, 4, chunk_seconds=100).codes
    monkeypatch.setattr(compress, "context_frames", lambda model, exponent: 0)
    naive = compress.encode_codes(untrained_model, source, 4, chunk_seconds=SMALL_CHUNK).codes
    assert (whole != naive).any()  # without context the seams show up in the codes


def test_chunked_decode_equals_whole_decode(trained_model):
    data = compress.encode(trained_model, tones(1, MODEL_RATE * 2, MODEL_RATE),
                                 MODEL_RATE, n_q=4)
    _, whole = compress.decode_blocks(trained_model, data, chunk_seconds=100)
    _, chunked = compress.decode_blocks(trained_model, data, chunk_seconds=SMALL_CHUNK)
    whole, chunked = torch.cat(list(whole), -1), torch.cat(list(chunked), -1)
    assert whole.shape == chunked.shape
    assert snr(whole, chunked) > 80


# --- round trips ---------------------------------------------------------------------------


@pytest.mark.parametrize("rate, channels", [(16000, 1), (44100, 1), (48000, 2), (44100, 2)])
@pytest.mark.parametrize("n_q", [1, 2, 4])
def test_round_trip_restores_rate_channels_and_length(trained_model, rate, channels, n_q):
    audio = tones(channels, int(rate * 0.7) + 13, rate, seed=n_q)
    data = compress.encode(trained_model, audio, rate, n_q=n_q, chunk_seconds=SMALL_CHUNK)
    decoded, decoded_rate = compress.decode(trained_model, data)
    assert decoded_rate == rate
    assert decoded.shape == audio.shape and decoded.dtype == torch.float32
    assert bitstream.parse(data)[0].n_q == n_q


@pytest.mark.parametrize("rate, channels", [(16000, 1), (44100, 1), (48000, 2)])
@pytest.mark.parametrize("n_q", [3, 4])
def test_round_trip_keeps_the_level(trained_model, rate, channels, n_q):
    # Quiet input: the header's gain lifts it to the training level and back down.
    audio = tones(channels, rate * 2, rate, seed=7, rms=0.01)
    decoded, _ = compress.decode(
        trained_model, compress.encode(trained_model, audio, rate, n_q=n_q))
    assert 0.9 < rms_ratio(audio, decoded) < 1.1
    assert snr(audio, decoded) > 6


@pytest.mark.parametrize("n_q", [1, 4])
def test_gain_is_undone_exactly(trained_model, n_q):
    # Two levels of one signal normalise to the same model input: same codes, and
    # the decoded audio differs by exactly the level factor.
    audio = tones(1, MODEL_RATE, MODEL_RATE, rms=0.02)
    loud = compress.encode(trained_model, audio, MODEL_RATE, n_q=n_q)
    quiet = compress.encode(trained_model, audio / 4, MODEL_RATE, n_q=n_q)
    loud_header, loud_payload = bitstream.parse(loud)
    quiet_header, quiet_payload = bitstream.parse(quiet)
    assert quiet_header.gain == pytest.approx(4 * loud_header.gain, rel=1e-4)
    assert loud_payload == quiet_payload
    loud_audio, _ = compress.decode(trained_model, loud)
    quiet_audio, _ = compress.decode(trained_model, quiet)
    assert torch.allclose(quiet_audio * 4, loud_audio, atol=1e-5)


def test_gain_reaches_the_target_level(untrained_model):
    audio = tones(2, 48000, 48000, rms=0.005)
    header, _ = bitstream.parse(compress.encode(untrained_model, audio, 48000, n_q=1,
                                                level_match=False))
    assert loudness(audio * header.gain, 48000) == pytest.approx(-23.0, abs=0.01)
    louder = dataclasses.replace(untrained_model, target_lufs=-16.0)
    header, _ = bitstream.parse(compress.encode(louder, audio, 48000, n_q=1,
                                                level_match=False))
    assert loudness(audio * header.gain, 48000) == pytest.approx(-16.0, abs=0.01)


@pytest.mark.parametrize("rate, channels", [(MODEL_RATE, 1), (44100, 2)])
def test_level_match_gives_the_decoded_audio_the_input_level(trained_model, rate, channels):
    # One codebook: the model's own level is off (by 3-20% here), more than matching leaves.
    audio = tones(channels, rate * 2, rate, seed=3)
    plain = compress.encode(trained_model, audio, rate, n_q=1, level_match=False)
    matched = compress.encode(trained_model, audio, rate, n_q=1)
    plain_ratio = rms_ratio(audio, compress.decode(trained_model, plain)[0])
    assert abs(plain_ratio - 1) > 0.02
    assert rms_ratio(audio, compress.decode(trained_model, matched)[0]) == pytest.approx(
        1.0, abs=0.01)
    # Only the header's gain differs: the codes are the same.
    assert bitstream.parse(plain)[1] == bitstream.parse(matched)[1]
    assert bitstream.parse(matched)[0].gain == pytest.approx(
        bitstream.parse(plain)[0].gain * plain_ratio, rel=0.01)


def test_matched_gain_is_bounded_and_leaves_silence_alone():
    assert compress.matched_gain(2.0, 1.0, 0.81) == pytest.approx(1.8, rel=0.002)
    limit = 10 ** (compress.LEVEL_MATCH_LIMIT_DB / 20)
    assert compress.matched_gain(2.0, 1.0, 1e-6) == pytest.approx(2.0 / limit)
    assert compress.matched_gain(2.0, 1.0, 1e6) == pytest.approx(2.0 * limit)
    assert compress.matched_gain(2.0, 0.0, 1.0) == 2.0
    assert compress.matched_gain(2.0, 1.0, 0.0) == 2.0
    # In steps of LEVEL_MATCH_STEP_DB, so float noise in the decoded level cannot move it.
    assert compress.matched_gain(2.0, 1.0, 0.81) == compress.matched_gain(2.0, 1.0, 0.81 + 1e-9)


def test_gain_is_peak_limited(untrained_model):
    audio = torch.zeros(1, 16000)
    audio[0, 100] = 0.5  # one click: loud peak, tiny loudness
    header, _ = bitstream.parse(compress.encode(untrained_model, audio, 16000, n_q=1,
                                                level_match=False))
    assert header.gain == pytest.approx(0.99 / 0.5)


def test_silence_gets_unit_gain(untrained_model):
    data = compress.encode(untrained_model, torch.zeros(2, 4000), 16000, n_q=2)
    assert bitstream.parse(data)[0].gain == 1.0
    decoded, _ = compress.decode(untrained_model, data)
    assert decoded.shape == (2, 4000)


def test_file_size_matches_nominal_bitrate(trained_model):
    seconds, n_q = 10, 2
    audio = tones(2, 44100 * seconds, 44100)
    data = compress.encode(trained_model, audio, 44100, n_q=n_q)
    header, payload = bitstream.parse(data)
    overhead = len(data) - len(payload)
    # 2 channels x n_q codebooks x 8 bits x 1000 frames/s
    nominal_bps = 2 * n_q * 8 * 1000
    assert header.nominal_bps == nominal_bps
    assert len(data) == pytest.approx(nominal_bps * seconds / 8 + overhead, rel=0.02)
    assert overhead < 600


def with_band_levels(model: PretrainedModel, bands: int = 4, **coding) -> PretrainedModel:
    """``model`` sending ``bands`` band levels, one per 20 frames (20 ms), with any other
    ``coding`` settings."""
    return dataclasses.replace(model, coding=CodingConfig(band_levels=bands,
                                                          band_level_frames=20, **coding))


def band_level_error(audio: torch.Tensor, decoded: torch.Tensor, rate: int) -> float:
    """Mean absolute dB difference of the two signals' levels in 8 bands over 20 ms."""
    from codec.coding.band_levels import LevelGrid, LevelMeter, quantise

    grid = LevelGrid(rate, 160, 8, 2, 0.5, -90.0)
    levels = []
    for signal in (audio, decoded):
        meter = LevelMeter(grid, signal.shape[0])
        meter.push(signal)
        levels.append(quantise(meter.finish(-(-signal.shape[-1] // 160)), grid).astype(float))
    voiced = levels[0] > 40  # 20 dB and more over the floor
    return float(np.abs(levels[0] - levels[1])[voiced].mean() * grid.step_db)


def test_band_levels_travel_with_the_codes_and_bring_the_bands_closer(trained_model):
    audio = tones(1, MODEL_RATE * 2, MODEL_RATE, seed=3)
    audio = audio + 0.02 * torch.sin(torch.arange(audio.shape[-1]) / MODEL_RATE * 2 * math.pi
                                     * 5000)  # a band the model was never trained on
    plain = compress.encode(trained_model, audio, MODEL_RATE, n_q=4)
    model = with_band_levels(trained_model)
    data = compress.encode(model, audio, MODEL_RATE, n_q=4)
    header, payload = bitstream.parse(data)
    assert header.band_levels["bands"] == 4 and header.level_bytes > 0
    assert header.codes_bytes == bitstream.parse(plain)[0].payload_bytes
    # Decoding follows the file, whatever the decoding model's own setting.
    decoded, _ = compress.decode(trained_model, data)
    without, _ = compress.decode(trained_model, plain)
    assert band_level_error(audio, decoded, MODEL_RATE) < \
        band_level_error(audio, without, MODEL_RATE) - 1
    _, chunked = compress.decode_blocks(trained_model, data, chunk_seconds=SMALL_CHUNK)
    assert snr(decoded, torch.cat(list(chunked), -1)) > 80


def test_a_bitrate_sets_aside_the_band_levels_share(trained_model):
    # 8 kbps a codebook; 1.5 kbps go to the levels, so 16 kbps is one codebook and levels.
    assert compress.codebooks(trained_model, kbps=16) == 2
    model = with_band_levels(trained_model)
    assert compress.codebooks(model, kbps=16) == 1
    assert coded_kbps(model.network, model.coding, 2) == 17.5
    # Under the share, a bitrate is split evenly: 8 kbps of levels beside one codebook.
    small = with_band_levels(trained_model, band_level_kbps=20.0)
    assert coded_kbps(small.network, small.coding, 1) == 16
    with pytest.raises(CodecError, match="lowest bitrate.*band levels"):
        compress.codebooks(small, kbps=15)


def test_levels_short_of_their_share_take_the_low_rate_band_count(trained_model):
    # A 20 kbps share: one codebook (8 kbps) leaves the levels 8, three leave them 20.
    model = with_band_levels(trained_model, band_level_kbps=20.0, band_levels_low_rate=2)
    audio = tones(1, MODEL_RATE, MODEL_RATE, seed=4)

    def bands(n_q: int) -> int:
        return bitstream.parse(compress.encode(model, audio, MODEL_RATE, n_q=n_q))[0] \
            .band_levels["bands"]

    assert (bands(1), bands(3)) == (2, 4)
    # An explicit count (codec encode --band-levels) holds at every bitrate.
    model = model.with_band_levels(3)
    assert (bands(1), bands(3)) == (3, 3)


def test_band_levels_take_their_share_once_per_coded_item():
    """A stereo model codes both channels as one item at one bitrate, so their levels
    share one item's budget; a mono model codes each channel as an item of its own."""
    stereo_audio = tones(2, 16000 * 2, 16000, seed=5)
    share = 0.5  # kbps: 125 bytes over the 2 s, far less than 8 bands every 20 ms cost

    def level_bytes(network: Codec) -> int:
        model = with_band_levels(PretrainedModel.from_network(network), bands=8,
                                 band_level_kbps=share)
        data = compress.encode(model, stereo_audio, 16000, n_q=2)
        return bitstream.parse(data)[0].level_bytes

    budget = share * 1000 / 8 * 2
    assert 0 < level_bytes(small_model(channels=2)) <= budget
    assert budget < level_bytes(small_model()) <= 2 * budget


def test_multichannel_model_layouts():
    model = PretrainedModel.from_network(small_model(channels=2))
    stereo = tones(2, 8000, 16000)
    decoded, _ = compress.decode(model, compress.encode(model, stereo, 16000, n_q=2))
    assert decoded.shape == (2, 8000)
    assert bitstream.parse(compress.encode(model, stereo, 16000, n_q=2))[0].items == 1
    mono = tones(1, 8000, 16000)
    decoded, _ = compress.decode(model, compress.encode(model, mono, 16000, n_q=2))
    assert decoded.shape == (1, 8000)
    with pytest.raises(CodecError, match="cannot code 3 channels"):
        compress.encode(model, tones(3, 8000, 16000), 16000, n_q=2)


def test_bad_audio_is_refused(untrained_model):
    with pytest.raises(CodecError, match="empty audio"):
        compress.encode(untrained_model, torch.zeros(1, 0), 16000, n_q=1)
    with pytest.raises(CodecError, match="NaN"):
        compress.encode(untrained_model, torch.full((1, 100), float("nan")), 16000, n_q=1)


def test_decoding_with_another_model_names_both_ids(trained_model, untrained_model):
    data = compress.encode(trained_model, tones(1, 4000, 16000), 16000, n_q=1)
    mine, other = trained_model.model_id, untrained_model.model_id
    with pytest.raises(BitstreamError, match=f"{mine}.*{other}"):
        compress.decode(untrained_model, data)


def test_entropy_coded_round_trip_equals_bit_packed(trained_model):
    audio = tones(1, MODEL_RATE * 3, MODEL_RATE, seed=3)
    codes = compress.encode_codes(trained_model, compress.tensor_source(audio, MODEL_RATE),
                                  4).codes
    tables = entropy.EntropyTables(trained_model.model_id,
                                   entropy.count_codes(codes, 256))
    packed = compress.encode(trained_model, audio, MODEL_RATE, n_q=4)
    with_tables = dataclasses.replace(trained_model, entropy_tables=tables)
    coded = compress.encode(with_tables, audio, MODEL_RATE, n_q=4, entropy=True)
    assert bitstream.parse(coded)[0].entropy == {"tables_id": tables.tables_id}
    assert len(coded) < len(packed)
    from_packed, _ = compress.decode(trained_model, packed)
    from_coded, _ = compress.decode(with_tables, coded)
    assert torch.equal(from_packed, from_coded)
    with pytest.raises(BitstreamError, match="no entropy tables"):
        compress.decode(trained_model, coded)


def test_hostile_bytes_raise_only_bitstream_error(untrained_model):
    from hypothesis import given, settings
    from hypothesis import strategies as st

    valid = compress.encode(untrained_model, tones(2, 3000, 16000), 16000, n_q=2)

    @settings(max_examples=60, deadline=None)
    @given(st.data())
    def check(data):
        blob = bytearray(valid)
        for _ in range(data.draw(st.integers(0, 3))):
            blob[data.draw(st.integers(0, len(blob) - 1))] = data.draw(st.integers(0, 255))
        blob = bytes(blob[:data.draw(st.integers(0, len(blob)))])
        try:
            audio, _ = compress.decode(untrained_model, blob)
        except BitstreamError:
            return
        assert blob == valid[:len(blob)] and audio.shape == (2, 3000)

    check()


# --- command line --------------------------------------------------------------------------


@pytest.fixture
def run_dir(tmp_path, trained_model):
    from codec.checkpoint import save_checkpoint

    run = tmp_path / "run"
    save_checkpoint(run / "best", model_state=trained_model.network.state_dict(),
                    config=Config(model=trained_model.config), step=200,
                    model_id=trained_model.model_id)
    return run


def write_wav(path, audio: torch.Tensor, rate: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), audio.numpy().T, rate, subtype="FLOAT")


def test_file_and_tensor_paths_agree(tmp_path, untrained_model):
    audio = tones(2, 70000, 44100)
    write_wav(tmp_path / "a.wav", audio, 44100)
    compress.encode_file(untrained_model, tmp_path / "a.wav", tmp_path / "a.qca", n_q=2,
                         chunk_seconds=SMALL_CHUNK)
    data = compress.encode(untrained_model, audio, 44100, n_q=2, chunk_seconds=SMALL_CHUNK)
    assert (tmp_path / "a.qca").read_bytes() == data
    assert compress.decode_file(untrained_model, tmp_path / "a.qca", tmp_path / "b.wav",
                                subtype="FLOAT") == 0
    from_file, _ = sf.read(str(tmp_path / "b.wav"), dtype="float32", always_2d=True)
    from_bytes, _ = compress.decode(untrained_model, data)
    np.testing.assert_array_equal(from_file.T, from_bytes.numpy())


def one_error_line(capsys, *names: str) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in err
    for name in names:
        assert name in err, err
    return err


def test_cli_encode_decode_and_info(tmp_path, run_dir, capsys):
    audio = tones(2, 44100, 44100, rms=0.03)
    write_wav(tmp_path / "song.wav", audio, 44100)
    assert main(["encode", str(tmp_path / "song.wav"), "-o", str(tmp_path / "song.qca"),
                 "--model", str(run_dir), "--kbps", "17"]) == 0
    header, _ = bitstream.read_file(tmp_path / "song.qca")
    assert header.n_q == 2 and header.model_hint == "run"  # a name, not a path
    # Positional output, and no --model: the model named in the file is found beside it.
    assert main(["decode", str(tmp_path / "song.qca"), str(tmp_path / "out.wav"),
                 "--subtype", "FLOAT"]) == 0
    decoded, rate = sf.read(str(tmp_path / "out.wav"), dtype="float32", always_2d=True)
    assert rate == 44100 and decoded.shape == (44100, 2)
    assert sf.info(str(tmp_path / "out.wav")).subtype == "FLOAT"
    capsys.readouterr()
    assert main(["info", str(tmp_path / "song.qca")]) == 0
    out = capsys.readouterr().out
    assert re.search(r"nominal_kbps: 32\.0\b", out) and "channels: 2" in out
    assert not list(tmp_path.glob(".*.tmp"))


def test_cli_decode_pcm_counts_clipping(tmp_path, run_dir, capsys):
    audio = tones(1, 16000, 16000, rms=0.3).clamp(-0.999, 0.999)
    write_wav(tmp_path / "hot.wav", audio, 16000)
    main(["encode", str(tmp_path / "hot.wav"), "-o", str(tmp_path / "hot.qca"),
          "--model", str(run_dir)])
    capsys.readouterr()
    assert main(["decode", str(tmp_path / "hot.qca"), "-o", str(tmp_path / "hot.wav2.wav"),
                 "--model", str(run_dir)]) == 0
    decoded, _ = sf.read(str(tmp_path / "hot.wav2.wav"), always_2d=True)
    assert np.abs(decoded).max() <= 1.0
    assert sf.info(str(tmp_path / "hot.wav2.wav")).subtype == "PCM_16"


def test_cli_kbps_below_lowest(tmp_path, run_dir, capsys):
    write_wav(tmp_path / "a.wav", tones(1, 1600, 16000), 16000)
    assert main(["encode", str(tmp_path / "a.wav"), "-o", str(tmp_path / "a.qca"),
                 "--model", str(run_dir), "--kbps", "1"]) == 2
    one_error_line(capsys, "1.0 kbps is below")
    assert not (tmp_path / "a.qca").exists()


def _bad_audio_files(tmp_path):
    (tmp_path / "text.wav").write_text("this is not audio")
    sf.write(str(tmp_path / "empty.wav"), np.zeros((0, 1)), 16000)
    return {"missing.wav": "no such file", "text.wav": "not a readable audio file",
            "empty.wav": "empty audio"}


@pytest.mark.parametrize("name", ["missing.wav", "text.wav", "empty.wav"])
def test_cli_encode_bad_input(tmp_path, run_dir, capsys, name):
    problem = _bad_audio_files(tmp_path)[name]
    assert main(["encode", str(tmp_path / name), "-o", str(tmp_path / "out.qca"),
                 "--model", str(run_dir)]) == 2
    one_error_line(capsys, str(tmp_path / name), problem)
    assert not list(tmp_path.glob("*.qca")) and not list(tmp_path.glob(".*.tmp"))


def _damage(data: bytes, how: str) -> bytes:
    if how == "truncated":
        return data[:len(data) // 2]
    if how == "magic":
        return b"RIFF" + data[4:]
    if how == "version":
        return data[:4] + bytes([9]) + data[5:]
    broken = bytearray(data)
    broken[-20] ^= 0x40
    return bytes(broken)


@pytest.mark.parametrize("how, problem", [("truncated", "truncated"), ("magic", "wrong magic"),
                                          ("version", "unknown format version 9"),
                                          ("checksum", "bad checksum")])
def test_cli_decode_bad_input(tmp_path, run_dir, trained_model, capsys, how, problem):
    data = compress.encode(trained_model, tones(1, 8000, 16000), 16000, n_q=2)
    (tmp_path / "a.qca").write_bytes(_damage(data, how))
    assert main(["decode", str(tmp_path / "a.qca"), "-o", str(tmp_path / "a.wav"),
                 "--model", str(run_dir)]) == 2
    one_error_line(capsys, str(tmp_path / "a.qca"), problem)
    assert not list(tmp_path.glob("*.wav")) and not list(tmp_path.glob(".*.tmp"))


def test_cli_decode_postfilter_changes_the_audio_and_refuses_bad_exponents(
        tmp_path, run_dir, capsys):
    write_wav(tmp_path / "a.wav", tones(1, 16000, 16000), 16000)
    main(["encode", str(tmp_path / "a.wav"), "-o", str(tmp_path / "a.qca"),
          "--model", str(run_dir)])
    outputs = {}
    for exponent in (None, "1", "2"):
        target = tmp_path / f"out{exponent}.wav"
        extra = [] if exponent is None else ["--postfilter", exponent]
        assert main(["decode", str(tmp_path / "a.qca"), "-o", str(target), "--model",
                     str(run_dir), "--subtype", "FLOAT", *extra]) == 0
        outputs[exponent] = sf.read(str(target), dtype="float32")[0]
    np.testing.assert_array_equal(outputs[None], outputs["1"])  # the model's own is off
    assert not np.allclose(outputs["1"], outputs["2"], atol=1e-4)
    capsys.readouterr()
    assert main(["decode", str(tmp_path / "a.qca"), "-o", str(tmp_path / "bad.wav"),
                 "--model", str(run_dir), "--postfilter", "0.5"]) == 2
    one_error_line(capsys, "in [1, 4]")
    assert not (tmp_path / "bad.wav").exists()


def test_cli_decode_with_another_model(tmp_path, run_dir, untrained_model, capsys):
    data = compress.encode(untrained_model, tones(1, 8000, 16000), 16000, n_q=2)
    (tmp_path / "a.qca").write_bytes(data)
    assert main(["decode", str(tmp_path / "a.qca"), "-o", str(tmp_path / "a.wav"),
                 "--model", str(run_dir)]) == 2
    one_error_line(capsys, "a.qca", untrained_model.model_id,
                   bitstream.read_file(tmp_path / "a.qca")[0].model_id)
    assert not (tmp_path / "a.wav").exists()


def test_cli_decode_without_model_or_hint(tmp_path, untrained_model, capsys):
    data = compress.encode(untrained_model, tones(1, 8000, 16000), 16000, n_q=2)
    (tmp_path / "a.qca").write_bytes(data)
    assert main(["decode", str(tmp_path / "a.qca"), str(tmp_path / "a.wav")]) == 2
    one_error_line(capsys, "a.qca", "--model")


def test_cli_refuses_to_overwrite_without_force(tmp_path, run_dir, capsys):
    write_wav(tmp_path / "a.wav", tones(1, 8000, 16000), 16000)
    encode = ["encode", str(tmp_path / "a.wav"), str(tmp_path / "a.qca"), "--model", str(run_dir)]
    assert main(encode) == 0
    first = (tmp_path / "a.qca").read_bytes()
    (tmp_path / "a.qca").write_bytes(b"keep me")
    assert main(encode) == 2
    one_error_line(capsys, str(tmp_path / "a.qca"), "exists", "--force")
    assert (tmp_path / "a.qca").read_bytes() == b"keep me"
    assert main([*encode, "--force"]) == 0
    assert (tmp_path / "a.qca").read_bytes() == first
    decode = ["decode", str(tmp_path / "a.qca"), str(tmp_path / "b.wav")]
    (tmp_path / "b.wav").write_bytes(b"keep me too")
    assert main(decode) == 2
    one_error_line(capsys, str(tmp_path / "b.wav"), "exists", "--force")
    assert (tmp_path / "b.wav").read_bytes() == b"keep me too"
    assert main([*decode, "-f"]) == 0
    assert sf.info(str(tmp_path / "b.wav")).frames == 8000


def test_cli_prints_one_summary_line_per_file(tmp_path, run_dir, capsys):
    write_wav(tmp_path / "a.wav", tones(1, 16000, 16000), 16000)
    assert main(["encode", str(tmp_path / "a.wav"), str(tmp_path / "a.qca"),
                 "--model", str(run_dir), "--n-q", "2"]) == 0
    line, = capsys.readouterr().out.splitlines()
    assert re.fullmatch(rf"{re.escape(str(tmp_path / 'a.wav'))} -> .*a\.qca: 1\.00 s of audio, "
                        r"1[0-9]\.\d\d kbps, \d+\.\d\d s.*", line), line
    assert main(["decode", str(tmp_path / "a.qca"), str(tmp_path / "b.wav")]) == 0
    line, = capsys.readouterr().out.splitlines()
    assert "-> " + str(tmp_path / "b.wav") + ": 1.00 s of audio" in line


def test_cli_decode_finds_the_named_model_from_the_current_folder(
        tmp_path, tmp_path_factory, run_dir, monkeypatch, capsys):
    elsewhere = tmp_path_factory.mktemp("shared") / "deep"
    write_wav(tmp_path / "a.wav", tones(1, 8000, 16000), 16000)
    assert main(["encode", str(tmp_path / "a.wav"), str(tmp_path / "a.qca"),
                 "--model", str(run_dir / "best")]) == 0
    assert bitstream.read_file(tmp_path / "a.qca")[0].model_hint == "run/best"
    elsewhere.mkdir(parents=True)
    (tmp_path / "a.qca").rename(elsewhere / "a.qca")
    monkeypatch.chdir(elsewhere)
    assert main(["decode", "a.qca", "a.wav"]) == 2  # "run" is not near it nor here
    one_error_line(capsys, "a.qca", "run/best", "--model")
    monkeypatch.chdir(tmp_path)
    assert main(["decode", str(elsewhere / "a.qca"), str(elsewhere / "a.wav")]) == 0


def test_cli_folders_mirror_the_tree_and_survive_a_bad_file(tmp_path, run_dir, capsys):
    src = tmp_path / "in"
    write_wav(src / "a.wav", tones(1, 8000, 16000), 16000)
    write_wav(src / "sub" / "b.wav", tones(2, 22050, 44100), 44100)
    (src / "sub" / "bad.wav").write_text("not audio")
    (src / "notes.txt").write_text("ignored: not an audio suffix")
    assert main(["encode", str(src), "-o", str(tmp_path / "codes"), "--model", str(run_dir),
                 "--n-q", "3"]) == 2
    *errors, summary = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 1 and str(src / "sub" / "bad.wav") in errors[0]
    assert summary == "codec encode: 1 of 3 files failed"
    assert sorted(p.relative_to(tmp_path / "codes").as_posix()
                  for p in (tmp_path / "codes").rglob("*")) == ["a.qca", "sub", "sub/b.qca"]
    assert main(["decode", str(tmp_path / "codes"), "-o", str(tmp_path / "out")]) == 0
    assert sf.info(str(tmp_path / "out" / "sub" / "b.wav")).frames == 22050
    assert sf.info(str(tmp_path / "out" / "sub" / "b.wav")).channels == 2
    assert sf.info(str(tmp_path / "out" / "a.wav")).samplerate == 16000


def test_cli_entropy_tables_and_entropy_encode(tmp_path, run_dir, capsys):
    for index in range(3):
        write_wav(tmp_path / "train" / f"{index}.wav", tones(1, 16000, 16000, seed=index), 16000)
    manifest = tmp_path / "train.jsonl"
    manifest.write_text("".join(f'{{"path": "train/{i}.wav"}}\n' for i in range(3)))
    assert main(["encode", str(tmp_path / "train" / "0.wav"), "-o", str(tmp_path / "x.qca"),
                 "--model", str(run_dir), "--entropy"]) == 2
    one_error_line(capsys, "entropy-tables")
    assert main(["entropy-tables", "--model", str(run_dir), "--data", str(manifest)]) == 0
    assert "expected saving" in capsys.readouterr().out
    assert (run_dir / entropy.TABLES_FILE).is_file()
    assert main(["encode", str(tmp_path / "train" / "1.wav"), "-o", str(tmp_path / "x.qca"),
                 "--model", str(run_dir), "--entropy"]) == 0
    assert main(["decode", str(tmp_path / "x.qca"), "-o", str(tmp_path / "x.wav")]) == 0
    assert sf.info(str(tmp_path / "x.wav")).frames == 16000
    info = bitstream.describe(tmp_path / "x.qca")
    assert info["entropy_coded"] and info["payload_saving_percent"] > 0
