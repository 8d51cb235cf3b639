import json

from eval import versus_opus


def _system(kind, kbps, reference=False, **means):
    label = f"{kind} {kbps:g} kbps"
    return {"kind": kind, "nominal_kbps": kbps, "reference": reference, "label": label,
            "actual_kbps": kbps + 0.5, "mean": means}


def _group(system, group, **means):
    return {"system": system, "group": group, "files": 2,
            "metrics": {m: {"n": 2, "mean": v} for m, v in means.items()}}


def _summary():
    return {"groups": [
        _group("codec 6 kbps", "music", snr=9.0, mel_distance=0.9, rms_ratio=0.99),
        _group("opus 6 kbps", "music", snr=2.0, mel_distance=1.1, rms_ratio=0.9),
        _group("codec 6 kbps", "speech", snr=4.0, mel_distance=1.2, pesq=1.5, rms_ratio=0.9),
        _group("opus 6 kbps", "speech", snr=3.0, mel_distance=1.0, pesq=2.0, rms_ratio=0.8),
        _group("opus 12 kbps", "speech", snr=9.0, mel_distance=0.5, pesq=3.4, rms_ratio=0.9),
    ], "systems": [
        _system("codec", 3.0, snr=2.0, si_sdr=1.0, mel_distance=0.9, rms_ratio=0.9),
        _system("opus", 3.0, snr=-2.0, si_sdr=-3.0, mel_distance=1.2, rms_ratio=0.7),
        _system("codec", 6.0, snr=4.0, si_sdr=3.0, mel_distance=0.7, pesq=1.5, rms_ratio=1.02),
        _system("opus", 6.0, snr=2.0, si_sdr=0.5, mel_distance=0.6, pesq=1.3, rms_ratio=0.9),
        _system("opus", 12.0, reference=True, snr=8.0, si_sdr=7.0, mel_distance=0.4, pesq=2.4,
                rms_ratio=0.95),
    ]}


def test_compares_highest_codec_bitrate_with_opus_at_the_same_rate():
    headers, rows, verdicts = versus_opus.comparison(_summary())
    table = versus_opus.text_table(headers, rows)
    assert verdicts == {"snr": True, "si_sdr": True, "mel_distance": False, "pesq": True,
                        "rms_ratio": True}
    assert "Opus 12" in table or "opus 12 kbps" in table
    assert "codec 6 kbps" in table


def test_lower_bitrate_on_request():
    _, _, verdicts = versus_opus.comparison(_summary(), kbps=3.0)
    assert verdicts["snr"] and "pesq" not in verdicts


def test_command_reads_summary_and_reports_missing_opus(tmp_path, capsys):
    (tmp_path / "summary.json").write_text(json.dumps(_summary()))
    assert versus_opus.main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "all files:" in out and "codec better on 4 of 5 metrics" in out
    # Without Opus (no opus-tools on the machine) the codec's figures stand alone, and
    # the recipe's stage goes on.
    no_opus = {"systems": [s for s in _summary()["systems"] if s["kind"] == "codec"]}
    (tmp_path / "summary.json").write_text(json.dumps(no_opus))
    assert versus_opus.main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "codec 6 kbps" in out and "4" in out and "Opus skipped" in out


def test_each_group_is_compared_on_its_own_files():
    summary = _summary()
    _, rows, verdicts = versus_opus.comparison(summary, group="speech")
    assert verdicts == {"snr": True, "mel_distance": False, "pesq": False, "rms_ratio": True}
    pesq_row = next(row for row in rows if row[0] == "PESQ (speech)")
    assert pesq_row[1:4] == [1.5, 2.0, 3.4]
    _, _, music = versus_opus.comparison(summary, group="music")
    assert music == {"snr": True, "mel_distance": True, "rms_ratio": True}


def test_report_names_a_level_outside_the_band_per_group():
    text = versus_opus.report(_summary())
    music, speech = text.split("music files:")[1].split("speech files:")
    assert "RMS ratio 0.990 inside 0.95-1.05" in music
    assert "RMS ratio 0.900 OUTSIDE 0.95-1.05" in speech
    assert "codec better on 2 of 4 metrics" in speech


def test_markdown_tables_on_request():
    text = versus_opus.report(_summary(), markdown=True)
    assert "| PESQ (speech) | 1.500 | 2.000 | 3.400 | Opus |" in text
