import math

import pytest
import torch

from codec.config import LossWeights
from codec.metrics import snr
from codec.network.discriminators import DiscriminatorOutput
from codec.train.losses import (
    ReconstructionLoss,
    discriminator_loss,
    feature_matching_loss,
    generator_adversarial_loss,
    rms_loss,
    snr_loss,
    weighted_sum,
)

SAMPLE_RATE = 24000
NAMES = {"mrstft", "mel", "l1", "rms", "snr", "band_snr", "excess"}


@pytest.fixture(scope="module")
def recon() -> ReconstructionLoss:
    return ReconstructionLoss(SAMPLE_RATE, excess=True)


def test_the_experimental_excess_term_costs_nothing_when_off():
    audio = torch.randn(1, 1, 4000)
    assert "excess" not in ReconstructionLoss(SAMPLE_RATE)(audio, audio)


def _tone_with_noise(batch: int = 2, length: int = 6000) -> torch.Tensor:
    t = torch.arange(length) / SAMPLE_RATE
    tone = 0.3 * torch.sin(2 * math.pi * 440 * t)
    return tone + 0.05 * torch.randn(batch, 1, length)


def test_identical_inputs_give_zero_and_different_ones_positive(recon):
    reference = _tone_with_noise()
    same = recon(reference.clone(), reference)
    assert set(same) == NAMES
    for name, value in same.items():
        assert value.dim() == 0
        assert float(value) == pytest.approx(0.0, abs=1e-5), name
    other = recon(reference + 0.05 * torch.randn_like(reference), reference * 0.7)
    for name, value in other.items():
        assert float(value) > 1e-3, name


def test_rms_loss_ignores_time_shift_and_penalises_level():
    reference = _tone_with_noise(length=4800)
    shifted = torch.roll(reference, 1234, dims=-1)  # same samples, so exactly the same RMS
    assert float(rms_loss(shifted, reference)) == pytest.approx(0.0, abs=1e-6)
    half = float(rms_loss(0.5 * reference, reference))
    double = float(rms_loss(2.0 * reference, reference))
    # A log ratio: halving and doubling both cost log 2 (the floor is far below this level).
    assert half == pytest.approx(math.log(2), rel=1e-3)
    assert double == pytest.approx(math.log(2), rel=1e-3)
    assert float(rms_loss(4.0 * reference, reference)) > double


def test_snr_loss_is_the_shortfall_from_the_cap_in_db():
    reference = _tone_with_noise(batch=1, length=4800)
    for noise_level in (0.3, 0.03):
        estimate = reference + noise_level * torch.randn_like(reference)
        measured = snr(reference, estimate)
        # The metric's SNR, seen through the cap: 10 log10(1 + 10^((cap - SNR) / 10)).
        expected = 10 * math.log10(1 + 10 ** ((30.0 - measured) / 10))
        assert float(snr_loss(estimate, reference)) == pytest.approx(expected, abs=0.01)
        assert expected == pytest.approx(30.0 - measured, abs=0.3)
    assert float(snr_loss(reference, reference)) == 0.0
    assert float(snr_loss(reference, reference, cap_db=40.0)) == 0.0


def test_snr_loss_weighs_items_alike_whatever_their_level():
    reference = _tone_with_noise(batch=1, length=4800)
    noise = 0.05 * torch.randn_like(reference)
    quiet, loud = snr_loss(0.1 * (reference + noise), 0.1 * reference), \
        snr_loss(reference + noise, reference)
    assert float(quiet) == pytest.approx(float(loud), abs=0.01)


def _low_pass(audio: torch.Tensor, max_hz: float) -> torch.Tensor:
    spectrum = torch.fft.rfft(audio)
    spectrum[..., int(max_hz / SAMPLE_RATE * audio.shape[-1]):] = 0
    return torch.fft.irfft(spectrum, n=audio.shape[-1])


