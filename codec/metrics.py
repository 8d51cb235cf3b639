"""Signal metrics shared by training and evaluation.

All take ``reference`` and ``estimate`` tensors of the same shape ``[..., T]`` and
return Python floats averaged over leading dimensions unless said otherwise.
"""
from __future__ import annotations

import functools
import math

import torch
import torchaudio

EPS = 1e-12


def snr(reference: torch.Tensor, estimate: torch.Tensor) -> float:
    """Signal-to-noise ratio in dB over the whole tensor; ``inf`` for an exact copy."""
    noise = (reference - estimate).double().pow(2).sum()
    signal = reference.double().pow(2).sum()
    if noise == 0:
        return math.inf
    return float(10 * torch.log10(signal.clamp(min=EPS) / noise))


def si_sdr(reference: torch.Tensor, estimate: torch.Tensor) -> float:
    """Scale-invariant SDR in dB (Le Roux et al. 2019), mean over leading dims."""
    ref = reference.double().reshape(-1, reference.shape[-1])
    est = estimate.double().reshape(-1, estimate.shape[-1])
    ref = ref - ref.mean(dim=-1, keepdim=True)
    est = est - est.mean(dim=-1, keepdim=True)
    scale = (est * ref).sum(-1, keepdim=True) / ref.pow(2).sum(-1, keepdim=True).clamp(min=EPS)
    target = scale * ref
    noise = est - target
    ratio = target.pow(2).sum(-1) / noise.pow(2).sum(-1)
    values = 10 * torch.log10(ratio.clamp(min=EPS))
    return float(values.mean())


def rms_ratio(reference: torch.Tensor, estimate: torch.Tensor) -> float:
    """RMS of the estimate over RMS of the reference: 1.0 means the level is kept."""
    ref_rms = reference.double().pow(2).mean().sqrt()
    return float(estimate.double().pow(2).mean().sqrt() / ref_rms.clamp(min=EPS))


_MEL_CACHE: dict[tuple, torchaudio.transforms.MelSpectrogram] = {}


