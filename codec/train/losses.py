"""Training losses: reconstruction terms, adversarial terms and their weighted sum.

Reconstruction (``ReconstructionLoss``) compares a decoded ``estimate`` with the
``reference`` it came from, both ``[B, C, T]``:

- ``mrstft``: multi-resolution STFT loss (spectral convergence + log magnitude,
  Yamamoto et al. 2020) from auraloss;
- ``mel``: L1 between log10 mel magnitudes at several FFT sizes (as in DAC, Kumar et
  al. 2023), the same quantity as ``codec.metrics.mel_distance``;
- ``l1``: waveform L1, a term that moves SNR and SI-SDR (spectral terms alone leave
  the phase free);
- ``rms``: level error, ``|log(rms_out / rms_in)|`` per item and channel;
- ``snr``: a waveform term in decibels, how far each item's SNR falls short of
  ``SNR_CAP_DB`` (see ``snr_loss``);
- ``band_snr``: the same shortfall per STFT frame and mel band (see
  ``band_snr_loss``), which keeps the error under the signal in every band;
- ``excess``: the dB by which decoded STFT bins exceed the input's (``excess_loss``);
- ``stoi``: ``1 - STOI``, the short-time objective intelligibility (Taal et al. 2011)
  made differentiable by torch_stoi, only when asked for (``stoi=True``).

Adversarial terms take lists of ``DiscriminatorOutput`` (one per sub-discriminator,
see ``codec.network.discriminators``) and average over them, so their scale does not
depend on how many sub-discriminators are used.
"""
from __future__ import annotations

import dataclasses
import math
import warnings
from typing import Mapping, Sequence

import auraloss
import torch
import torchaudio
from torch import nn

from codec.network.discriminators import DiscriminatorOutput

ADVERSARIAL_KINDS = ("hinge", "ls")

# Level floor of the RMS term: 1e-4 is -80 dBFS, far below any normalised training
# clip (-23 LUFS is about 1e-1) but above float32 rounding noise.
RMS_FLOOR = 1e-4
# The snr term stops rewarding an item past this SNR, which keeps its gradient bounded
# for near-perfect reconstructions and silent references.
SNR_CAP_DB = 30.0
# Floor of the mel magnitudes before the log (as in codec.metrics.mel_distance).
MEL_FLOOR = 1e-5
# The excess term counts a bin's power only down to this far under the item's mean bin
# power: quieter input bins (digital silence among them) count as if at the floor.
EXCESS_FLOOR_DB = 60.0