def test_waveform_terms_below_a_cutoff_ignore_the_bands_above_it():
    reference = _tone_with_noise(batch=2, length=12000)
    # Everything above 2.5 kHz gone (the last band centred under 2 kHz ends under 2.5).
    low = _low_pass(reference, 2500)
    full, limited = ReconstructionLoss(SAMPLE_RATE), \
        ReconstructionLoss(SAMPLE_RATE, waveform_max_hz=2000)
    cut, kept = full(low, reference), limited(low, reference)
    assert float(cut["snr"]) > 10 and float(cut["band_snr"]) > 3
    assert float(kept["snr"]) < 1e-3
    assert float(kept["band_snr"]) < 0.05 * float(cut["band_snr"])  # window leakage only
    assert float(kept["rms"]) < 1e-3 < float(cut["rms"])
    assert float(kept["mrstft"]) == float(cut["mrstft"])  # spectral terms see every band
    # Error below the cutoff still counts, as the full-band term counts it.
    noisy = reference + 0.1 * _low_pass(torch.randn_like(reference), 1000)
    assert float(limited(noisy, reference)["snr"]) > float(full(noisy, reference)["snr"])
    with pytest.raises(ValueError, match="waveform_max_hz"):
        ReconstructionLoss(SAMPLE_RATE, waveform_max_hz=0)


def test_snr_loss_below_the_nyquist_share_matches_the_full_band_for_low_audio():
    reference = _low_pass(_tone_with_noise(batch=1, length=4800), 3000)
    estimate = reference + 0.05 * _low_pass(torch.randn_like(reference), 3000)
    assert float(snr_loss(estimate, reference, max_share=0.5)) == pytest.approx(
        float(snr_loss(estimate, reference)), abs=0.05)


def _speech_like(length: int = 12000) -> torch.Tensor:
    """Harmonics of 150 Hz with a falling spectrum: strong low bands, weak high ones."""
    t = torch.arange(length) / SAMPLE_RATE
    return sum(torch.sin(2 * math.pi * 150 * k * t) / k ** 2 for k in range(1, 40))[None, None]


def _same_spectrum_noise(reference: torch.Tensor) -> torch.Tensor:
    """Noise with the reference's magnitude spectrum (random phases)."""
    spectrum = torch.fft.rfft(reference)
    phases = torch.exp(2j * math.pi * torch.rand(spectrum.shape))
    return torch.fft.irfft(spectrum * phases, n=reference.shape[-1])


def test_band_snr_prefers_error_that_follows_the_signal_spectrum(recon):
    reference = _speech_like()
    white = torch.randn_like(reference)
    shaped = _same_spectrum_noise(reference)

    def at_snr(noise: torch.Tensor, db: float) -> torch.Tensor:
        return reference + noise * reference.norm() / noise.norm() / 10 ** (db / 20)

    for db in (6.0, 12.0):
        loss_white = float(recon(at_snr(white, db), reference)["band_snr"])
        loss_shaped = float(recon(at_snr(shaped, db), reference)["band_snr"])
        # Both errors have the same energy (the waveform snr term cannot tell them
        # apart); the white one buries the weak high bands, the shaped one does not.
        assert snr_loss(at_snr(white, db), reference) == pytest.approx(
            float(snr_loss(at_snr(shaped, db), reference)), abs=0.01)
        assert loss_white > loss_shaped + 5
        # Bands holding the harmonics score about the shortfall 30 - db; bands above the
        # last harmonic hold neither signal nor error and score 0.
        assert 0.5 * (30 - db) < loss_shaped < 30 - db + 1


def _harmonics(hz: torch.Tensor, length: int = 12000) -> torch.Tensor:
    t = torch.arange(length) / SAMPLE_RATE
    return torch.sin(2 * math.pi * hz[:, None] * t).sum(0).reshape(1, 1, -1)


def test_finer_band_snr_bands_count_noise_between_harmonics():
    fundamental = 250.0
    harmonics = fundamental * torch.arange(1, 9)
    reference = _harmonics(harmonics)
    # Tones half-way between the harmonics, 20 dB under them: what a codec's noise
    # floor puts in the valleys of a voiced frame.
    between = 0.1 * _harmonics(harmonics + fundamental / 2)
    coarse, fine = ReconstructionLoss(SAMPLE_RATE), \
        ReconstructionLoss(SAMPLE_RATE, band_snr_bands=128)
    # With 32 bands, each valley shares a band with a harmonic that hides it; with 128
    # the valleys have bands of their own, where the error is far above the signal.
    assert float(fine(reference + between, reference)["band_snr"]) > \
        float(coarse(reference + between, reference)["band_snr"]) + 2
    with pytest.raises(ValueError, match="band_snr_bands"):
        ReconstructionLoss(SAMPLE_RATE, band_snr_bands=0)
    with pytest.raises(ValueError, match="band_snr_seconds"):
        ReconstructionLoss(SAMPLE_RATE, band_snr_seconds=0.0)