def _mel(sample_rate: int, n_fft: int, n_mels: int) -> torchaudio.transforms.MelSpectrogram:
    key = (sample_rate, n_fft, n_mels)
    if key not in _MEL_CACHE:
        _MEL_CACHE[key] = torchaudio.transforms.MelSpectrogram(
            sample_rate, n_fft=n_fft, hop_length=n_fft // 4, n_mels=n_mels, power=1.0)
    return _MEL_CACHE[key]


MEL_SCALES = (512, 1024, 2048)


def mel_frame_distances(reference: torch.Tensor, estimate: torch.Tensor, sample_rate: int,
                        n_fft: int, n_mels: int = 80) -> torch.Tensor:
    """``[frames]``: each frame's mean L1 distance between log10 mel magnitudes (over
    mels and channels); frames ``n_fft // 4`` apart, centred on multiples of that."""
    transform = _mel(sample_rate, n_fft, n_mels)
    ref = transform(reference.float().cpu()).clamp(min=1e-5).log10()
    est = transform(estimate.float().cpu()).clamp(min=1e-5).log10()
    return (ref - est).abs().reshape(-1, *ref.shape[-1:]).mean(dim=0)


def mel_distance(reference: torch.Tensor, estimate: torch.Tensor, sample_rate: int,
                 scales: tuple[int, ...] = MEL_SCALES, n_mels: int = 80) -> float:
    """Mean L1 distance between log10 mel magnitudes over several FFT sizes."""
    return sum(float(mel_frame_distances(reference, estimate, sample_rate, n_fft,
                                         n_mels).mean()) for n_fft in scales) / len(scales)


def stft_distance(reference: torch.Tensor, estimate: torch.Tensor,
                  fft_sizes: tuple[int, ...] = (512, 1024, 2048)) -> float:
    """Multi-resolution STFT distance: spectral convergence plus log-magnitude L1,
    averaged over FFT sizes (Yamamoto et al. 2020, Parallel WaveGAN, eq. 2-4)."""
    ref = reference.float().cpu().reshape(-1, reference.shape[-1])
    est = estimate.float().cpu().reshape(-1, estimate.shape[-1])
    total = 0.0
    for n_fft in fft_sizes:
        window = torch.hann_window(n_fft)
        spec = [torch.stft(x, n_fft, hop_length=n_fft // 4, window=window, return_complex=True)
                .abs().clamp(min=1e-7) for x in (ref, est)]
        convergence = (spec[0] - spec[1]).norm() / spec[0].norm().clamp(min=EPS)
        log_l1 = (spec[0].log() - spec[1].log()).abs().mean()
        total += float(convergence + log_l1)
    return total / len(fft_sizes)


def find_delay(reference: torch.Tensor, estimate: torch.Tensor, max_lag: int,
               min_correlation: float = 0.2) -> tuple[int, float]:
    """The constant delay of ``estimate`` behind ``reference`` in samples, by FFT
    cross-correlation of the channel means over lags ``[-max_lag, max_lag]``.

    Returns ``(delay, correlation)``: ``estimate[t + delay] ~ reference[t]`` and the
    normalized correlation at that lag. A peak weaker than ``min_correlation`` is no
    evidence of a shift (an untrained model's output correlates with nothing), so the
    delay is then 0 with the zero-lag correlation.
    """
    ref = reference.double().cpu().reshape(-1, reference.shape[-1]).mean(0)
    est = estimate.double().cpu().reshape(-1, estimate.shape[-1]).mean(0)
    length = min(ref.shape[-1], est.shape[-1])
    ref, est = ref[:length], est[:length]
    norm = float(ref.norm() * est.norm())
    if length == 0 or norm == 0:
        return 0, 0.0
    max_lag = max(0, min(max_lag, length - 1))
    n_fft = 1 << (2 * length - 1).bit_length()
    # corr[k] = sum_t est[t + k] * ref[t]; negative lags wrap to the end.
    corr = torch.fft.irfft(torch.fft.rfft(est, n_fft) * torch.fft.rfft(ref, n_fft).conj(), n_fft)
    lags = torch.arange(-max_lag, max_lag + 1)
    values = corr[lags % n_fft] / norm
    best = int(values.argmax())
    if float(values[best]) < min_correlation:
        return 0, float(values[max_lag])
    return int(lags[best]), float(values[best])


def align(reference: torch.Tensor, estimate: torch.Tensor,
          delay: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Cut both ``[..., T]`` signals to the span where they overlap after undoing ``delay``
    (as returned by :func:`find_delay`)."""
    if delay > 0:
        estimate = estimate[..., delay:]
    elif delay < 0:
        reference = reference[..., -delay:]
    length = min(reference.shape[-1], estimate.shape[-1])
    return reference[..., :length], estimate[..., :length]


PESQ_RATE = 16000
STOI_RATE = 10000


def pesq_wb(reference: torch.Tensor, estimate: torch.Tensor, sample_rate: int) -> float:
    """Wide-band PESQ (ITU-T P.862.2) of the channel means, resampled to 16 kHz.

    Needs the ``pesq`` package (``pip install .[speech]``); ImportError otherwise.
    ``nan`` when PESQ finds no speech in the reference or the clip is too short.
    """
    from pesq import PesqError, pesq
    ref, est = (_mono_numpy(x, sample_rate, PESQ_RATE) for x in (reference, estimate))
    try:
        return float(pesq(PESQ_RATE, ref, est, "wb"))
    except PesqError:
        return math.nan


def stoi(reference: torch.Tensor, estimate: torch.Tensor, sample_rate: int,
         extended: bool = False) -> float:
    """Short-time objective intelligibility (Taal et al. 2011) of the channel means.

    Needs the ``pystoi`` package (``pip install .[speech]``); ImportError otherwise.
    """
    from pystoi import stoi as pystoi_stoi
    # STOI works at 10 kHz; torchaudio's resampler is much faster than pystoi's own.
    ref, est = (_mono_numpy(x, sample_rate, STOI_RATE) for x in (reference, estimate))
    return float(pystoi_stoi(ref, est, STOI_RATE, extended=extended))


def _mono_numpy(audio: torch.Tensor, sample_rate: int, new_rate: int):
    mono = audio.float().cpu().reshape(-1, audio.shape[-1]).mean(0)
    if new_rate != sample_rate:
        mono = _resampler(sample_rate, new_rate)(mono)
    return mono.double().numpy()


@functools.lru_cache(maxsize=8)
def _resampler(orig_rate: int, new_rate: int) -> torchaudio.transforms.Resample:
    # The transform builds its filter kernel once; the functional form rebuilds it per call.
    return torchaudio.transforms.Resample(orig_rate, new_rate)


def missing_speech_packages() -> list[str]:
    """Names of the optional packages PESQ and STOI need that are not installed."""
    import importlib.util
    return [name for name in ("pesq", "pystoi") if importlib.util.find_spec(name) is None]


def codebook_entropy(codes: torch.Tensor, codebook_size: int) -> list[float]:
    """Entropy in bits of each codebook's usage histogram.

    codes: ``[..., n_q, F]``; returns ``n_q`` values, each at most ``log2(codebook_size)``.
    Their sum times the frame rate is the bitrate an ideal static entropy coder would
    need for these codes.
    """
    per_codebook = codes.transpose(0, -2).reshape(codes.shape[-2], -1) if codes.dim() > 2 \
        else codes
    values = []
    for row in per_codebook:
        counts = torch.bincount(row.long().cpu(), minlength=codebook_size).double()
        probs = counts[counts > 0] / counts.sum()
        values.append(float(-(probs * probs.log2()).sum()) if probs.numel() else 0.0)
    return values


# The metrics measure() returns, in table order; PESQ and STOI only for speech.
METRICS = ("snr", "si_sdr", "rms_ratio", "mel_distance", "stft_distance")
SPEECH_METRICS = ("pesq", "stoi")


def measure(reference: torch.Tensor, estimate: torch.Tensor, sample_rate: int, *,
            speech: bool = False, max_delay_seconds: float = 0.05) -> dict[str, float]:
    """Every metric of ``estimate`` against ``reference`` (both ``[C, T]`` or ``[T]``).

    A constant delay up to ``max_delay_seconds`` is found by cross-correlation and
    undone first (reported as ``delay_samples``), so a codec that shifts its output
    is judged on its sound rather than on the shift. Lengths may differ; the overlap
    is compared. SNR of an exact copy is ``inf``. PESQ and STOI are added when
    ``speech`` is true and their packages are installed (see
    :func:`missing_speech_packages`).
    """
    reference, estimate = torch.as_tensor(reference), torch.as_tensor(estimate)
    if reference.dim() == 1:
        reference = reference[None]
    if estimate.dim() == 1:
        estimate = estimate[None]
    if reference.shape[:-1] != estimate.shape[:-1]:
        raise ValueError(f"reference has shape {tuple(reference.shape)} but estimate has "
                         f"{tuple(estimate.shape)}: channel counts differ")
    delay, correlation = find_delay(reference, estimate, int(max_delay_seconds * sample_rate))
    reference, estimate = align(reference, estimate, delay)
    if reference.shape[-1] == 0:
        raise ValueError("reference and estimate do not overlap")
    result = {
        "delay_samples": delay,
        "delay_correlation": correlation,
        "snr": snr(reference, estimate),
        "si_sdr": si_sdr(reference, estimate),
        "rms_ratio": rms_ratio(reference, estimate),
        "mel_distance": mel_distance(reference, estimate, sample_rate),
        "stft_distance": stft_distance(reference, estimate),
    }
    if speech:
        missing = missing_speech_packages()
        if "pesq" not in missing:
            result["pesq"] = pesq_wb(reference, estimate, sample_rate)
        if "pystoi" not in missing:
            result["stoi"] = stoi(reference, estimate, sample_rate)
    return result
