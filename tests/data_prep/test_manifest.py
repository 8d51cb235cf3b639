import json
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from codec.audio import loudness
from codec.train.data import MANIFEST_FIELDS, read_manifest
from data_prep import manifest, probe
from data_prep.split import SplitSizes, assign_splits, group_of, stratum_of


def sine(seconds: float, rate: int, amplitude: float = 0.1, hz: float = 1000.0,
         channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    wave = (amplitude * np.sin(2 * np.pi * hz * t)).astype(np.float32)
    return np.repeat(wave[:, None], channels, axis=1)  # [T, C]


def write(path: Path, data: np.ndarray, rate: int = 16000, subtype: str = "PCM_16") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), data, rate, subtype=subtype)
    return path


def lines(path: Path) -> list[dict]:
    text = path.read_text()
    return [json.loads(line) for line in text.splitlines()]


# ------------------------------------------------------------------ loudness

def test_files_are_measured_in_blocks_as_loud_as_the_whole_signal(tmp_path, monkeypatch):
    rng = np.random.default_rng(1)
    audio = sine(3.0, 16000, amplitude=0.3, hz=440, channels=2)
    audio[:, 1] *= 0.5
    audio += 0.02 * rng.standard_normal(audio.shape).astype(np.float32)
    path = write(tmp_path / "a.wav", audio, 16000, subtype="FLOAT")
    whole = loudness(torch.from_numpy(audio.T.copy()), 16000)
    monkeypatch.setattr(probe, "BLOCK_SECONDS", 0.7)
    measured = probe.probe(str(path))
    assert measured.loudness == pytest.approx(whole, abs=0.01)
    assert measured.frames == 48000 and measured.peak == pytest.approx(np.abs(audio).max())


# ------------------------------------------------------------------ bad files

