import importlib.util
import json

import pytest

from eval.bench import main, ratios

FAST = ["--preset", "tiny", "--seconds", "1", "--repeats", "1", "--batch", "1",
        "--segment", "0.5", "--threads", "1"]
TIMING_KEYS = {"median_s", "min_s", "repeats"}


def _run(capsys, *extra: str) -> dict:
    assert main([*FAST, "--json", *extra]) == 0
    return json.loads(capsys.readouterr().out)


def test_json_report_has_every_measurement(capsys):
    report = _run(capsys)
    assert report["settings"]["threads"] == 1
    assert report["settings"]["disc"] == ["msstft", "mpd"]
    ours = report["ours"]
    assert ours["name"] == "tiny"
    assert ours["parameters"] > 0 and ours["kbps"] > 0
    for key in ("encode", "decode"):
        assert TIMING_KEYS | {"rtf"} <= set(ours[key])
        assert ours[key]["rtf"] > 0 and ours[key]["repeats"] == 1
    for key in ("train_step", "train_step_disc"):
        assert TIMING_KEYS | {"audio_seconds_per_second", "batch"} <= set(ours[key])
        assert ours[key]["batch"] == 1 and ours[key]["segment_seconds"] == 0.5
    assert ours["peak_rss_mb"] > 0
    for key in ("encode", "decode", "train_step", "train_step_disc"):
        assert 0 < ours[key]["peak_rss_mb"] <= ours["peak_rss_mb"]
        assert ours[key].get("rss_growth_mb", 0.0) >= 0  # where the peak can be reset
    assert "peer" not in report and "ratios" not in report


def test_disc_step_can_be_skipped_and_text_report_names_the_rows(capsys):
    assert main([*FAST, "--disc"]) == 0
    text = capsys.readouterr().out
    assert "encode (x real time)" in text and "train step" in text
    assert "msstft" not in text


def test_ratios_are_ours_over_peer_for_throughputs():
    ours = {"encode": {"rtf": 90.0}, "decode": {"rtf": 60.0},
            "train_step": {"audio_seconds_per_second": 20.0}}
    peer = {"encode": {"rtf": 30.0}, "decode": {"rtf": 20.0},
            "train_step": {"audio_seconds_per_second": 8.0}}
    assert ratios(ours, peer) == {"encode_rtf": 3.0, "decode_rtf": 3.0, "train_step": 2.5}


@pytest.mark.skipif(importlib.util.find_spec("encodec") is None,
                    reason="the peer extra (encodec) is not installed")
def test_peer_is_measured_in_the_same_run(capsys):
    report = _run(capsys, "--peer", "encodec", "--disc")
    assert report["peer"]["name"] == "encodec"
    assert report["peer"]["kbps"] == 6.0
    assert set(report["ratios"]) == {"encode_rtf", "decode_rtf", "train_step"}
    assert report["ratios"]["encode_rtf"] == pytest.approx(
        report["ours"]["encode"]["rtf"] / report["peer"]["encode"]["rtf"])


def test_bad_arguments_exit_with_status_2(capsys):
    assert main(["--preset", "tiny", "--repeats", "0"]) == 2
    assert "at least 1" in capsys.readouterr().err


def test_streaming_reports_latency_and_per_frame_times(capsys):
    streaming = _run(capsys, "--causal", "--streaming", "--disc")["ours"]["streaming"]
    assert streaming["latency_samples"] == 320 and streaming["frames"] == 75
    assert streaming["frame_ms"] == streaming["latency_ms"] == pytest.approx(1000 / 75)
    for key in ("encode", "decode", "codec"):
        times = streaming[f"{key}_ms_per_frame"]
        assert 0 < times["median"] <= times["p99"] <= times["max"]
    assert streaming["streaming_rtf"] > 0 and streaming["offline_rtf"] > 0
    assert streaming["postfilter"] == 1.0  # a preset has no coding section
    assert main([*FAST, "--causal", "--streaming", "--disc", "--postfilter", "1.5"]) == 0
    out = capsys.readouterr().out
    assert "algorithmic latency (ms)" in out and "post-filter exponent" in out


def test_streaming_needs_a_causal_model(capsys):
    assert main([*FAST, "--streaming", "--disc"]) == 2
    assert "causal" in capsys.readouterr().err