def test_excess_counts_energy_added_in_the_valleys_not_energy_left_out(recon):
    fundamental = 250.0
    harmonics = fundamental * torch.arange(1, 9)
    reference = _harmonics(harmonics)
    # Two errors of the same power, 20 dB under the signal: tones half-way between the
    # harmonics, or the harmonics themselves 10% louder.
    in_valleys = reference + 0.1 * _harmonics(harmonics + fundamental / 2)
    on_peaks = 1.1 * reference
    valleys, peaks = recon(in_valleys, reference), recon(on_peaks, reference)
    assert abs(float(valleys["snr"]) - float(peaks["snr"])) < 0.2  # the same to snr
    assert float(valleys["excess"]) > 5 * float(peaks["excess"])
    assert float(recon(0.5 * reference, reference)["excess"]) == 0.0  # only a shortfall
    # The same error at a twentieth of the level costs the same (to within the share of
    # the absolute floor, 60 dB under this quiet signal).
    quiet = recon(0.05 * in_valleys, 0.05 * reference)["excess"]
    assert float(quiet) == pytest.approx(float(valleys["excess"]), rel=0.02)


def test_a_deeper_excess_floor_counts_fainter_added_noise():
    reference = _harmonics(250.0 * torch.arange(1, 9))
    # White noise about 50 dB under the harmonics: in the valleys, under a 40 dB floor
    # and above a 60 dB one.
    noise = 0.003 * torch.randn(reference.shape, generator=torch.Generator().manual_seed(0))
    shallow, deep = (ReconstructionLoss(SAMPLE_RATE, excess_floor_db=db, excess=True)
                     for db in (40.0, 60.0))
    assert float(deep(reference + noise, reference)["excess"]) > \
        3 * float(shallow(reference + noise, reference)["excess"])
    with pytest.raises(ValueError, match="excess_floor_db"):
        ReconstructionLoss(SAMPLE_RATE, excess_floor_db=0.0)


def test_band_snr_weighs_items_alike_whatever_their_level(recon):
    reference = _speech_like()
    noise = 0.1 * _same_spectrum_noise(reference)
    quiet = recon(0.1 * (reference + noise), 0.1 * reference)["band_snr"]
    loud = recon(reference + noise, reference)["band_snr"]
    assert float(quiet) == pytest.approx(float(loud), abs=0.2)  # 20 dB apart


def test_all_zero_reference_and_estimate_are_finite_with_finite_gradients(recon):
    reference = torch.zeros(2, 1, 4800)
    for estimate in (torch.zeros(2, 1, 4800), 0.1 * torch.randn(2, 1, 4800)):
        estimate.requires_grad_(True)
        losses = recon(estimate, reference)
        total = sum(losses.values())
        total.backward()
        assert all(torch.isfinite(v) for v in losses.values()), losses
        assert torch.isfinite(estimate.grad).all()


def test_every_term_sends_gradient_to_the_estimate(recon):
    reference = _tone_with_noise()
    estimate = (reference * 0.8 + 0.01 * torch.randn_like(reference)).requires_grad_(True)
    for name, value in recon(estimate, reference).items():
        # band_snr and excess share one spectrum, so the graph must outlive one term.
        (grad,) = torch.autograd.grad(value, estimate, retain_graph=True)
        assert torch.isfinite(grad).all() and grad.abs().sum() > 0, name


def test_losses_are_float32_for_half_precision_input(recon):
    reference = _tone_with_noise().bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        losses = recon(reference * 0.5, reference)
    assert all(v.dtype == torch.float32 for v in losses.values())


