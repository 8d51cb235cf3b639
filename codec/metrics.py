"""Signal metrics shared by training and evaluation.

All take ``reference`` and ``estimate`` tensors of the same shape ``[..., T]`` and
return Python floats averaged over leading dimensions unless said otherwise.
"""
from __future__ import annotations

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


def mel_distance(reference: torch.Tensor, estimate: torch.Tensor, sample_rate: int,
                 scales: tuple[int, ...] = (512, 1024, 2048), n_mels: int = 80) -> float:
    """Mean L1 distance between log10 mel magnitudes over several FFT sizes."""
    total = 0.0
    for n_fft in scales:
        transform = _mel(sample_rate, n_fft, n_mels)
        ref = transform(reference.float().cpu()).clamp(min=1e-5).log10()
        est = transform(estimate.float().cpu()).clamp(min=1e-5).log10()
        total += float((ref - est).abs().mean())
    return total / len(scales)
