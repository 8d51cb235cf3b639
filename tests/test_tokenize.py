"""``codec tokenize`` and ``codec detokenize``: the tokens are the codes ``codec encode``
writes, decode to what ``codec decode`` gives, and come out the same bytes however the
shards are shared out (worker processes, job arrays, a rerun after an interruption)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from tiny_run import save_tiny_run

import codec.tokens.tokenize as tokenize_module
from codec.cli import main
from codec.coding import bitstream
from codec.compress import encode_file, payload_codes
from codec.config import CodingConfig
from codec.pretrained import load
from codec.tokens.shards import read_meta, read_rows, written_shards

KBPS = "12"  # the tiny model: 2 codebooks of 256 at 600 frames/s and 8 band levels
# (seconds, rate, channels) of the clips, in manifest order; a missing file, a file
# shorter than a frame and one that is not audio between them.
CLIPS = [(0.5, 24000, 1), (0.3, 16000, 2), None, (0.001, 24000, 1), (0.8, 44100, 1),
         (0.4, 24000, 1), "bad"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """An untrained tiny model that sends band levels, saved as a run."""
    return save_tiny_run(tmp_path_factory.mktemp("tokens") / "run", CodingConfig(band_levels=8))


@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("clips")
    rng = np.random.default_rng(0)
    lines = []
    for number, clip in enumerate(CLIPS):
        path = root / f"c{number}.wav"
        if clip == "bad":
            path.write_text("not audio")
        elif clip is not None:
            seconds, rate, channels = clip
            sf.write(path, 0.1 * rng.standard_normal((int(seconds * rate), channels)), rate)
        lines.append({"path": path.name})  # relative: taken from the manifest's folder
    (root / "all.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    return root / "all.jsonl"


def tokenize(run_dir: Path, manifest: Path, out: Path, *extra: str) -> int:
    return main(["tokenize", "--model", str(run_dir), "--data", str(manifest), "-o", str(out),
                 "--kbps", KBPS, "--shard-rows", "300", *extra])


def contents(out: Path) -> dict[str, bytes]:
    """What must be the same whoever wrote it: the shards, the index, the skipped list."""
    found = {str(p.relative_to(out)): p.read_bytes() for p in written_shards(out)}
    for name in ("index.jsonl", "skipped.jsonl"):
        found[name] = (out / name).read_bytes()
    return found


@pytest.fixture(scope="module")
def single(run_dir, manifest, tmp_path_factory) -> Path:
    """One process's tokens of the manifest."""
    out = tmp_path_factory.mktemp("single") / "tokens"
    assert tokenize(run_dir, manifest, out) == 0
    return out


def index(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "index.jsonl").read_text().splitlines()]


def test_the_shards_hold_every_file_once_and_list_the_skipped(single, manifest):
    assert len(written_shards(single)) == 4  # 300-row shards of files of 240 to 480 rows
    lines = index(single)
    assert [line["line"] for line in lines] == [1, 2, 5, 6]
    assert all(line["path"] == str(manifest.parent / f"c{line['line'] - 1}.wav")
               for line in lines)
    skipped = [json.loads(line) for line in (single / "skipped.jsonl").read_text().splitlines()]
    assert [(s["line"], s["reason"]) for s in skipped] == [(3, "missing"), (4, "too_short"),
                                                           (7, "unreadable")]
    summary = json.loads((single / "tokens.json").read_text())
    assert summary["files"] == 4 and summary["skipped"] == {"missing": 1, "too_short": 1,
                                                            "unreadable": 1}
    settings = summary["settings"]
    assert (settings["n_q"], settings["frame_rate"], settings["band_levels"]) == (2, 600, 8)
    assert summary["versions"]["codec"] and summary["provenance"]["versions"]["torch"]
    stereo = lines[1]
    assert (stereo["items"], stereo["frames"]) == (2, 180)  # a sequence per channel
    meta = read_meta(single / stereo["shard"])
    assert meta["settings"] == settings and meta["index"] == [stereo]


def test_the_tokens_are_the_codes_codec_encode_writes(single, run_dir, tmp_path):
    model = load(run_dir)
    for line in index(single):
        qca = encode_file(model, line["path"], tmp_path / "x.qca", kbps=float(KBPS))
        header, payload = bitstream.parse(qca.read_bytes())
        codes = payload_codes(header, payload[:header.codes_bytes], None)  # [items, n_q, T]
        rows = read_rows(single / line["shard"], line["start"], line["end"])
        assert rows.dtype == np.int16
        np.testing.assert_array_equal(rows, codes.transpose(0, 2, 1).reshape(-1, header.n_q))
        assert line["gain"] == header.gain
        assert line["band_levels"] == header.band_levels