def test_bad_shapes_and_short_audio_raise(recon):
    with pytest.raises(ValueError, match=r"\[B, C, T\]"):
        recon(torch.zeros(1, 4800), torch.zeros(1, 4800))
    with pytest.raises(ValueError, match="too short"):
        recon(torch.zeros(1, 1, 100), torch.zeros(1, 1, 100))
    with pytest.raises(ValueError, match="n_mels"):
        ReconstructionLoss(SAMPLE_RATE, mel_sizes=(512, 1024), n_mels=(40,))


def test_weighted_sum_values_and_zero_weight_blocks_gradient():
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    y = torch.tensor([3.0], requires_grad=True)
    losses = {"l1": x.sum(), "rms": (y * float("nan")).sum(), "mel": 2 * y.sum()}
    total = weighted_sum(losses, {"l1": 0.5, "rms": 0.0, "mel": 1.0, "commit": 9.0})
    assert float(total.detach()) == pytest.approx(0.5 * 3 + 2 * 3)
    total.backward()
    assert torch.equal(x.grad, torch.full((2,), 0.5))
    assert torch.equal(y.grad, torch.tensor([2.0]))  # the NaN term with weight 0 never got in


def test_weighted_sum_accepts_loss_weights_dataclass():
    weights = LossWeights(mrstft=2.0, l1=0.0)
    losses = {"mrstft": torch.tensor(1.5), "l1": torch.tensor(100.0)}
    assert float(weighted_sum(losses, weights)) == pytest.approx(3.0)
    assert float(weighted_sum({}, weights)) == 0.0


def test_weighted_sum_rejects_unknown_names():
    with pytest.raises(ValueError, match="'mell'") as error:
        weighted_sum({"mell": torch.tensor(1.0)}, LossWeights())
    assert "mrstft" in str(error.value)  # the known names are listed


def _outputs(*logit_values: float, features: list[list[torch.Tensor]] | None = None):
    features = features or [[] for _ in logit_values]
    return [DiscriminatorOutput(torch.full((2, 1, 3), v), f)
            for v, f in zip(logit_values, features, strict=True)]


def test_hinge_losses_on_known_logits():
    real, fake = _outputs(1.0, 1.0), _outputs(-1.0, -1.0)
    assert float(discriminator_loss(real, fake, "hinge")) == 0.0
    # Fake logits at +1 cost relu(1 + 1) = 2 per logit; real at -1 cost 2 as well.
    assert float(discriminator_loss(_outputs(-1.0), _outputs(1.0), "hinge")) == 4.0
    assert float(generator_adversarial_loss(_outputs(1.0, 3.0), "hinge")) == 0.0
    assert float(generator_adversarial_loss(_outputs(-1.0, 0.0), "hinge")) == pytest.approx(1.5)


def test_least_squares_losses_on_known_logits():
    assert float(discriminator_loss(_outputs(1.0), _outputs(0.0), "ls")) == 0.0
    assert float(discriminator_loss(_outputs(0.0), _outputs(1.0), "ls")) == 2.0
    assert float(generator_adversarial_loss(_outputs(1.0), "ls")) == 0.0
    assert float(generator_adversarial_loss(_outputs(-1.0), "ls")) == 4.0


def test_unknown_adversarial_kind_raises():
    with pytest.raises(ValueError, match="wasserstein"):
        discriminator_loss(_outputs(1.0), _outputs(0.0), "wasserstein")
    with pytest.raises(ValueError, match="choices"):
        generator_adversarial_loss(_outputs(1.0), "wasserstein")


def test_feature_matching_is_relative_l1_and_trains_fake_only():
    real_maps = [[torch.full((2, 4), 2.0), torch.full((3,), -0.5)]]
    real = _outputs(0.0, features=[[m.clone().requires_grad_(True) for m in real_maps[0]]])
    same = _outputs(0.0, features=[[m.clone() for m in real_maps[0]]])
    assert float(feature_matching_loss(real, same)) == 0.0
    fake_maps = [torch.full((2, 4), 3.0, requires_grad=True), torch.full((3,), 0.0)]
    fake = _outputs(0.0, features=[fake_maps])
    # Layer 1: |2 - 3| / 2 = 0.5; layer 2: |-0.5 - 0| / 0.5 = 1; mean 0.75.
    loss = feature_matching_loss(real, fake)
    assert float(loss.detach()) == pytest.approx(0.75)
    loss.backward()
    assert fake_maps[0].grad is not None
    assert all(m.grad is None for m in real[0].features)


