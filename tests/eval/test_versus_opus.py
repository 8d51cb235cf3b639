import json

from eval import versus_opus


def _system(kind, kbps, reference=False, **means):
    label = f"{kind} {kbps:g} kbps"
    return {"kind": kind, "nominal_kbps": kbps, "reference": reference, "label": label,
            "actual_kbps": kbps + 0.5, "mean": means}


def _summary():
    return {"systems": [
        _system("codec", 3.0, snr=2.0, si_sdr=1.0, mel_distance=0.9, rms_ratio=0.9),
        _system("opus", 3.0, snr=-2.0, si_sdr=-3.0, mel_distance=1.2, rms_ratio=0.7),
        _system("codec", 6.0, snr=4.0, si_sdr=3.0, mel_distance=0.7, pesq=1.5, rms_ratio=1.02),
        _system("opus", 6.0, snr=2.0, si_sdr=0.5, mel_distance=0.6, pesq=1.3, rms_ratio=0.9),
        _system("opus", 12.0, reference=True, snr=8.0, si_sdr=7.0, mel_distance=0.4, pesq=2.4,
                rms_ratio=0.95),
    ]}


def test_compares_highest_codec_bitrate_with_opus_at_the_same_rate():
    table, verdicts = versus_opus.comparison(_summary())
    assert verdicts == {"snr": True, "si_sdr": True, "mel_distance": False, "pesq": True,
                        "rms_ratio": True}
    assert "Opus 12" in table or "opus 12 kbps" in table
    assert "codec 6 kbps" in table


def test_lower_bitrate_on_request():
    _, verdicts = versus_opus.comparison(_summary(), kbps=3.0)
    assert verdicts["snr"] and "pesq" not in verdicts


def test_command_reads_summary_and_reports_missing_opus(tmp_path, capsys):
    (tmp_path / "summary.json").write_text(json.dumps(_summary()))
    assert versus_opus.main([str(tmp_path)]) == 0
    assert "codec better on 4 of 5 metrics" in capsys.readouterr().out
    no_opus = {"systems": [s for s in _summary()["systems"] if s["kind"] == "codec"]}
    (tmp_path / "summary.json").write_text(json.dumps(no_opus))
    assert versus_opus.main([str(tmp_path)]) == 2
    assert "--opus" in capsys.readouterr().err