def make_bad_folder(root: Path) -> dict[str, str]:
    """Good files in root/good*, and one bad file per reason; returns bad name -> reason."""
    write(root / "spk1" / "good1.wav", sine(1.0, 16000))
    write(root / "spk2" / "good2.flac", sine(1.0, 22050, channels=2), 22050)
    write(root / "good3.ogg", sine(1.0, 24000), 24000, subtype="VORBIS")
    whole = write(root / "whole.wav", sine(2.0, 16000)).read_bytes()
    (root / "whole.wav").unlink()
    (root / "truncated.wav").write_bytes(whole[: len(whole) // 2])  # cut mid-data
    broken = bytearray(whole)
    broken[8:16] = b"JUNKJUNK"  # RIFF then garbage where WAVE/fmt belong
    (root / "broken_header.wav").write_bytes(bytes(broken))
    (root / "empty.wav").write_bytes(b"")
    write(root / "silent.wav", np.zeros((16000, 1), np.float32))
    (root / "text.wav").write_text("this is not audio\n" * 20)
    nan = sine(1.0, 16000)
    nan[500] = np.nan
    write(root / "nan.wav", nan, subtype="FLOAT")
    write(root / "short.wav", sine(0.2, 16000))
    return {"truncated.wav": "unreadable", "broken_header.wav": "unreadable",
            "empty.wav": "empty", "silent.wav": "silent", "text.wav": "not_audio",
            "nan.wav": "non_finite", "short.wav": "too_short"}


def test_manifests_hold_exactly_the_good_files_and_skipped_names_each_bad_one(tmp_path):
    root = tmp_path / "audio"
    bad = make_bad_folder(root)
    (root / ".hidden.wav").write_text("ignored")
    summary = manifest.build([root], tmp_path / "out", min_seconds=0.5)
    used = [line for split in ("train", "valid", "test")
            for line in lines(tmp_path / "out" / f"{split}.jsonl")]
    assert sorted(Path(line["path"]).name for line in used) == ["good1.wav", "good2.flac",
                                                                "good3.ogg"]
    for line in used:
        assert tuple(line) == tuple(MANIFEST_FIELDS)
        assert Path(line["path"]).is_absolute()
        # Every good file is a -20 dBFS sine: -23 LUFS a channel, and BS.1770 sums channels.
        expected = -23.0 + 10 * math.log10(line["channels"])
        assert line["loudness"] == pytest.approx(expected, abs=0.15)
    good2 = next(line for line in used if line["path"].endswith("good2.flac"))
    assert (good2["sample_rate"], good2["channels"], good2["frames"]) == (22050, 2, 22050)
    assert good2["group"] == "spk2"
    skipped = {Path(item["path"]).name: item["reason"]
               for item in lines(tmp_path / "out" / "skipped.jsonl")}
    assert skipped == bad
    assert summary["skipped"] == {"unreadable": 2, "empty": 1, "too_short": 1, "silent": 1,
                                  "non_finite": 1, "not_audio": 1}
    assert json.loads((tmp_path / "out" / "summary.json").read_text()) == summary


# ------------------------------------------------------------------ splits

def make_corpus(root: Path, per_kind: int = 6, files: int = 2) -> None:
    for kind in ("speech", "music"):
        for group in range(per_kind):
            for number in range(files):
                hz = 200 + 50 * group + 10 * number
                write(root / kind / f"{kind}{group}" / f"f{number}.wav",
                      sine(0.5, 8000, hz=hz), 8000)


def split_groups(out: Path) -> dict[str, set[str]]:
    return {split: {line["group"] for line in lines(out / f"{split}.jsonl")}
            for split in ("train", "valid", "test")}


def test_splits_are_disjoint_by_group_stratified_and_identical_across_reruns(tmp_path):
    make_corpus(tmp_path / "corpus")
    manifest.build([tmp_path / "corpus"], tmp_path / "a", seed=3)
    manifest.build([tmp_path / "corpus"], tmp_path / "b", seed=3)
    for name in ("train.jsonl", "valid.jsonl", "test.jsonl", "skipped.jsonl", "summary.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    groups = split_groups(tmp_path / "a")
    assert not groups["train"] & groups["valid"]
    assert not groups["train"] & groups["test"]
    assert not groups["valid"] & groups["test"]
    for split in ("valid", "test"):  # one group of each kind: 6 groups * 0.05 rounds up to 1
        assert sorted(group.split("/")[0] for group in groups[split]) == ["music", "speech"]
    assert len(groups["train"]) == 8


def test_output_folder_inside_the_scanned_folder_is_not_scanned(tmp_path):
    make_corpus(tmp_path, per_kind=3, files=1)
    manifest.build([tmp_path], tmp_path / "manifests")
    first = (tmp_path / "manifests" / "skipped.jsonl").read_text()
    manifest.build([tmp_path], tmp_path / "manifests")
    assert (tmp_path / "manifests" / "skipped.jsonl").read_text() == first == ""


def test_split_by_file_lets_a_group_reach_every_split(tmp_path):
    make_corpus(tmp_path / "corpus", per_kind=2, files=4)
    manifest.build([tmp_path / "corpus"], tmp_path / "out", split_by="file")
    groups = split_groups(tmp_path / "out")
    assert groups["train"] == groups["valid"] == groups["test"]


def test_group_counts_per_stratum(tmp_path):
    make_corpus(tmp_path / "corpus", per_kind=5, files=1)
    summary = manifest.build([tmp_path / "corpus"], tmp_path / "out",
                             sizes=SplitSizes(valid_count=2, test_count=1))
    assert {s: row["groups"] for s, row in summary["splits"].items()} == {
        "train": 4, "valid": 4, "test": 2}


def test_split_sizes_round_and_keep_a_training_group():
    default = SplitSizes(0.05, 0.05)
    assert [default.counts(n) for n in (1, 2, 3, 40, 50)] == [(0, 0), (0, 0), (1, 1), (2, 2),
                                                              (3, 3)]
    assert SplitSizes(valid_count=1, test_count=1).counts(2) == (1, 0)
    assert SplitSizes(0.5, 0.5).counts(4) == (2, 1)


def test_assignment_of_a_group_does_not_depend_on_the_other_groups_present():
    few = assign_splits([(f"g{i}", "") for i in range(20)], SplitSizes(0.1, 0.1), seed=0)
    assert sum(split == "valid" for split in few.values()) == 2
    again = assign_splits([(f"g{i}", "") for i in reversed(range(20))], SplitSizes(0.1, 0.1),
                          seed=0)
    assert again == few
    other_seed = assign_splits([(f"g{i}", "") for i in range(20)], SplitSizes(0.1, 0.1), seed=1)
    assert other_seed != few


def test_group_and_stratum_names():
    assert group_of("take.wav") == "take.wav"
    assert group_of("spk/chapter/a.flac") == "spk/chapter"
    assert group_of("spk/chapter/a.flac", group_depth=1) == "spk"
    assert stratum_of("speech/en-us", 1) == "speech"
    assert stratum_of("speaker12", 1) == ""
    assert stratum_of("speech/en-us", 0) == ""


# ------------------------------------------------------------------ command line

def test_command_line_writes_manifests_and_prints_a_summary(tmp_path, capsys):
    make_corpus(tmp_path / "corpus", per_kind=3, files=1)
    code = manifest.main([str(tmp_path / "corpus"), "-o", str(tmp_path / "out"),
                          "--valid-groups", "1", "--test-fraction", "0", "--seed", "2"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "train" in printed and "skipped 0 file(s)" in printed
    assert len(read_manifest(tmp_path / "out" / "valid.jsonl")) == 2
    assert (tmp_path / "out" / "test.jsonl").read_text() == ""


def test_a_full_disk_is_one_line_and_leaves_no_temporary_file(tmp_path, capsys, monkeypatch):
    make_corpus(tmp_path / "corpus", per_kind=3, files=1)
    real_write_text = Path.write_text

    def full(self, *args, **kwargs):
        if self.suffix == ".tmp":
            raise OSError(28, "No space left on device")
        return real_write_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", full)
    assert manifest.main([str(tmp_path / "corpus"), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]  # after the progress of measuring the files
    assert last.startswith("data_prep.manifest: error:")
    assert "cannot write (No space left on device)" in last
    assert not list((tmp_path / "out").glob("*.tmp"))


def test_command_line_reports_a_missing_folder_in_one_line(tmp_path, capsys):
    assert manifest.main([str(tmp_path / "nowhere"), "-o", str(tmp_path / "out")]) == 2
    assert "not a folder" in capsys.readouterr().err


def test_a_file_shorter_than_one_gating_block_is_measured_looped(tmp_path):
    # BS.1770 needs 400 ms blocks; codec.audio.loudness loops a shorter clip, and so does
    # the manifest: a 0.3 s -20 dBFS sine still reads -23 LUFS.
    path = write(tmp_path / "short.wav", sine(0.3, 16000), 16000, subtype="FLOAT")
    assert probe.probe(str(path)).loudness == pytest.approx(-23.0, abs=0.1)


def test_measuring_in_two_processes_writes_the_same_manifests(tmp_path):
    make_corpus(tmp_path / "corpus", per_kind=3, files=2)
    manifest.build([tmp_path / "corpus"], tmp_path / "one")
    manifest.build([tmp_path / "corpus"], tmp_path / "two", jobs=2)
    for name in ("train.jsonl", "valid.jsonl", "test.jsonl", "summary.json"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()


# ------------------------------------------------------------------ shards

def sharded_corpus(root: Path) -> None:
    """Files of several speakers, and bad ones, so shards hold both kinds."""
    make_bad_folder(root)
    for speaker in range(6):
        for index in range(2):
            write(root / "speech" / f"s{speaker}" / f"{index}.wav",
                  sine(1.0, 16000, hz=300 + 100 * speaker + 10 * index))


def outputs(out: Path) -> dict[str, str]:
    return {name: (out / name).read_text() for name in
            ("train.jsonl", "valid.jsonl", "test.jsonl", "skipped.jsonl", "summary.json")}


def test_shards_merged_equal_one_process(tmp_path):
    root = tmp_path / "corpus"
    sharded_corpus(root)
    assert manifest.main([str(root), "-o", str(tmp_path / "one"), "--valid-groups", "1",
                          "--test-groups", "1"]) == 0
    for shard in range(3):
        assert manifest.main([str(root), "-o", str(tmp_path / "many"),
                              "--shard", f"{shard}/3"]) == 0
    assert manifest.main(["--merge", "-o", str(tmp_path / "many"), "--valid-groups", "1",
                          "--test-groups", "1"]) == 0
    assert outputs(tmp_path / "many") == outputs(tmp_path / "one")
    assert lines(tmp_path / "one" / "skipped.jsonl")  # the bad files were shared out too


def test_a_missing_or_stale_shard_is_refused(tmp_path, capsys):
    root = tmp_path / "corpus"
    sharded_corpus(root)
    out = tmp_path / "many"
    for shard in (0, 2):
        assert manifest.main([str(root), "-o", str(out), "--shard", f"{shard}/3"]) == 0
    assert manifest.main(["--merge", "-o", str(out)]) == 2
    assert "1 of 3 shards missing" in capsys.readouterr().err
    write(root / "speech" / "late" / "new.wav", sine(1.0, 16000))  # the corpus changed
    assert manifest.main([str(root), "-o", str(out), "--shard", "1/3"]) == 0
    assert manifest.main(["--merge", "-o", str(out)]) == 2
    assert "disagree on ['candidates', 'listing_sha256']" in capsys.readouterr().err
    assert not (out / "train.jsonl").exists()


@pytest.mark.parametrize("shard", ["3/3", "1", "1/0", "a/b"])
def test_a_bad_shard_is_one_line(tmp_path, capsys, shard):
    write(tmp_path / "corpus" / "a.wav", sine(1.0, 16000))
    assert manifest.main([str(tmp_path / "corpus"), "-o", str(tmp_path / "out"),
                          "--shard", shard]) == 2
    assert "--shard must be I/N" in capsys.readouterr().err
