import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from codec.audio import loudness
from codec.config import DataConfig
from codec.errors import CodecError
from codec.train import data
from codec.train.data import TrainCrops, ValidCrops, build_datasets, rms_db
from data_prep.manifest import Candidate, manifest_line
from data_prep.probe import probe


def write(path: Path, audio: np.ndarray, rate: int) -> Path:
    """Write float ``[T, C]`` audio as a float WAV (no quantisation to blur levels)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), audio.astype(np.float32), rate, subtype="FLOAT")
    return path


def make_manifest(path: Path, files: list[Path], group: str = "g") -> Path:
    """A manifest of ``files`` measured the way data_prep.manifest measures them."""
    rows = []
    for number, file in enumerate(files):
        measured = probe(str(file))
        rows.append(manifest_line(Candidate(str(file), file.name), measured, f"{group}{number}"))
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def noise(seconds: float, rate: int, level: float, channels: int = 1, seed: int = 0):
    rng = np.random.default_rng(seed)
    return level * rng.standard_normal((int(seconds * rate), channels))


@pytest.fixture
def stereo_16k(tmp_path) -> Path:
    """Steady noise, 16 kHz stereo, 3 s, well below the -23 LUFS target."""
    file = write(tmp_path / "noise.wav", noise(3.0, 16000, 0.01, channels=2), 16000)
    return make_manifest(tmp_path / "noise.jsonl", [file])


def test_crop_has_the_model_rate_and_layout_from_a_16k_stereo_file(stereo_16k):
    crops = TrainCrops([stereo_16k], sample_rate=24000, channels=1, segment_seconds=1.0)
    crop = crops[0]
    assert crop.shape == (1, 24000) and crop.dtype == torch.float32
    assert TrainCrops([stereo_16k], 24000, 2, segment_seconds=0.5)[0].shape == (2, 12000)
    assert len(crops) == data.STREAM_LENGTH


def test_same_index_gives_the_same_crop_and_other_indices_other_crops(stereo_16k):
    crops = TrainCrops([stereo_16k], 24000, 1, seed=7)
    assert torch.equal(crops[5], crops[5])
    assert torch.equal(crops[5], TrainCrops([stereo_16k], 24000, 1, seed=7)[5])
    assert not torch.equal(crops[5], crops[6])
    assert not torch.equal(crops[5], TrainCrops([stereo_16k], 24000, 1, seed=8)[5])


def test_normalised_crops_land_at_the_target_loudness(stereo_16k):
    # Steady noise: a crop is as loud as its file, so the file's gain brings it to target.
    for channels in (2, 1):  # kept as stereo, and downmixed (6 dB down for independent noise)
        crops = TrainCrops([stereo_16k], 24000, channels, segment_seconds=2.0, target_lufs=-23.0)
        for index in range(3):
            assert loudness(crops[index], 24000) == pytest.approx(-23.0, abs=0.5)


def test_loudness_off_keeps_recorded_levels(tmp_path):
    file = write(tmp_path / "a.wav", noise(2.0, 24000, 0.05), 24000)
    manifest = make_manifest(tmp_path / "a.jsonl", [file])
    crop = TrainCrops([manifest], 24000, 1, target_lufs=None)[0]
    original, _ = sf.read(str(file), dtype="float32")
    assert rms_db(crop) == pytest.approx(20 * np.log10(original.std()), abs=0.3)


def test_gain_never_takes_the_peak_over_0_99(tmp_path):
    # Sparse clicks: quiet on average, so reaching -10 LUFS would need a gain that clips.
    audio = np.zeros((3 * 24000, 1))
    audio[::2400] = 0.5
    audio += noise(3.0, 24000, 0.001)
    manifest = make_manifest(tmp_path / "a.jsonl", [write(tmp_path / "a.wav", audio, 24000)])
    crops = TrainCrops([manifest], 24000, 1, target_lufs=-10.0)
    for index in range(4):
        peak = float(crops[index].abs().max())
        assert peak <= data.MAX_PEAK + 1e-6
        assert peak == pytest.approx(data.MAX_PEAK, abs=1e-3)  # the limit, not the target


def test_short_files_are_zero_padded_at_the_end(tmp_path):
    tone = 0.3 * np.sin(2 * np.pi * 440 * np.arange(7200) / 24000)[:, None]
    manifest = make_manifest(tmp_path / "a.jsonl", [write(tmp_path / "a.wav", tone, 24000)])
    crop = TrainCrops([manifest], 24000, 1, target_lufs=None)[0]
    assert crop.shape == (1, 24000)
    assert torch.allclose(crop[0, :7200], torch.from_numpy(tone[:, 0]).float(), atol=1e-6)
    assert torch.count_nonzero(crop[0, 7200:]) == 0


def test_salient_crops_avoid_silence_and_keep_the_loudest_try(tmp_path):
    # 5 s: silence except a tone from 2 s to 3 s, so about half of all 1 s crops are silent.
    audio = np.zeros((5 * 8000, 1))
    audio[16000:24000, 0] = 0.3 * np.sin(2 * np.pi * 300 * np.arange(8000) / 8000)
    manifest = make_manifest(tmp_path / "a.jsonl", [write(tmp_path / "a.wav", audio, 8000)])
    plain = TrainCrops([manifest], 8000, 1, salient_retries=0, salient_min_db=-40.0)
    salient = TrainCrops([manifest], 8000, 1, salient_retries=12, salient_min_db=-40.0)
    plain_levels = [rms_db(plain[i]) for i in range(16)]
    salient_levels = [rms_db(salient[i]) for i in range(16)]
    assert min(plain_levels) < -40.0
    assert min(salient_levels) >= -40.0
    # An unreachable threshold: every try is made and the loudest kept, and the first try
    # is the plain crop itself.
    greedy = TrainCrops([manifest], 8000, 1, salient_retries=5, salient_min_db=100.0)
    for index in range(8):
        assert rms_db(greedy[index]) >= plain_levels[index]


def test_crops_are_served_the_same_by_two_dataloader_workers(stereo_16k):
    crops = TrainCrops([stereo_16k], 24000, 1, seed=1)
    loader = torch.utils.data.DataLoader(crops, batch_size=4, sampler=list(range(8)),
                                         num_workers=2)
    batches = list(loader)
    assert [b.shape for b in batches] == [(4, 1, 24000)] * 2
    expected = torch.stack([crops[i] for i in range(8)])
    assert torch.equal(torch.cat(batches), expected)


def test_mixing_weights_choose_the_manifest(tmp_path, monkeypatch):
    first = make_manifest(tmp_path / "a.jsonl",
                          [write(tmp_path / "a.wav", noise(2.0, 8000, 0.1), 8000)])
    second = make_manifest(tmp_path / "b.jsonl",
                           [write(tmp_path / "b.wav", noise(2.0, 8000, 0.1, seed=1), 8000)])
    read = []
    real = data.read_crop
    monkeypatch.setattr(data, "read_crop", lambda path, *a: read.append(path) or real(path, *a))
    crops = TrainCrops([first, second], 8000, 1, weights=(0.0, 1.0))
    for index in range(10):
        crops[index]
    assert {Path(path).name for path in read} == {"b.wav"}
    with pytest.raises(CodecError, match="one weight per manifest"):
        TrainCrops([first, second], 8000, 1, weights=(1.0,))


def test_balance_by_kind_gives_a_short_kind_the_same_share_as_a_long_one(tmp_path,
                                                                          monkeypatch):
    music = [write(tmp_path / f"m{i}.wav", noise(8.0, 8000, 0.1, seed=i), 8000) for i in range(4)]
    speech = [write(tmp_path / "s.wav", noise(2.0, 8000, 0.1, seed=9), 8000)]
    rows = [json.loads(line) for line in make_manifest(tmp_path / "m.jsonl", music).open()]
    rows += [json.loads(line) for line in make_manifest(tmp_path / "s.jsonl", speech).open()]
    for row in rows:
        row["group"] = ("speech/" if row["path"].endswith("s.wav") else "music/") + row["group"]
    manifest = tmp_path / "all.jsonl"
    manifest.write_text("".join(json.dumps(row) + "\n" for row in rows))
    read = []
    real = data.read_crop
    monkeypatch.setattr(data, "read_crop", lambda path, *a: read.append(path) or real(path, *a))

    def speech_share(balance: str) -> float:
        read.clear()
        crops = TrainCrops([manifest], 8000, 1, segment_seconds=0.5, balance=balance)
        for index in range(400):
            crops[index]
        return sum(Path(p).name == "s.wav" for p in read) / len(read)

    assert speech_share("duration") == pytest.approx(2 / 34, abs=0.04)
    assert speech_share("kind") == pytest.approx(0.5, abs=0.08)
    with pytest.raises(CodecError, match="choices"):
        TrainCrops([manifest], 8000, 1, balance="genre")


def test_valid_crops_are_fixed_and_go_round_the_groups(tmp_path):
    files = [write(tmp_path / f"{i}.wav", noise(2.0, 8000, 0.1, seed=i), 8000) for i in range(3)]
    manifest = make_manifest(tmp_path / "v.jsonl", files)
    valid = ValidCrops(manifest, 8000, 1, count=5, seed=4)
    again = ValidCrops(manifest, 8000, 1, count=5, seed=4)
    assert len(valid) == 5
    assert all(torch.equal(valid[i], again[i]) for i in range(5))
    assert sorted(valid.rows[:3].tolist()) == [0, 1, 2]  # three groups, three first crops
    with pytest.raises(IndexError):
        valid[5]


def test_build_datasets_from_a_data_config(stereo_16k):
    config = DataConfig(train=(str(stereo_16k),), valid=str(stereo_16k), valid_crops=3,
                        segment_seconds=0.5)
    train, valid = build_datasets(config, sample_rate=24000, channels=1, seed=0)
    assert train[0].shape == valid[0].shape == (1, 12000) and len(valid) == 3
    _, none = build_datasets(DataConfig(train=(str(stereo_16k),)), 24000, 1, 0)
    assert none is None


def test_clear_errors_for_bad_manifests_and_vanished_files(tmp_path, stereo_16k):
    with pytest.raises(CodecError, match="manifest not found"):
        TrainCrops([tmp_path / "missing.jsonl"], 24000, 1)
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(CodecError, match="lists no files"):
        TrainCrops([tmp_path / "empty.jsonl"], 24000, 1)
    line = json.loads(stereo_16k.read_text())
    del line["loudness"]
    (tmp_path / "partial.jsonl").write_text("\n" + json.dumps(line) + "\n")
    with pytest.raises(CodecError, match=r"partial.jsonl:2: missing field\(s\) \['loudness'\]"):
        TrainCrops([tmp_path / "partial.jsonl"], 24000, 1)
    with pytest.raises(CodecError, match="no training manifest"):
        TrainCrops([], 24000, 1)
    crops = TrainCrops([stereo_16k], 24000, 1)
    Path(json.loads(stereo_16k.read_text())["path"]).unlink()
    with pytest.warns(data.DataWarning, match="no longer exists"):
        with pytest.raises(CodecError, match="no usable training crop.* e.g. .*noise.wav"):
            crops[0]


def test_packed_strings_give_back_what_went_in():
    items = ["/a/b.wav", "", "/späť/ünïcode €.flac"]
    packed = data.Strings(items)
    assert len(packed) == 3 and [packed[i] for i in range(3)] == items


def test_a_stereo_model_gets_each_channel_at_its_own_level_and_the_balance_kept(tmp_path):
    # Left 6 dB over right: one gain for the file, so the crop keeps the balance.
    audio = noise(3.0, 44100, 0.02, channels=2) * np.array([1.0, 0.5])
    manifest = make_manifest(tmp_path / "m.jsonl", [write(tmp_path / "a.wav", audio, 44100)])
    crop = TrainCrops([manifest], 44100, 2, segment_seconds=2.0, target_lufs=-23.0)[0]
    assert crop.shape == (2, 88200)
    levels = crop.double().square().mean(dim=1)
    assert 10 * np.log10(float(levels[0] / levels[1])) == pytest.approx(6.02, abs=0.2)
    assert loudness(crop, 44100) == pytest.approx(-23.0, abs=0.5)  # BS.1770 sums channels


def test_a_mono_file_is_coded_centred_by_a_stereo_model_at_the_target(tmp_path):
    """Both channels alike (the file's one channel in each), at the target loudness of
    the two together: 3 dB under the level a mono model gets the file at."""
    manifest = make_manifest(tmp_path / "m.jsonl",
                             [write(tmp_path / "a.wav", noise(3.0, 44100, 0.01), 44100)])
    stereo = TrainCrops([manifest], 44100, 2, segment_seconds=2.0)[0]
    mono = TrainCrops([manifest], 44100, 1, segment_seconds=2.0)[0]
    assert torch.equal(stereo[0], stereo[1])
    assert loudness(stereo, 44100) == pytest.approx(-23.0, abs=0.5)
    assert rms_db(stereo[:1]) == pytest.approx(rms_db(mono) - 3.01, abs=0.1)


def test_a_48k_stereo_file_is_resampled_for_a_44k_model(tmp_path):
    audio = noise(2.0, 48000, 0.02, channels=2)
    manifest = make_manifest(tmp_path / "m.jsonl", [write(tmp_path / "a.wav", audio, 48000)])
    line = json.loads(manifest.read_text())
    assert (line["sample_rate"], line["channels"]) == (48000, 2)  # the manifest keeps them
    crop = TrainCrops([manifest], 44100, 2, segment_seconds=1.0)[0]
    assert crop.shape == (2, 44100) and not torch.equal(crop[0], crop[1])
