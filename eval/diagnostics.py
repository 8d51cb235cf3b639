"""What the encoder's latents carry, and how that changes over training.

    python -m eval.diagnostics RUN_DIR [--data MANIFEST_OR_DIR] [-o OUT] [--crops 32]

For every checkpoint of a run, on the same fixed crops (the run's validation
manifest unless ``--data`` names another), this measures:

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

Each is drawn against the step, with relevance against rate coloured by step.

Training can log the same figures at validation time::

    history = []
    ...
    d = latent_diagnostics(model, crops)              # crops [B, C, T], B >= 2
    monitor.scalars(d["scalars"], step)
    history.append({"step": step, **d})
    for name, figure in diagnostic_figures(history).items():
        writer.add_figure(name, figure, step)         # closes the figure

Figure names: ``FIGURES`` below.
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
import torchaudio  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from tqdm import tqdm  # noqa: E402

from codec import metrics  # noqa: E402
from codec.errors import CodecError  # noqa: E402

FIGURES = ("latents/variance_spectrum", "latents/pca_spectrum", "latents/effective_dims",
           "latents/entropy", "latents/codebook_entropy", "latents/relevance",
           "latents/relevance_vs_rate")
N_MELS = 64
# Eigenvalues below this share of the largest are numerical noise, not signal.
EIGEN_FLOOR = 1e-9


# ---------------------------------------------------------------------------
# Measuring one model


@torch.no_grad()
def encoder_latents(model, audio: torch.Tensor) -> torch.Tensor:
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
def latent_diagnostics(model, audio_batch: torch.Tensor) -> dict[str, Any]:
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
    steps = [h["step"] for h in history]
    colours = plt.get_cmap("viridis")
    shade = [colours(i / max(len(history) - 1, 1)) for i in range(len(history))]

    def scalar(name: str) -> list[float]:
        return [h["scalars"][name] for h in history]

    figures = {}
    figure, axes = _figure()
    for h, colour in zip(history, shade, strict=True):
        values = sorted(h["variance"], reverse=True)
        axes.semilogy(range(1, len(values) + 1), values, color=colour, label=f"step {h['step']}")
    _finish(axes, "latent variance per dimension (sorted)", "dimension (by variance)",
            "variance", legend=len(history) <= 8)
    figures[FIGURES[0]] = figure

    figure, axes = _figure()
    for h, colour in zip(history, shade, strict=True):
        axes.plot(range(1, len(h["explained"]) + 1), h["explained"], color=colour,
                  label=f"step {h['step']}")
    for share in (0.9, 0.99):
        axes.axhline(share, color="gray", linestyle=":", linewidth=0.8)
    _finish(axes, "PCA: cumulative explained variance", "principal directions",
            "share of variance", legend=len(history) <= 8)
    figures[FIGURES[1]] = figure

    figure, axes = _figure()
    axes.plot(steps, scalar("latent/dims_90"), "o-", label="90 % of variance")
    axes.plot(steps, scalar("latent/dims_99"), "s-", label="99 % of variance")
    _finish(axes, "effective latent dimension", "step", "principal directions")
    figures[FIGURES[2]] = figure

    figure, axes = _figure()
    axes.plot(steps, scalar("latent/gaussian_rate_bits"), "o-",
              label="Gaussian rate at the VQ's distortion")
    axes.plot(steps, scalar("latent/code_entropy_bits"), "s-", label="code usage entropy")
    axes.plot(steps, scalar("latent/nominal_bits"), "k--", label="bits spent (nominal)")
    _finish(axes, "bits per frame", "step", "bits / frame")
    figures[FIGURES[3]] = figure

    figure, axes = _figure()
    for index in range(len(history[-1]["codebook_entropy_bits"])):
        axes.plot(steps, [h["codebook_entropy_bits"][index] for h in history], "o-",
                  label=f"codebook {index}")
    _finish(axes, "codebook usage entropy", "step", "bits", legend=True)
    figures[FIGURES[4]] = figure

    figure, axes = _figure()
    axes.plot(steps, scalar("latent/relevance_r2"), "o-")
    _finish(axes, "relevance: R^2 of latent -> log-mel (held-out)", "step",
            "R^2", legend=False)
    figures[FIGURES[5]] = figure

    figure, axes = _figure()
    rate, r2 = scalar("latent/gaussian_rate_bits"), scalar("latent/relevance_r2")
    axes.plot(rate, r2, color="lightgray", linewidth=0.8, zorder=1)
    points = axes.scatter(rate, r2, c=steps, cmap="viridis", zorder=2)
    figure.colorbar(points, ax=axes, label="step")
    _finish(axes, "relevance against rate", "Gaussian rate (bits / frame)", "R^2",
            legend=False)
    figures[FIGURES[6]] = figure
    return figures


def _figure():
    return plt.subplots(figsize=(5.2, 3.6), dpi=100)


def _finish(axes, title: str, xlabel: str, ylabel: str, legend: bool = True) -> None:
    axes.set_title(title, fontsize=10)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.grid(True, alpha=0.3)
    if legend and axes.get_legend_handles_labels()[0]:
        axes.legend(fontsize=7)
    axes.figure.tight_layout()


# ---------------------------------------------------------------------------
# Over a run's checkpoints


def load_crops(data: str | Path, model, count: int, seconds: float,
               target_lufs: float | None) -> torch.Tensor:
    """``count`` fixed crops ``[count, C, T]`` at the model's rate, normalised as in
    training. A manifest gives the same crops validation uses; a folder, the loudest
    stretch of each of its first files."""
    from codec.audio import loudness, loudness_gain, peak, read_audio, resample, to_channels
    from codec.data import ValidCrops
    from eval.dataset import list_items
    from eval.evaluate import loudest_window

    data = Path(data)
    if data.suffix == ".jsonl":
        crops = ValidCrops(data, model.sample_rate, model.config.channels, count=count,
                           segment_seconds=seconds, target_lufs=target_lufs)
        return torch.stack([crops[i] for i in range(len(crops))])
    length = int(seconds * model.sample_rate)
    crops = []
    for item in list_items(data, max_files=count):
        audio, rate = read_audio(item.path)
        audio = to_channels(resample(audio, rate, model.sample_rate), model.config.channels)
        start = loudest_window(audio, length)
        audio = torch.nn.functional.pad(audio[..., start:start + length],
                                        (0, max(0, length - audio.shape[-1])))
        if target_lufs is not None:
            audio = audio * loudness_gain(loudness(audio, model.sample_rate), target_lufs,
                                          peak(audio))
        crops.append(audio)
    if len(crops) < 2:
        raise CodecError(f"{data}: the relevance probe needs at least 2 files, found "
                         f"{len(crops)}")
    return torch.stack(crops)


def run_diagnostics(run_dir: str | Path, out_dir: str | Path, *, data: str | None = None,
                    crops: int = 32, seconds: float = 2.0, device: str = "cpu") -> list[dict]:
    """Diagnostics of every checkpoint in ``run_dir`` (oldest first), written to
    ``out_dir`` as diagnostics.json, one PNG per figure and index.html."""
    from codec.checkpoint import list_checkpoints, load_model, read_checkpoint
    from eval.results import write_json

    checkpoints = list_checkpoints(run_dir)
    if not checkpoints:
        raise CodecError(f"{run_dir}: no checkpoints (expected {run_dir}/checkpoints/step-*)")
    config = read_checkpoint(checkpoints[-1], train_state=False).meta["config"]
    data = data or config["data"].get("valid") or None
    if not data:
        raise CodecError(f"{run_dir}: the run has no validation manifest; pass --data")
    target = config["data"].get("target_lufs")
    history, audio = [], None
    for path in tqdm(checkpoints, desc="diagnostics", unit="checkpoint", disable=None):
        model = load_model(path, device=device)
        if audio is None:
            audio = load_crops(data, model, crops, seconds, target)
        step = read_checkpoint(path, train_state=False).step
        history.append({"step": step, "checkpoint": path.name,
                        **latent_diagnostics(model, audio)})
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / "diagnostics.json",
               {"run": str(run_dir), "data": str(data), "crops": int(audio.shape[0]),
                "seconds": seconds, "history": history})
    images = {}
    for name, figure in diagnostic_figures(history).items():
        path = out_dir / (name.replace("/", "_") + ".png")
        figure.savefig(path)
        plt.close(figure)
        images[name] = path
    write_page(out_dir, history, images, run_dir, data)
    return history


def write_page(out_dir: Path, history: list[dict], images: dict[str, Path], run_dir, data) -> None:
    from eval.report import image_tag, page, table_html

    names = ["latent/dims_90", "latent/dims_99", "latent/gaussian_entropy_bits",
             "latent/gaussian_rate_bits", "latent/code_entropy_bits", "latent/nominal_bits",
             "latent/relevance_r2"]
    rows = [[h["step"]] + [h["scalars"][n] for n in names] for h in history]
    sections = [f'<p class="note">Run {run_dir}; crops from {data}. See the docstring of '
                "eval/diagnostics.py for what each figure measures.</p>",
                table_html(["step"] + [n.split("/", 1)[1] for n in names], rows),
                '<div class="plots">' + "".join(image_tag(p, n) for n, p in images.items())
                + "</div>"]
    (out_dir / "index.html").write_text(page("Latent diagnostics", sections), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eval.diagnostics",
                                     description="Latent diagnostics over a run's checkpoints.")
    parser.add_argument("run_dir")
    parser.add_argument("--data", default=None,
                        help="manifest or folder for the crops (default: the run's valid set)")
    parser.add_argument("-o", "--out", default=None,
                        help="output folder (default: RUN_DIR/diagnostics)")
    parser.add_argument("--crops", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=2.0, help="length of each crop")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    out = Path(args.out or Path(args.run_dir) / "diagnostics")
    try:
        history = run_diagnostics(args.run_dir, out, data=args.data, crops=args.crops,
                                  seconds=args.seconds, device=args.device)
    except CodecError as error:
        print(f"eval.diagnostics: error: {error}", file=sys.stderr)
        return 2
    for h in history:
        s = h["scalars"]
        print(f"step {h['step']:>7}: dims90 {s['latent/dims_90']:>3}  "
              f"rate {s['latent/gaussian_rate_bits']:7.1f} b/frame  "
              f"codes {s['latent/code_entropy_bits']:6.1f}/{s['latent/nominal_bits']:g} b  "
              f"R2 {s['latent/relevance_r2']:.3f}")
    print(f"report: {out / 'index.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