def _energy(audio: torch.Tensor, max_share: float = 1.0) -> torch.Tensor:
    """Energy over time (sum of squares, last axis) of ``audio``, or with ``max_share``
    below 1 of its frequencies under that share of the Nyquist frequency alone."""
    if max_share >= 1.0:
        return audio.pow(2).sum(dim=-1)
    length = audio.shape[-1]
    bins = max(1, int(max_share * (length // 2)))
    power = torch.fft.rfft(audio, dim=-1)[..., :bins].abs().pow(2)
    # Parseval: every bin but DC stands for its mirror image too.
    return (2 * power.sum(dim=-1) - power[..., 0]) / length


def rms_loss(estimate: torch.Tensor, reference: torch.Tensor,
             floor: float = RMS_FLOOR, max_share: float = 1.0) -> torch.Tensor:
    """Mean over items and channels of ``|log(rms_out / rms_in)|``; inputs ``[B, C, T]``.

    A log ratio, rather than ``|rms_out - rms_in| / rms_in``, because it is symmetric
    in decibels (half and double the level cost the same, log 2) and because with the
    floor it stays bounded for silent references: the relative difference divides by
    a zero RMS and explodes on the first silent crop. The floor sits inside the
    square root, ``sqrt(mean(x^2) + floor^2)``, so an all-zero estimate still has a
    finite gradient (the square root's derivative at 0 is infinite).

    ``max_share`` below 1 compares the levels under that share of the Nyquist
    frequency alone (see ``snr_loss``).
    """
    def level(x: torch.Tensor) -> torch.Tensor:
        return (_energy(x, max_share) / x.shape[-1] + floor ** 2 * max_share).sqrt()

    return (level(estimate).log() - level(reference).log()).abs().mean()


def _shortfall_db(error: torch.Tensor, signal: torch.Tensor, cap_db: float) -> torch.Tensor:
    """Mean of ``10 log10(1 + error / (c * signal))`` with ``c = 10^(-cap_db / 10)``:
    about ``cap_db - SNR`` dB below the cap, 0 for no error."""
    ratio = error / (signal * 10 ** (-cap_db / 10))
    return (10 * torch.log1p(ratio) / math.log(10)).mean()


def snr_loss(estimate: torch.Tensor, reference: torch.Tensor,
             cap_db: float = SNR_CAP_DB, floor: float = RMS_FLOOR,
             max_share: float = 1.0) -> torch.Tensor:
    """Mean over items and channels of ``10 log10(1 + error / (c * signal))``, in dB.

    ``error`` and ``signal`` are the energies of ``estimate - reference`` and of
    ``reference`` over time, and ``c = 10^(-cap_db / 10)``; inputs ``[B, C, T]``. The
    value is 0 for a perfect copy and about ``cap_db - SNR`` for an item below the cap,
    so it reads as decibels to go. Unlike L1, its gradient grows as the error shrinks
    (it is relative to the error's own energy), so it keeps pulling the phase in once
    the level is right, and every item counts alike whatever its loudness. Like any
    waveform term it pulls uncertain components down; the rms term resists that. The
    energy floor (``floor`` as an RMS) keeps silent references finite.

    ``max_share`` below 1 counts only the frequencies under that share of the Nyquist
    frequency (both energies from the Fourier transform of the whole crop), so the
    term asks for the waveform only where the codes can carry it and leaves the bands
    above to the spectral terms.
    """
    error = _energy(estimate - reference, max_share)
    signal = _energy(reference, max_share) + reference.shape[-1] * floor ** 2 * max_share
    return _shortfall_db(error, signal, cap_db)


def band_snr_loss(error_power: torch.Tensor, signal_power: torch.Tensor,
                  floor_power: torch.Tensor, cap_db: float = SNR_CAP_DB) -> torch.Tensor:
    """Mean over items, bands and frames of ``10 log10(1 + error / (c * signal))``, in dB.

    ``error_power`` and ``signal_power`` are band energies ``[..., bands, frames]`` of
    ``estimate - reference`` and of ``reference``; ``floor_power`` ``[bands, 1]`` is
    added to the signal's (the band energy of white noise at the RMS floor) so that
    silent bands stay finite; ``c = 10^(-cap_db / 10)``. The waveform ``snr`` term
    weighs error by its energy alone, so it tolerates a flat error that fills the
    spectral valleys and quiet bands with noise (and audibly so: white noise 20 dB
    under speech is far worse to listeners, and to PESQ, than noise that follows the
    speech spectrum 6 dB under it). Here every band of every frame counts alike, as its
    own SNR, so the error is pushed under the signal everywhere. The phase still counts
    (the error is a complex difference), so SNR and SI-SDR keep improving too.
    """
    return _shortfall_db(error_power, signal_power + floor_power, cap_db)


def excess_loss(estimate_power: torch.Tensor, reference_power: torch.Tensor,
                floor_power: torch.Tensor | float,
                floor_db: float = EXCESS_FLOOR_DB) -> torch.Tensor:
    """Mean over items, bins and frames of the dB by which the estimate's STFT bin
    powers ``[items, bins, frames]`` exceed the reference's (0 where they do not).

    PESQ counts energy a codec adds, noise in the spectral valleys and the pauses, far
    worse than energy it leaves out: on decoded speech, putting the input's magnitude
    in every bin where the decoded one is louder raised PESQ from 1.37 to 2.11, filling
    the bins where it is quieter to 1.65 (RESULTS.md). The log makes a valley count as
    much as a peak; the symmetric spectral terms weigh excess and shortfall alike, and
    the waveform terms weigh error by its power, which the peaks hold. Both powers are
    floored at ``floor_db`` under the item's mean reference bin power, so the term does
    not depend on the level, and a silent input bin asks for silence only down to there;
    ``floor_power`` (the bin power of white noise at the RMS floor) is added as well, so
    a silent item stays finite.
    """
    mean_power = reference_power.mean(dim=(-2, -1), keepdim=True)
    floor = mean_power * 10 ** (-floor_db / 10) + floor_power
    ratio_db = 10 * torch.log10((estimate_power + floor) / (reference_power + floor))
    return torch.relu(ratio_db).mean()


class ReconstructionLoss(nn.Module):
    """Reconstruction terms between ``estimate`` and ``reference`` (``[B, C, T]``).

    ``forward`` returns scalar tensors under the keys ``mrstft``, ``mel``, ``l1``,
    ``rms``, ``snr`` and ``band_snr`` (on an STFT of frames ``band_snr_seconds`` long),
    ``excess`` (on the same STFT) when built with ``excess=True``, and ``stoi`` when built
    with ``stoi=True``. Everything is
    computed in float32 with autocast off, because STFT magnitudes and their logs lose
    too much precision in half precision.

    All terms stay finite for silent references, but ``mrstft`` contains spectral
    convergence, ``|Y - X|_F / |Y|_F`` over the whole batch: a batch of pure digital
    silence leaves only the magnitude floor in the denominator and the term becomes
    large (about 1.5e3 for a -40 dBFS estimate). Salient crops keep such batches out
    of training; the other terms are bounded by their floors.

    Args:
        sample_rate: audio sample rate in Hz (for the mel filter banks).
        stft_sizes: FFT sizes of the multi-resolution STFT loss (hop = size / 4).
        mel_sizes: FFT sizes of the multi-scale mel loss (hop = size / 4).
        n_mels: mel bands per mel FFT size; one int for all sizes or one per size. The
            defaults leave no empty mel filter at 16 to 48 kHz.
        band_snr_seconds: frame length of the ``band_snr`` term (rounded to a power of
            two in samples; hop = frame / 4).
        band_snr_bands: mel bands of the ``band_snr`` term.
        excess_floor_db: the ``excess`` term counts bin powers down to this far under
            each item's mean (a deeper floor asks for quieter valleys and pauses).
        waveform_max_hz: the ``snr``, ``band_snr`` and ``rms`` terms count only
            frequencies below this (``band_snr`` the mel bands centred below it);
            ``None``: all.
            Above the bands the codes can carry with their phase, a waveform term pays
            the decoder to leave them out (a right-level, wrong-phase band is twice its
            energy in error, silence once); this leaves them to the spectral terms.
            The level term follows, or it would buy the level the waveform terms
            take from the bands below with energy in the bands above.
        stoi: add the ``stoi`` term, ``1 - STOI`` of each item (1, with no gradient,
            for an item with fewer than 30 speech frames, about 0.4 s, which STOI
            cannot score). It asks for each third-octave band's envelope over 384 ms
            to follow the input's, which no other term does: the waveform terms count
            the error's energy, which the loudest bands hold, and the spectral terms
            each frame on its own. Off by default, as it costs a resampling and two
            more STFTs a step.
        excess: add the experimental ``excess`` term (:func:`excess_loss`); off, it
            costs nothing.
    """

    def __init__(self, sample_rate: int, *,
                 stft_sizes: Sequence[int] = (2048, 1024, 512, 256, 128),
                 mel_sizes: Sequence[int] = (256, 512, 1024, 2048),
                 n_mels: int | Sequence[int] = (20, 40, 80, 160),
                 band_snr_seconds: float = 0.04, band_snr_bands: int = 32,
                 waveform_max_hz: float | None = None,
                 excess_floor_db: float = EXCESS_FLOOR_DB, stoi: bool = False,
                 excess: bool = False):
        super().__init__()
        self.stoi = _stoi_loss(sample_rate) if stoi else None
        self.excess = excess
        self.stoi_min_samples = math.ceil(STOI_MIN_SECONDS * sample_rate)
        if not excess_floor_db > 0:
            raise ValueError(f"excess_floor_db must be positive, got {excess_floor_db}")
        self.excess_floor_db = excess_floor_db
        if waveform_max_hz is not None and not 0 < waveform_max_hz:
            raise ValueError(f"waveform_max_hz must be positive (or None: all "
                             f"frequencies), got {waveform_max_hz}")
        if band_snr_bands < 1:
            raise ValueError(f"band_snr_bands must be at least 1, got {band_snr_bands}")
        if not band_snr_seconds * sample_rate >= 16:
            raise ValueError(f"band_snr_seconds must give frames of at least 16 samples, "
                             f"got {band_snr_seconds} s at {sample_rate} Hz")
        nyquist = sample_rate / 2
        self.waveform_max_share = min(1.0, (waveform_max_hz or nyquist) / nyquist)
        if isinstance(n_mels, int):
            n_mels = (n_mels,) * len(mel_sizes)
        if len(n_mels) != len(mel_sizes):
            raise ValueError(f"n_mels has {len(n_mels)} entries but mel_sizes has "
                             f"{len(mel_sizes)}: give one n_mels per mel FFT size")
        if not stft_sizes or not mel_sizes:
            raise ValueError("stft_sizes and mel_sizes must each name at least one FFT size")
        self.sample_rate = sample_rate
        self.stft_sizes = tuple(stft_sizes)
        self.mel_sizes = tuple(mel_sizes)
        self.mrstft = auraloss.freq.MultiResolutionSTFTLoss(
            fft_sizes=list(stft_sizes), hop_sizes=[n // 4 for n in stft_sizes],
            win_lengths=list(stft_sizes))
        self.mels = nn.ModuleList(
            torchaudio.transforms.MelSpectrogram(
                sample_rate, n_fft=n_fft, hop_length=n_fft // 4, n_mels=bands, power=1.0)
            for n_fft, bands in zip(mel_sizes, n_mels, strict=True))
        self.band_fft = 2 ** round(math.log2(band_snr_seconds * sample_rate))
        bands = torchaudio.functional.melscale_fbanks(
            self.band_fft // 2 + 1, 0.0, sample_rate / 2, band_snr_bands, sample_rate)
        centre_hz = bands.argmax(dim=0) * sample_rate / self.band_fft  # each band's peak
        bands = bands[:, centre_hz < self.waveform_max_share * nyquist]
        window = torch.hann_window(self.band_fft)
        self.register_buffer("band_filters", bands, persistent=False)
        self.register_buffer("band_window", window, persistent=False)
        # White noise of power p has STFT power p * sum(window^2) in every bin.
        self.bin_floor = RMS_FLOOR ** 2 * float(window.pow(2).sum())
        self.register_buffer("band_floor", self.bin_floor * bands.sum(dim=0)[:, None],
                             persistent=False)
        # Centred frames pad by reflection, which needs more than n_fft / 2 samples.
        sizes = self.stft_sizes + self.mel_sizes + (self.band_fft,)
        self.min_length = max(sizes) // 2 + 1

    def mel_loss(self, estimate: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        """Mean over FFT sizes of the L1 distance between log10 mel magnitudes."""
        both = torch.cat([estimate, reference])  # one transform call for both halves
        total = estimate.new_zeros(())
        for mel in self.mels:
            est, ref = mel(both).clamp(min=MEL_FLOOR).log10().chunk(2)
            total = total + (est - ref).abs().mean()
        return total / len(self.mels)

    def spectrum(self, audio: torch.Tensor) -> torch.Tensor:
        """``[B, C, T]`` -> the STFT of the band_snr and excess terms ``[B * C, bins,
        frames]``."""
        return torch.stft(audio.reshape(-1, audio.shape[-1]), self.band_fft,
                          self.band_fft // 4, window=self.band_window, return_complex=True)

    def band_power(self, power: torch.Tensor) -> torch.Tensor:
        """``[B * C, bins, frames]`` bin powers -> mel band energies ``[B * C, bands,
        frames]``."""
        return torch.einsum("bft,fm->bmt", power, self.band_filters)

    def forward(self, estimate: torch.Tensor, reference: torch.Tensor,
                waveform_estimate: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """The terms; with ``waveform_estimate`` (the estimate's value by another
        gradient path, such as the decoder's phase-only path), the waveform terms
        ``l1``, ``snr`` and ``band_snr`` score that in place of ``estimate``."""
        if estimate.shape != reference.shape or estimate.dim() != 3:
            raise ValueError(f"estimate and reference must both be [B, C, T], got "
                             f"{tuple(estimate.shape)} and {tuple(reference.shape)}")
        if waveform_estimate is not None and waveform_estimate.shape != estimate.shape:
            raise ValueError(f"waveform_estimate must have the estimate's shape "
                             f"{tuple(estimate.shape)}, got {tuple(waveform_estimate.shape)}")
        if estimate.shape[-1] < self.min_length:
            raise ValueError(f"audio of {estimate.shape[-1]} samples is too short for the "
                             f"reconstruction loss; it needs at least {self.min_length}")
        with torch.autocast(device_type=estimate.device.type, enabled=False):
            estimate = estimate.float().contiguous()
            reference = reference.float().contiguous()
            wave = estimate if waveform_estimate is None else \
                waveform_estimate.float().contiguous()
            # The STFT is linear: the error's spectrum is the difference of the two.
            est_spec, ref_spec = self.spectrum(estimate), self.spectrum(reference)
            wave_spec = est_spec if waveform_estimate is None else self.spectrum(wave)
            ref_power = ref_spec.abs().pow(2)
            terms = {
                "mrstft": self.mrstft(estimate, reference),
                "mel": self.mel_loss(estimate, reference),
                "l1": (wave - reference).abs().mean(),
                "rms": rms_loss(estimate, reference, max_share=self.waveform_max_share),
                "snr": snr_loss(wave, reference, max_share=self.waveform_max_share),
                "band_snr": band_snr_loss(self.band_power((wave_spec - ref_spec).abs().pow(2)),
                                          self.band_power(ref_power), self.band_floor),
            }
            if self.excess:
                terms["excess"] = excess_loss(est_spec.abs().pow(2), ref_power,
                                              self.bin_floor, self.excess_floor_db)
            if self.stoi is not None:
                terms["stoi"] = self._stoi_term(estimate, reference)
            return terms

    def _stoi_term(self, estimate: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        if reference.shape[-1] < self.stoi_min_samples:
            # Too short for one STOI segment (torch_stoi would fail): nothing to score.
            return 1 + 0 * estimate.mean()
        return 1 + self.stoi(estimate, reference).mean()


# STOI scores segments of 30 frames of 256 samples at 10 kHz, a hop of 128 apart.
STOI_MIN_SECONDS = (256 + 30 * 128) / 10_000


def _stoi_loss(sample_rate: int) -> nn.Module:
    """torch_stoi's negative STOI, resampling to STOI's 10 kHz, with its voice activity
    detection (as the metric has: silent frames do not count)."""
    from torch_stoi import NegSTOILoss
    with warnings.catch_warnings():
        # It names its resampling method by a deprecated alias; the method is the same.
        warnings.simplefilter("ignore", UserWarning)
        return NegSTOILoss(sample_rate, use_vad=True)


def weights_as_dict(weights: object) -> dict[str, float]:
    """``{loss name: weight}`` from a ``LossWeights`` dataclass or a mapping."""
    if isinstance(weights, Mapping):
        return {str(k): float(v) for k, v in weights.items()}
    if dataclasses.is_dataclass(weights) and not isinstance(weights, type):
        return {f.name: float(getattr(weights, f.name)) for f in dataclasses.fields(weights)}
    raise TypeError(f"weights must be a LossWeights dataclass or a dict, got "
                    f"{type(weights).__name__}")


def weighted_sum(losses: Mapping[str, torch.Tensor], weights: object) -> torch.Tensor:
    """``sum(weight[name] * loss)`` over the named scalar losses.

    ``weights`` is a ``codec.config.LossWeights`` or a dict. Every loss must have a
    weight: an unknown name raises ValueError (a misspelt weight must never drop a
    term silently). A weight of 0 leaves the term out entirely, so no gradient and
    no NaN from it reaches the model; the caller still logs it. Weights without a
    loss are fine.
    """
    table = weights_as_dict(weights)
    unknown = sorted(set(losses) - set(table))
    if unknown:
        raise ValueError(f"no weight for loss(es) {unknown}; known loss names: {sorted(table)}")
    terms = [table[name] * value for name, value in losses.items() if table[name] != 0]
    if not terms:
        device = next(iter(losses.values())).device if losses else None
        return torch.zeros((), device=device)
    return torch.stack([term.float() for term in terms]).sum()


def _check_kind(kind: str) -> None:
    if kind not in ADVERSARIAL_KINDS:
        raise ValueError(f"unknown adversarial loss {kind!r}; choices: {list(ADVERSARIAL_KINDS)}")


def _check_outputs(*groups: Sequence[DiscriminatorOutput]) -> None:
    if any(len(group) == 0 for group in groups):
        raise ValueError("adversarial losses need at least one discriminator output")
    if len({len(group) for group in groups}) > 1:
        raise ValueError(f"real and fake discriminator outputs differ in number: "
                         f"{[len(group) for group in groups]}")


def discriminator_loss(real: Sequence[DiscriminatorOutput], fake: Sequence[DiscriminatorOutput],
                       kind: str = "hinge") -> torch.Tensor:
    """Loss that teaches the discriminators to tell ``real`` from ``fake``.

    hinge (EnCodec, Défossez et al. 2022, eq. 2): ``relu(1 - D(x)) + relu(1 + D(x_hat))``;
    ls (least squares, Mao et al. 2017, as in HiFi-GAN): ``(1 - D(x))^2 + D(x_hat)^2``.
    Each is averaged over logits and then over sub-discriminators. Pass fake outputs
    computed from detached audio.
    """
    _check_kind(kind)
    _check_outputs(real, fake)
    total = 0.0
    for r, f in zip(real, fake, strict=True):
        r_logits, f_logits = r.logits.float(), f.logits.float()
        if kind == "hinge":
            total = total + torch.relu(1 - r_logits).mean() + torch.relu(1 + f_logits).mean()
        else:
            total = total + (1 - r_logits).pow(2).mean() + f_logits.pow(2).mean()
    return total / len(real)


def generator_adversarial_loss(fake: Sequence[DiscriminatorOutput],
                               kind: str = "hinge") -> torch.Tensor:
    """Loss that rewards the generator for fooling the discriminators.

    hinge: ``relu(1 - D(x_hat))`` (EnCodec eq. 1); ls: ``(1 - D(x_hat))^2``.
    Averaged over logits and then over sub-discriminators.
    """
    _check_kind(kind)
    _check_outputs(fake)
    total = 0.0
    for f in fake:
        logits = f.logits.float()
        if kind == "hinge":
            total = total + torch.relu(1 - logits).mean()
        else:
            total = total + (1 - logits).pow(2).mean()
    return total / len(fake)


def feature_matching_loss(real: Sequence[DiscriminatorOutput],
                          fake: Sequence[DiscriminatorOutput]) -> torch.Tensor:
    """Relative L1 between discriminator feature maps of real and generated audio.

    Each layer's ``mean|real - fake|`` is divided by ``mean|real|`` (EnCodec eq. 3),
    so every layer counts alike whatever its activation scale; the mean is over all
    layers of all sub-discriminators. ``real`` features are detached: this loss
    trains the generator only, so the real outputs may be computed under
    ``torch.no_grad()`` to save time and memory.
    """
    _check_outputs(real, fake)
    terms = []
    for r, f in zip(real, fake, strict=True):
        if len(r.features) != len(f.features):
            raise ValueError(f"real and fake outputs have {len(r.features)} and "
                             f"{len(f.features)} feature maps")
        for r_map, f_map in zip(r.features, f.features, strict=True):
            r_map = r_map.detach().float()
            scale = r_map.abs().mean().clamp(min=1e-8)
            terms.append((r_map - f_map.float()).abs().mean() / scale)
    if not terms:
        raise ValueError("feature matching needs discriminator outputs with feature maps")
    return torch.stack(terms).mean()
