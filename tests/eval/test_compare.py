import json

import numpy as np
import soundfile as sf

from eval import compare
from eval.results import from_jsonable

RATE = 16000


def write(path, data, rate=RATE):
    sf.write(path, data, rate, subtype="FLOAT")
    return str(path)


def signal(seconds=1.0, seed=0):
    return (np.random.default_rng(seed).standard_normal(int(seconds * RATE)) * 0.1).astype("f4")


def test_identical_files_print_infinite_snr(tmp_path, capsys):
    x = signal()
    assert compare.main([write(tmp_path / "a.wav", x), write(tmp_path / "b.wav", x)]) == 0
    out = capsys.readouterr().out
    assert "SNR            inf dB" in out
    assert "RMS ratio      1.000" in out
    assert "delay          0 samples" in out


def test_reports_delay_and_level_as_json(tmp_path, capsys):
    x = signal()
    late = np.concatenate([np.zeros(24, "f4"), 0.5 * x])[:len(x)]
    assert compare.main([write(tmp_path / "a.wav", x), write(tmp_path / "b.wav", late),
                         "--json"]) == 0
    result = from_jsonable(json.loads(capsys.readouterr().out))
    assert result["delay_samples"] == 24
    assert abs(result["rms_ratio"] - 0.5) < 1e-3
    assert result["si_sdr"] > 60


def test_other_rate_is_resampled(tmp_path, capsys):
    t = np.arange(RATE) / RATE
    x = (0.3 * np.sin(2 * np.pi * 440 * t)).astype("f4")
    t2 = np.arange(2 * RATE) / (2 * RATE)
    y = (0.3 * np.sin(2 * np.pi * 440 * t2)).astype("f4")
    assert compare.main([write(tmp_path / "a.wav", x), write(tmp_path / "b.wav", y, 2 * RATE),
                         "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["snr"] > 30


def test_mismatched_channels_is_a_one_line_error(tmp_path, capsys):
    stereo = np.stack([signal(), signal(seed=1), signal(seed=2)], 1)
    code = compare.main([write(tmp_path / "a.wav", np.stack([signal(), signal()], 1)),
                         write(tmp_path / "b.wav", stereo)])
    assert code == 2
    assert "channels" in capsys.readouterr().err


def test_missing_file_is_a_one_line_error(tmp_path, capsys):
    assert compare.main([str(tmp_path / "none.wav"), str(tmp_path / "none.wav")]) == 2
    assert "none.wav" in capsys.readouterr().err