def test_detokenize_gives_what_codec_decode_gives(single, run_dir, tmp_path):
    line = index(single)[1]  # 16 kHz stereo: resampled, two sequences, band levels
    model = str(run_dir)
    assert main(["encode", line["path"], "-o", str(tmp_path / "c.qca"), "--model", model,
                 "--kbps", KBPS]) == 0
    assert main(["decode", str(tmp_path / "c.qca"), "-o", str(tmp_path / "decoded.wav"),
                 "--model", model, "--subtype", "FLOAT"]) == 0
    assert main(["detokenize", str(single), "--file", line["path"], "-o",
                 str(tmp_path / "tokens.wav"), "--model", model, "--subtype", "FLOAT"]) == 0
    decoded, rate = sf.read(tmp_path / "decoded.wav")
    from_tokens, tokens_rate = sf.read(tmp_path / "tokens.wav")
    assert (tokens_rate, from_tokens.shape) == (rate, decoded.shape) == (16000, (4800, 2))
    np.testing.assert_allclose(from_tokens, decoded, rtol=0, atol=1e-6)
    assert main(["detokenize", str(single), "--rows", "1:10:130", "-o",
                 str(tmp_path / "rows.wav"), "--model", model]) == 0
    assert sf.info(str(tmp_path / "rows.wav")).frames == 120 * 40  # frames x hop, at 24 kHz


def test_two_workers_write_the_bytes_one_process_writes(single, run_dir, manifest, tmp_path):
    assert tokenize(run_dir, manifest, tmp_path / "two", "--workers", "2") == 0
    assert contents(tmp_path / "two") == contents(single)


def test_a_rerun_after_an_interruption_codes_only_the_shards_not_written(
        single, run_dir, manifest, tmp_path, monkeypatch):
    coded: list[int] = []
    real = tokenize_module.code_file

    def interrupted(model, source, job):
        if coded:  # the second shard's first file: as Ctrl-C (or kill -9) would
            raise KeyboardInterrupt
        coded.append(source.line)
        return real(model, source, job)

    monkeypatch.setattr(tokenize_module, "code_file", interrupted)
    out = tmp_path / "tokens"
    assert tokenize(run_dir, manifest, out) == 130
    first = out / "shards" / "tokens-00000-of-00004.safetensors"
    assert [p.name for p in (out / "shards").iterdir()] == [first.name]  # no temporary left
    assert not (out / "index.jsonl").exists()
    written = first.stat().st_mtime_ns
    coded.clear()
    monkeypatch.setattr(tokenize_module, "code_file",
                        lambda model, source, job: coded.append(source.line) or real(
                            model, source, job))
    assert tokenize(run_dir, manifest, out) == 0
    assert coded == [2, 3, 4, 5, 6, 7]  # every manifest line but the first shard's
    assert first.stat().st_mtime_ns == written
    assert contents(out) == contents(single)


def test_a_job_array_and_its_merge_write_what_one_process_writes(
        single, run_dir, manifest, tmp_path, monkeypatch, capsys):
    out = tmp_path / "tokens"
    assert tokenize(run_dir, manifest, out, "--shard", "0/2") == 0
    assert sorted(p.name[7:12] for p in written_shards(out)) == ["00000", "00002"]
    assert not (out / "index.jsonl").exists()  # the other job's shards are missing
    capsys.readouterr()
    assert main(["tokenize", "--merge", str(out)]) == 2
    assert "2 of 4 shards are missing (shard 1, 3)" in capsys.readouterr().err
    monkeypatch.setenv("RANK", "1")  # as torchrun starts the second of two processes
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert tokenize(run_dir, manifest, out) == 0  # the last job merges
    assert contents(out) == contents(single)
    (out / "index.jsonl").unlink()
    assert main(["tokenize", "--merge", str(out)]) == 0
    assert contents(out) == contents(single)


def test_codes_only(single, run_dir, manifest, tmp_path, capsys):
    out = tmp_path / "codes"
    assert tokenize(run_dir, manifest, out, "--no-side-info") == 0
    for ours, theirs in zip(index(out), index(single), strict=True):
        assert "gain" not in ours and "band_levels" not in ours
        np.testing.assert_array_equal(read_rows(out / ours["shard"], ours["start"], ours["end"]),
                                      read_rows(single / theirs["shard"], theirs["start"],
                                                theirs["end"]))
    capsys.readouterr()
    assert main(["detokenize", str(out), "--file", index(out)[0]["path"], "-o",
                 str(tmp_path / "x.wav"), "--model", str(run_dir)]) == 0
    assert "--no-side-info" in capsys.readouterr().err


def test_a_folder_of_other_settings_is_refused(single, run_dir, manifest, tmp_path, capsys):
    out = tmp_path / "tokens"
    shutil.copytree(single, out)
    assert tokenize(run_dir, manifest, out, "--no-side-info") == 2
    assert "made from other files or settings" in capsys.readouterr().err
    assert tokenize(run_dir, manifest, out, "--shard-rows", "1000") == 2
    assert "holds shards of another run" in capsys.readouterr().err


@pytest.mark.parametrize("extra, message", [
    (["--shard", "2/2"], "--shard takes I/N with 0 <= I < N"),
    (["--kbps", "1"], "--kbps: 1.0 kbps is below this model's lowest bitrate"),
    (["--workers", "0"], "--workers must be at least 1"),
])
def test_bad_options_are_one_line(run_dir, manifest, tmp_path, capsys, extra, message):
    assert tokenize(run_dir, manifest, tmp_path / "out", *extra) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and message in error[0], error
    assert main(["tokenize", "--merge", str(tmp_path / "out"), "--kbps", "6"]) == 2
    assert main(["detokenize", str(tmp_path), "--file", "x.wav", "-o",
                 str(tmp_path / "y.wav"), "--model", str(run_dir)]) == 2
