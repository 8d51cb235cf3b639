import math

import pytest
import soundfile as sf
import torch

from codec import Codec, model_config
from codec.checkpoint import save_checkpoint
from codec.config import Config
from codec.errors import CodecError
from codec.network.model import compute_model_id
from codec.pretrained import load
from eval import evaluate, opus, stereo, stereo_table
from eval.results import read_json


def panned(seconds: float = 2.0, rate: int = 16000) -> torch.Tensor:
    """Noise panned left in its first half and right in its second: ``[2, T]``."""
    generator = torch.Generator().manual_seed(0)
    audio = 0.1 * torch.randn(2, int(seconds * rate), generator=generator)
    half = audio.shape[-1] // 2
    audio[1, :half] *= 0.25
    audio[0, half:] *= 0.25
    return audio


def test_a_copy_keeps_every_level_and_the_balance():
    audio = panned()
    assert stereo.measure(audio, audio.clone(), 16000) == {
        "rms_ratio_left": 1.0, "rms_ratio_right": 1.0, "ild_error_db": 0.0}


def test_each_channels_level_is_measured_apart():
    audio = panned()
    quieter = audio * torch.tensor([[1.0], [0.5]])
    figures = stereo.measure(audio, quieter, 16000)
    assert figures["rms_ratio_left"] == pytest.approx(1.0)
    assert figures["rms_ratio_right"] == pytest.approx(0.5)
    assert figures["ild_error_db"] == pytest.approx(20 * math.log10(2), abs=0.01)


def test_a_balance_that_moves_over_time_is_caught_where_a_files_ild_is_not():
    """Swapping which half is panned where keeps each channel's RMS over the file, and
    so a per-file ILD, but every tile's ILD flips: 12 dB each way."""
    audio = panned()
    swapped = audio.flip(0)
    figures = stereo.measure(audio, swapped, 16000)
    assert figures["rms_ratio_left"] == pytest.approx(1.0, abs=0.05)
    assert figures["rms_ratio_right"] == pytest.approx(1.0, abs=0.05)
    assert figures["ild_error_db"] == pytest.approx(24.1, abs=1.5)


def test_a_collapse_to_mono_costs_the_ild_and_silence_costs_nothing():
    audio = panned()
    mono = audio.mean(dim=0, keepdim=True).expand(2, -1)
    assert stereo.measure(audio, mono, 16000)["ild_error_db"] > 5
    silence = torch.zeros(2, 16000)
    assert stereo.ild_error_db(silence, silence, 16000) == 0.0
    with pytest.raises(ValueError, match="two channels"):
        stereo.measure(audio[:1], audio[:1], 16000)


@pytest.fixture(scope="module")
def stereo_run(tmp_path_factory):
    """An untrained small stereo (mid/side) spectral model at 16 kHz, 200 frames/s (3
    codebooks of 2 kbps), and a folder of two stereo files."""
    torch.manual_seed(0)
    network = Codec(model_config("spectral44k", sample_rate=16000, strides=(80,),
                                 widths=(16, 16), n_fft=160, dilations=(1,), latent_dim=8,
                                 n_q=3))
    run = tmp_path_factory.mktemp("stereo_run")
    save_checkpoint(run / "best", model_state=network.state_dict(),
                    config=Config(model=network.config), step=0,
                    model_id=compute_model_id(network))
    data = tmp_path_factory.mktemp("stereo_set") / "music"
    data.mkdir()
    for number in range(2):
        sf.write(data / f"m{number}.wav", panned().numpy().T * (1 + number) / 2, 16000)
    return run, data


def test_evaluate_reports_stereo_figures_and_opus_at_twice_the_rate(stereo_run, tmp_path,
                                                                    capsys):
    run, data = stereo_run
    out = tmp_path / "eval"
    with_opus = opus.available()
    arguments = ["--model", str(run), "--data", str(data), "-o", str(out), "--kbps", "6",
                 "--clips", "0"] + (["--opus", "--opus-twice"] if with_opus else [])
    assert evaluate.main(arguments) == 0
    summary = read_json(out / "summary.json")
    keys = [s["key"] for s in summary["systems"]]
    assert keys[0] == "codec-nq3"
    if with_opus:  # Opus at twice 6 kbps and the 12 kbps reference are one row
        assert keys == ["codec-nq3", "opus-6kbps", "opus-12kbps"]
    for system in summary["systems"]:
        assert set(stereo.STEREO_METRICS) <= set(system["mean"])
    capsys.readouterr()
    assert stereo_table.main([str(out)]) == 0
    printed = capsys.readouterr().out
    assert "ILD error dB" in printed and "RMS ratio L" in printed and "actual kbps" in printed


def test_the_table_refuses_an_evaluation_without_stereo_figures(tmp_path, capsys):
    assert stereo_table.main([str(tmp_path)]) == 2
    assert "not found" in capsys.readouterr().err
    summary = {"systems": [{"label": "codec", "kind": "codec", "actual_kbps": 6.0,
                            "mean": {"snr": 1.0}}]}
    with pytest.raises(CodecError, match="no stereo figures"):
        stereo_table.table(summary)


def test_plan_puts_opus_at_twice_each_rate_once(stereo_run):
    model = load(str(stereo_run[0]))
    headline, every = evaluate.plan_systems(model, (2.0, 6.0), rd=False, with_opus=True,
                                            opus_twice=True)
    keys = [s.key for s in headline]
    assert keys == ["codec-nq1", "opus-2kbps", "opus-4kbps", "codec-nq3", "opus-6kbps",
                    "opus-12kbps"]
    assert next(s for s in headline if s.key == "opus-12kbps").reference
    assert sorted(s.key for s in every) == sorted(keys)
    without, _ = evaluate.plan_systems(model, (2.0, 6.0), rd=False, with_opus=True)
    assert "opus-4kbps" not in [s.key for s in without]
