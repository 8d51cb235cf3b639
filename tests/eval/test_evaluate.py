import csv
import math
import shutil

import pytest

from codec.pretrained import load
from eval import evaluate, opus
from eval.dataset import list_items
from eval.results import read_json


@pytest.fixture(scope="module")
def evaluated(eval_set, tiny_run, tmp_path_factory):
    """One evaluation with every option, shared by the tests below (a few seconds)."""
    out = tmp_path_factory.mktemp("eval")
    code = evaluate.main(["--model", str(tiny_run), "--data", str(eval_set), "-o", str(out),
                          "--kbps", "5,10", "--opus", "--rd", "--clips", "2",
                          "--clip-seconds", "1"])
    assert code == 0
    return out


def test_writes_per_bitrate_csv_and_json(evaluated, eval_set):
    files = list_items(eval_set)
    for key in ("codec-nq1", "codec-nq2"):
        with open(evaluated / "results" / f"{key}.csv") as handle:
            rows = list(csv.DictReader(handle))
        assert [r["file"] for r in rows] == [i.name for i in files]
        summary = read_json(evaluated / "results" / f"{key}.json")
        assert summary["files"] == len(files)
        assert summary["speech_files"] == 2
        for name in ("snr", "si_sdr", "rms_ratio", "mel_distance", "stft_distance"):
            assert math.isfinite(summary["mean"][name])
        assert summary["encode_rtf"] > 0 and summary["decode_rtf"] > 0


def test_bitrates_are_nominal_and_measured(evaluated):
    summary = read_json(evaluated / "summary.json")
    codec_rows = [s for s in summary["systems"] if s["kind"] == "codec"]
    # Tiny model: 600 frames/s x 8 bits = 4.8 kbit/s per codebook; 5 -> 1, 10 -> 2 codebooks.
    assert [(s["n_q"], s["nominal_kbps"]) for s in codec_rows] == [(1, 4.8), (2, 9.6)]
    for s in codec_rows:
        # Bit-packed codes cost exactly the nominal rate (up to the last partial frame);
        # the file adds its header.
        assert s["payload_kbps"] == pytest.approx(s["nominal_kbps"], rel=0.01)
        assert s["actual_kbps"] > s["payload_kbps"]
        assert len(s["codebook_entropy_bits"]) == s["n_q"]
        assert all(0 <= e <= 8 for e in s["codebook_entropy_bits"])


def test_speech_metrics_only_on_speech_files(evaluated):
    pytest.importorskip("pesq")
    pytest.importorskip("pystoi")
    with open(evaluated / "results" / "codec-nq1.csv") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        assert (row["pesq"] != "") == (row["speech"] == "True")
        assert (row["stoi"] != "") == (row["speech"] == "True")


def test_rate_distortion_covers_every_codebook_count(evaluated):
    rd = read_json(evaluated / "rd" / "rate_distortion.json")
    assert [r["n_q"] for r in rd["codec"]] == [1, 2, 3, 4]
    for metric in ("snr", "si_sdr", "rms_ratio", "mel_distance"):
        assert (evaluated / "rd" / f"{metric}.png").stat().st_size > 1000


@pytest.mark.skipif(not opus.available(), reason="opus-tools not installed")
def test_rate_distortion_has_the_opus_curve_and_reference(evaluated):
    rd = read_json(evaluated / "rd" / "rate_distortion.json")
    assert [r["nominal_kbps"] for r in rd["opus"]] == [4.8, 9.6, 14.4, 19.2]
    for row in rd["opus"]:
        # Measured from the file: the Ogg container costs extra over the packets.
        assert row["actual_kbps"] > row["payload_kbps"] > 0
        assert math.isfinite(row["snr"])
    assert rd["opus_reference"]["nominal_kbps"] == opus.REFERENCE_KBPS


def test_writes_a_report(evaluated):
    html = (evaluated / "index.html").read_text()
    assert html.count("<audio") >= 2 and html.count("data:image/png;base64,") >= 4


def test_bad_inputs_are_one_line_errors(tiny_run, eval_set, tmp_path, capsys):
    assert evaluate.main(["--model", str(tiny_run), "--data", str(tmp_path / "none"),
                          "-o", str(tmp_path)]) == 2
    assert "no such file" in capsys.readouterr().err
    assert evaluate.main(["--model", str(tiny_run), "--data", str(eval_set),
                          "-o", str(tmp_path), "--kbps", "1"]) == 2
    assert "lowest bitrate" in capsys.readouterr().err


def test_manifest_input_and_kind_override(tiny_run, eval_set, tmp_path):
    manifest = tmp_path / "test.jsonl"
    shutil.copy(eval_set / "music" / "m0.wav", tmp_path / "m0.wav")
    manifest.write_text('{"path": "m0.wav", "group": "speech"}\n')
    model = load(tiny_run)
    summary = evaluate.evaluate(model, list_items(manifest, kind="music"), tmp_path / "out",
                                kbps=(5,), clips=0)
    assert summary["speech_files"] == 0
    assert "pesq" not in summary["systems"][0]["mean"]


def test_codes_with_the_level_matched_unless_told_not_to(tiny_run, eval_set, tmp_path):
    model, items = load(tiny_run), list_items(eval_set / "music")
    matched = evaluate.evaluate(model, items, tmp_path / "matched", kbps=(5,), clips=0)
    plain = evaluate.evaluate(model, items, tmp_path / "plain", kbps=(5,), clips=0,
                              level_match=False)
    assert matched["model"]["level_matched"] and not plain["model"]["level_matched"]
    # Matched, the decoded level is the input's (to the 0.01 dB step); the untrained
    # model's own level is further off.
    plain_ratio = plain["systems"][0]["mean"]["rms_ratio"]
    matched_ratio = matched["systems"][0]["mean"]["rms_ratio"]
    assert matched_ratio == pytest.approx(1.0, abs=0.005)
    assert abs(plain_ratio - 1) > abs(matched_ratio - 1)
