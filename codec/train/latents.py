"""What the encoder's latents carry: the diagnostics training logs at validation and
``eval.diagnostics`` draws over a run's checkpoints.

On a batch of crops ``[B, C, T]`` (B >= 2), :func:`latent_diagnostics` measures:

- per-dimension variance of the encoder latents ``[B, D, F]`` (over all frames);
- the PCA spectrum: the share of variance of the top k principal directions, and
  how many directions carry 90 % and 99 % of it (an effective dimension);
- two Gaussian entropy figures from the latent covariance, in bits per frame:
  ``gaussian_entropy_bits``, the differential entropy ``0.5 log2 det(2 pi e C)``
  over the directions with non-negligible variance (scale-dependent; can be
  negative), and ``gaussian_rate_bits``, the rate a Gaussian source with these
  eigenvalues needs at the distortion the residual VQ actually leaves (reverse
  water-filling, Cover & Thomas, Elements of Information Theory, 2006, th. 10.3.3),
  to compare with the ``nominal_bits`` the codes spend;
- each codebook's usage entropy (bits) and their sum ``code_entropy_bits``;
- ``relevance_r2``: the R^2 of a ridge regression from one latent frame to the
  log-mel frame of the input at the same time, fitted on half the crops and scored on
  the other half: how much of the audible spectrum a frame linearly encodes.

:func:`diagnostic_figures` draws each against the step (names in ``FIGURES``), with
relevance against rate coloured by step. The figures are plain matplotlib Figures, not
pyplot ones: nothing here touches pyplot's global state or backend.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Sequence

import torch
import torchaudio

from codec import metrics
from codec.network.model import Codec

if TYPE_CHECKING:
    from matplotlib.figure import Figure

FIGURES = ("latents/variance_spectrum", "latents/pca_spectrum", "latents/effective_dims",
           "latents/entropy", "latents/codebook_entropy", "latents/relevance",
           "latents/relevance_vs_rate")
N_MELS = 64
# Eigenvalues below this share of the largest are numerical noise, not signal.
EIGEN_FLOOR = 1e-9


# ---------------------------------------------------------------------------
# Measuring one model


@torch.no_grad()
def encoder_latents(model: Codec, audio: torch.Tensor) -> torch.Tensor:
    """Latents ``[B, D, F]`` of audio ``[B, C, T]`` (padded to whole frames)."""
    model.check_audio(audio)
    extra = -audio.shape[-1] % model.hop_length
    return model.encoder(torch.nn.functional.pad(audio, (0, extra))).float()


def log_mel_frames(audio: torch.Tensor, sample_rate: int, hop: int, frames: int) -> torch.Tensor:
    """Log-mel frames ``[B, frames, N_MELS]`` of the channel mean of ``audio [B, C, T]``,
    one per latent frame (hop = the model's hop; window 4 hops, at least 1024 samples so
    that every mel band gets FFT bins)."""
    transform = torchaudio.transforms.MelSpectrogram(
        sample_rate, n_fft=max(4 * hop, 1024), hop_length=hop, n_mels=N_MELS,
        power=2.0).to(audio.device)
    mel = transform(audio.float().mean(1))  # [B, N_MELS, T // hop + 1]
    mel = torch.nn.functional.pad(mel, (0, max(0, frames - mel.shape[-1])))
    return mel[..., :frames].clamp(min=1e-8).log10().transpose(1, 2)


def pca_spectrum(frames: torch.Tensor) -> torch.Tensor:
    """Eigenvalues of the covariance of ``[N, D]`` rows, largest first (float64)."""
    centred = frames.double() - frames.double().mean(0)
    covariance = centred.T @ centred / max(frames.shape[0] - 1, 1)
    return torch.linalg.eigvalsh(covariance).flip(0).clamp(min=0)


def dims_for(eigenvalues: torch.Tensor, share: float) -> int:
    """How many principal directions hold ``share`` of the total variance."""
    total = float(eigenvalues.sum())
    if total == 0:
        return 0
    cumulative = torch.cumsum(eigenvalues, 0) / total
    return int((cumulative < share - 1e-12).sum()) + 1


def gaussian_entropy_bits(eigenvalues: torch.Tensor) -> float:
    """Differential entropy of a Gaussian with these covariance eigenvalues, in bits,
    over the directions above ``EIGEN_FLOOR`` of the largest."""
    if float(eigenvalues.max()) <= 0:
        return -math.inf
    kept = eigenvalues[eigenvalues > EIGEN_FLOOR * eigenvalues.max()]
    return float(0.5 * torch.log2(2 * math.pi * math.e * kept).sum())


def gaussian_rate_bits(eigenvalues: torch.Tensor, distortion: float) -> float:
    """Bits per vector an ideal coder needs for a Gaussian source with these eigenvalues
    at a total squared error of ``distortion`` (reverse water-filling): each direction
    with variance above the water level theta costs ``0.5 log2(variance / theta)``."""
    values = eigenvalues.double().clamp(min=0)
    if distortion <= 0:
        return math.inf
    if distortion >= float(values.sum()):
        return 0.0
    low, high = 0.0, float(values.max())
    for _ in range(100):  # bisection on theta: sum(min(theta, variance)) = distortion
        theta = (low + high) / 2
        if float(values.clamp(max=theta).sum()) < distortion:
            low = theta
        else:
            high = theta
    theta = (low + high) / 2
    above = values[values > theta]
    return float(0.5 * torch.log2(above / theta).sum())


def ridge_r2(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor,
             test_y: torch.Tensor, strength: float = 1e-3) -> float:
    """R^2 on the test rows of a ridge regression ``y ~ x`` fitted on the train rows.

    Inputs are standardised with the training statistics; the penalty is ``strength``
    times the mean diagonal of X^T X, so it means the same at any scale. R^2 pools all
    outputs: 1 - squared error / variance around the training mean.
    """
    x_mean, x_std = train_x.mean(0), train_x.std(0).clamp(min=1e-8)
    y_mean = train_y.mean(0)
    x = ((train_x - x_mean) / x_std).double()
    gram = x.T @ x
    penalty = strength * float(gram.diagonal().mean()) + 1e-12
    weights = torch.linalg.solve(gram + penalty * torch.eye(x.shape[1], dtype=x.dtype),
                                 x.T @ (train_y - y_mean).double())
    predicted = ((test_x - x_mean) / x_std).double() @ weights + y_mean.double()
    error = (test_y.double() - predicted).pow(2).sum()
    spread = (test_y.double() - y_mean.double()).pow(2).sum()
    return float(1 - error / spread) if spread > 0 else math.nan


@torch.no_grad()
def latent_diagnostics(model: Codec, audio_batch: torch.Tensor) -> dict[str, Any]:
    """Every diagnostic of ``model`` on ``audio_batch [B, C, T]`` (B >= 2: the relevance
    probe is fitted on the first half of the crops and scored on the rest).

    Returns ``{"scalars": {"latent/...": float}, "variance": [D], "explained": [D],
    "codebook_entropy_bits": [n_q]}``; ``explained`` is the cumulative share of variance
    of the top 1..D principal directions. The model is left in the mode it came in.
    """
    if audio_batch.dim() != 3 or audio_batch.shape[0] < 2:
        raise ValueError(f"latent_diagnostics needs [B >= 2, C, T] audio, got "
                         f"{tuple(audio_batch.shape)}")
    training = model.training
    model.eval()  # in training mode the quantiser would update its codebooks
    try:
        audio = audio_batch.to(next(model.parameters()).device)
        latents = encoder_latents(model, audio)  # [B, D, F]
        codes = model.quantizer.encode(latents)
        quantized = model.quantizer.decode(codes).float()
    finally:
        model.train(training)
    batch, dim, frames = latents.shape
    rows = latents.transpose(1, 2).reshape(-1, dim).cpu()   # [B * F, D]
    eigenvalues = pca_spectrum(rows)
    distortion = float((latents - quantized).pow(2).sum(1).mean())  # per frame
    code_entropy = metrics.codebook_entropy(codes.cpu(), model.config.codebook_size)

    mel = log_mel_frames(audio, model.sample_rate, model.hop_length, frames).cpu()
    half = batch // 2
    split = half * frames
    r2 = ridge_r2(rows[:split], mel[:half].reshape(-1, N_MELS),
                  rows[split:], mel[half:].reshape(-1, N_MELS))
    total = float(eigenvalues.sum())
    explained = (torch.cumsum(eigenvalues, 0) / total).tolist() if total > 0 else \
        [0.0] * dim
    scalars = {
        "latent/variance_mean": float(rows.double().var(0).mean()),
        "latent/dims_90": dims_for(eigenvalues, 0.90),
        "latent/dims_99": dims_for(eigenvalues, 0.99),
        "latent/gaussian_entropy_bits": gaussian_entropy_bits(eigenvalues),
        "latent/gaussian_rate_bits": gaussian_rate_bits(eigenvalues, distortion),
        "latent/vq_distortion": distortion,
        "latent/code_entropy_bits": sum(code_entropy),
        "latent/nominal_bits": codes.shape[1] * model.bits_per_code,
        "latent/relevance_r2": r2,
    }
    for index, value in enumerate(code_entropy):
        scalars[f"latent/codebook/{index}/entropy_bits"] = value
    return {"scalars": scalars, "variance": rows.double().var(0).tolist(),
            "explained": explained, "codebook_entropy_bits": code_entropy}


# ---------------------------------------------------------------------------
# Figures


def diagnostic_figures(history: Sequence[dict]) -> dict[str, Figure]:
    """Figures (names in ``FIGURES``) from ``latent_diagnostics`` results, each with its
    ``step``, oldest first. The caller closes them (``add_figure`` does)."""
    if not history:
        raise ValueError("no diagnostics to draw")
    history = sorted(history, key=lambda h: h["step"])
    drawings = (_variance_spectrum, _pca_spectrum, _effective_dims, _bits_per_frame,
                _codebook_entropy, _relevance, _relevance_vs_rate)
    return {name: draw(history) for name, draw in zip(FIGURES, drawings, strict=True)}


def _scalar(history: Sequence[dict], name: str) -> list[float]:
    return [h["scalars"][name] for h in history]


def _steps(history: Sequence[dict]) -> list[int]:
    return [h["step"] for h in history]


def _shades(history: Sequence[dict]) -> list:
    """One colour per step, oldest to newest."""
    from matplotlib import colormaps

    colours = colormaps["viridis"]
    return [colours(i / max(len(history) - 1, 1)) for i in range(len(history))]


def _variance_spectrum(history: Sequence[dict]) -> Figure:
    figure, axes = _figure()
    for h, colour in zip(history, _shades(history), strict=True):
        values = sorted(h["variance"], reverse=True)
        axes.semilogy(range(1, len(values) + 1), values, color=colour, label=f"step {h['step']}")
    _finish(axes, "latent variance per dimension (sorted)", "dimension (by variance)",
            "variance", legend=len(history) <= 8)
    return figure


def _pca_spectrum(history: Sequence[dict]) -> Figure:
    figure, axes = _figure()
    for h, colour in zip(history, _shades(history), strict=True):
        axes.plot(range(1, len(h["explained"]) + 1), h["explained"], color=colour,
                  label=f"step {h['step']}")
    for share in (0.9, 0.99):
        axes.axhline(share, color="gray", linestyle=":", linewidth=0.8)
    _finish(axes, "PCA: cumulative explained variance", "principal directions",
            "share of variance", legend=len(history) <= 8)
    return figure


def _effective_dims(history: Sequence[dict]) -> Figure:
    figure, axes = _figure()
    steps = _steps(history)
    axes.plot(steps, _scalar(history, "latent/dims_90"), "o-", label="90 % of variance")
    axes.plot(steps, _scalar(history, "latent/dims_99"), "s-", label="99 % of variance")
    _finish(axes, "effective latent dimension", "step", "principal directions")
    return figure


def _bits_per_frame(history: Sequence[dict]) -> Figure:
    figure, axes = _figure()
    steps = _steps(history)
    axes.plot(steps, _scalar(history, "latent/gaussian_rate_bits"), "o-",
              label="Gaussian rate at the VQ's distortion")
    axes.plot(steps, _scalar(history, "latent/code_entropy_bits"), "s-",
              label="code usage entropy")
    axes.plot(steps, _scalar(history, "latent/nominal_bits"), "k--",
              label="bits spent (nominal)")
    _finish(axes, "bits per frame", "step", "bits / frame")
    return figure


def _codebook_entropy(history: Sequence[dict]) -> Figure:
    figure, axes = _figure()
    steps = _steps(history)
    for index in range(len(history[-1]["codebook_entropy_bits"])):
        axes.plot(steps, [h["codebook_entropy_bits"][index] for h in history], "o-",
                  label=f"codebook {index}")
    _finish(axes, "codebook usage entropy", "step", "bits", legend=True)
    return figure


def _relevance(history: Sequence[dict]) -> Figure:
    figure, axes = _figure()
    axes.plot(_steps(history), _scalar(history, "latent/relevance_r2"), "o-")
    _finish(axes, "relevance: R^2 of latent -> log-mel (held-out)", "step",
            "R^2", legend=False)
    return figure


def _relevance_vs_rate(history: Sequence[dict]) -> Figure:
    figure, axes = _figure()
    rate = _scalar(history, "latent/gaussian_rate_bits")
    r2 = _scalar(history, "latent/relevance_r2")
    axes.plot(rate, r2, color="lightgray", linewidth=0.8, zorder=1)
    points = axes.scatter(rate, r2, c=_steps(history), cmap="viridis", zorder=2)
    figure.colorbar(points, ax=axes, label="step")
    _finish(axes, "relevance against rate", "Gaussian rate (bits / frame)", "R^2",
            legend=False)
    return figure


def _figure():
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5.2, 3.6), dpi=100)
    return figure, figure.subplots()


def _finish(axes, title: str, xlabel: str, ylabel: str, legend: bool = True) -> None:
    axes.set_title(title, fontsize=10)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.grid(True, alpha=0.3)
    if legend and axes.get_legend_handles_labels()[0]:
        axes.legend(fontsize=7)
    axes.figure.tight_layout()