def test_mel_term_is_the_mel_distance_metric():
    """Training loss and evaluation metric measure the same thing when set up alike."""
    from codec.metrics import mel_distance

    loss = ReconstructionLoss(SAMPLE_RATE, mel_sizes=(512, 1024, 2048), n_mels=80)
    reference = _tone_with_noise()
    estimate = 0.5 * reference + 0.02 * torch.randn_like(reference)
    expected = mel_distance(reference, estimate, SAMPLE_RATE, scales=(512, 1024, 2048), n_mels=80)
    assert float(loss(estimate, reference)["mel"]) == pytest.approx(expected, rel=1e-5)


def test_stereo_input(recon):
    reference = torch.cat([_tone_with_noise(batch=2), 0.1 * torch.randn(2, 1, 6000)], dim=1)
    losses = recon(reference[:, [1, 0]], reference)  # channels swapped
    assert all(torch.isfinite(v) and v > 0 for v in losses.values())
    assert float(recon(reference, reference)["mrstft"]) == pytest.approx(0.0, abs=1e-5)


def _syllables(length: int = 12000) -> torch.Tensor:
    """Harmonics whose level rises and falls four times a second, as syllables do."""
    t = torch.arange(length) / SAMPLE_RATE
    envelope = 0.55 + 0.45 * torch.sin(2 * math.pi * 4 * t)
    return envelope * _harmonics(200.0 * torch.arange(1, 12), length)


def test_stoi_term_is_built_only_when_asked_for(recon):
    reference = _syllables()
    assert "stoi" not in recon(reference, reference)
    with_stoi = ReconstructionLoss(SAMPLE_RATE, stoi=True)
    assert set(with_stoi(reference, reference)) == NAMES - {"excess"} | {"stoi"}


def test_stoi_term_counts_envelopes_flattened_not_the_level():
    stoi = ReconstructionLoss(SAMPLE_RATE, stoi=True)
    reference = _syllables()
    flat = _harmonics(200.0 * torch.arange(1, 12), reference.shape[-1])
    flat = flat * reference.pow(2).mean().sqrt() / flat.pow(2).mean().sqrt()
    assert float(stoi(reference, reference)["stoi"]) == pytest.approx(0.0, abs=1e-3)
    assert float(stoi(0.3 * reference, reference)["stoi"]) == pytest.approx(0.0, abs=1e-3)
    # The same power with the syllables' rise and fall gone: STOI sees nothing left of it.
    assert float(stoi(flat, reference)["stoi"]) > 0.5
    # Under 0.4 s of speech (30 STOI frames) there is nothing to score, and no gradient:
    # in a longer crop that is mostly silence, and in a crop too short for any.
    mostly_silent = reference.clone()
    mostly_silent[..., 6000:] = 0
    for short in (mostly_silent, reference[..., :8000]):
        estimate = (0.5 * flat[..., :short.shape[-1]]).requires_grad_()
        value = stoi(estimate, short)["stoi"]
        assert float(value.detach()) == 1.0
        value.backward()
        assert float(estimate.grad.abs().sum()) == 0.0


def test_a_waveform_estimate_takes_the_waveform_terms_and_leaves_the_rest(recon):
    reference = _tone_with_noise()
    estimate = 0.5 * reference
    apart = recon(estimate, reference)
    split = recon(estimate, reference, waveform_estimate=reference)
    for name in ("l1", "snr", "band_snr"):
        assert apart[name] > 0.05 and float(split[name]) == pytest.approx(0.0, abs=1e-4)
    for name in ("mrstft", "mel", "rms"):
        assert float(split[name]) == float(apart[name]) > 0.05
    with pytest.raises(ValueError, match="waveform_estimate must have the estimate's shape"):
        recon(estimate, reference, waveform_estimate=reference[..., :-1])
