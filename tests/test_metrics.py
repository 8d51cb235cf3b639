import math

import pytest
import torch

from codec import metrics

RATE = 16000


def noise(seconds: float, seed: int = 0, channels: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(channels, int(seconds * RATE), generator=generator) * 0.1


def speechlike(seconds: float = 3.0) -> torch.Tensor:
    """A voiced-sounding signal: harmonics of a gliding pitch, syllable-rate envelope."""
    t = torch.arange(int(seconds * RATE)) / RATE
    pitch = 120 + 30 * torch.sin(2 * math.pi * 0.5 * t)
    phase = 2 * math.pi * torch.cumsum(pitch, 0) / RATE
    voice = sum(torch.sin(k * phase) / k for k in range(1, 20))
    envelope = (torch.sin(2 * math.pi * 3 * t).clamp(min=0)) ** 2
    return (0.2 * voice * envelope)[None].float()


def test_identity_gives_infinite_snr_without_error():
    x = noise(1.0)
    result = metrics.measure(x, x.clone(), RATE)
    assert result["snr"] == math.inf
    assert result["si_sdr"] == math.inf
    assert result["rms_ratio"] == pytest.approx(1.0)
    assert result["mel_distance"] == 0.0
    assert result["stft_distance"] == pytest.approx(0.0, abs=1e-6)
    assert result["delay_samples"] == 0


@pytest.mark.parametrize("scale", [0.5, 2.0])
def test_scaled_copy_keeps_si_sdr_and_reports_scale(scale):
    x = noise(1.0)
    result = metrics.measure(x, scale * x, RATE)
    assert result["rms_ratio"] == pytest.approx(scale, rel=1e-6)
    assert result["si_sdr"] > 100
    # Plain SNR does see the level change: error energy is (1 - scale)^2 of the signal's.
    assert result["snr"] == pytest.approx(-20 * math.log10(abs(1 - scale)), abs=1e-6)


@pytest.mark.parametrize("target_db", [0.0, 10.0, 25.0])
def test_white_noise_at_a_set_snr_is_measured_within_a_tenth_of_a_db(target_db):
    x = noise(10.0, seed=1)
    n = noise(10.0, seed=2)
    n = n * (x.pow(2).mean() / n.pow(2).mean() / 10 ** (target_db / 10)).sqrt()
    result = metrics.measure(x, x + n, RATE)
    assert result["snr"] == pytest.approx(target_db, abs=0.1)
    assert result["si_sdr"] == pytest.approx(target_db, abs=0.1)
    assert result["delay_samples"] == 0


@pytest.mark.parametrize("delay", [37, -12, 0])
def test_known_delay_is_found_aligned_and_reported(delay):
    x = noise(2.0, seed=3)
    pad = torch.zeros(1, abs(delay))
    delayed = torch.cat([pad, x], -1)[..., :x.shape[-1]] if delay >= 0 else \
        torch.cat([x[..., -delay:], pad], -1)
    found, correlation = metrics.find_delay(x, delayed, max_lag=int(0.05 * RATE))
    assert found == delay
    assert correlation > 0.99
    result = metrics.measure(x, delayed, RATE)
    assert result["delay_samples"] == delay
    # Once aligned the overlap is an exact copy.
    assert result["snr"] == math.inf


def test_delay_beyond_the_search_window_is_not_reported():
    x = noise(2.0, seed=4)
    far = int(0.2 * RATE)
    delayed = torch.cat([torch.zeros(1, far), x], -1)
    assert metrics.find_delay(x, delayed, max_lag=int(0.05 * RATE))[0] == 0


def test_unrelated_signal_reports_no_delay():
    delay, correlation = metrics.find_delay(noise(2.0, seed=5), noise(2.0, seed=6), 800)
    assert delay == 0
    assert abs(correlation) < 0.2


def test_align_cuts_to_the_overlap():
    ref, est = metrics.align(torch.arange(10.0), torch.arange(12.0), 3)
    assert ref.shape == est.shape == (9,)
    assert torch.equal(est, torch.arange(3.0, 12.0))


def test_measure_accepts_one_dimensional_and_stereo_signals():
    mono = noise(0.5)[0]
    assert metrics.measure(mono, mono, RATE)["snr"] == math.inf
    stereo = noise(0.5, channels=2)
    assert metrics.measure(stereo, stereo * 0.5, RATE)["rms_ratio"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="channel"):
        metrics.measure(stereo, stereo[:1], RATE)


def test_distances_grow_with_distortion():
    x = noise(1.0, seed=7)
    small = x + 0.01 * noise(1.0, seed=8)
    large = x + 0.5 * noise(1.0, seed=8)
    for name in ("mel_distance", "stft_distance"):
        assert metrics.measure(x, small, RATE)[name] < metrics.measure(x, large, RATE)[name]


def test_codebook_entropy_known_answers():
    uniform = torch.arange(256).repeat(4)[None, None]   # [B=1, n_q=1, F]
    single = torch.zeros(1, 1, 100, dtype=torch.long)
    two = torch.cat([uniform[..., :100] % 2, single], dim=1)  # [1, 2, 100]
    assert metrics.codebook_entropy(uniform, 256) == [pytest.approx(8.0)]
    assert metrics.codebook_entropy(single, 256) == [0.0]
    assert metrics.codebook_entropy(two, 256) == [pytest.approx(1.0), 0.0]


def test_speech_metrics_only_on_request():
    x = speechlike()
    assert "pesq" not in metrics.measure(x, x, RATE) and "stoi" not in metrics.measure(x, x, RATE)


def test_pesq_of_clean_copy_is_near_the_top_and_drops_with_noise():
    pytest.importorskip("pesq")
    x = speechlike()
    clean = metrics.pesq_wb(x, x, RATE)
    noisy = metrics.pesq_wb(x, x + 0.05 * noise(3.0, seed=9), RATE)
    assert clean > 4.4   # wide-band PESQ tops out at about 4.64
    assert noisy < clean - 1


def test_pesq_resamples_other_rates():
    pytest.importorskip("pesq")
    x = speechlike()
    x24 = metrics.torchaudio.functional.resample(x, RATE, 24000)
    assert metrics.pesq_wb(x24, x24, 24000) > 4.4


def test_stoi_of_clean_copy_is_one_and_drops_with_noise():
    pytest.importorskip("pystoi")
    x = speechlike()
    assert metrics.stoi(x, x, RATE) == pytest.approx(1.0, abs=1e-6)
    light = metrics.stoi(x, x + 0.1 * noise(3.0, seed=10), RATE)
    heavy = metrics.stoi(x, x + 1.0 * noise(3.0, seed=10), RATE)
    assert heavy < light < 0.999


def test_measure_adds_speech_metrics_when_installed():
    pytest.importorskip("pesq")
    pytest.importorskip("pystoi")
    x = speechlike()
    result = metrics.measure(x, x, RATE, speech=True)
    assert result["pesq"] > 4.4 and result["stoi"] == pytest.approx(1.0, abs=1e-6)


def test_existing_training_metrics_keep_their_names():
    x = noise(0.5)
    assert metrics.snr(x, x) == math.inf
    assert metrics.rms_ratio(x, 2 * x) == pytest.approx(2.0)
    assert metrics.si_sdr(x, x + 1e-3 * noise(0.5, seed=1)) > 30
    assert metrics.mel_distance(x, x, RATE) == 0.0


def test_speech_metrics_are_skipped_when_packages_are_missing(monkeypatch):
    monkeypatch.setattr(metrics, "missing_speech_packages", lambda: ["pesq", "pystoi"])
    x = speechlike()
    result = metrics.measure(x, x, RATE, speech=True)
    assert "pesq" not in result and "stoi" not in result
    assert result["snr"] == math.inf
