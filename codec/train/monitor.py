"""TensorBoard logging for training: scalars, audio clips, mel spectrogram images and
the encoder's latent diagnostics.

Only one process of a distributed run writes; the others get a ``Monitor`` with
``enabled=False`` whose methods do nothing, so the training loop never asks who
it is before logging.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
import torchaudio

from codec.mel_scale import hz_to_mel
from codec.network.model import Codec
from codec.train.latents import diagnostic_figures, latent_diagnostics

# Fixed range of the log10 mel magnitudes shown in images (-100 dB .. +20 dB), so
# that images of the same clip at different steps share one colour scale.
MEL_IMAGE_RANGE = (-5.0, 1.0)
# (width, height) in pixels of the mel figures TensorBoard shows.
MEL_FIGURE_PIXELS = (720, 280)


class Monitor:
    """A SummaryWriter into ``log_dir`` that logs nothing when ``enabled`` is False.

    ``purge_step`` drops events at or after that step left by a run that was killed
    after its last checkpoint, so a resumed run's curves do not double back.
    """

    def __init__(self, log_dir: str | Path, *, enabled: bool = True, purge_step: int | None = None):
        self.enabled = enabled
        self.originals_logged = False  # reference clips are logged once per process
        self.writer = None
        if enabled:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(log_dir), purge_step=purge_step)
        self._mel: dict[int, torchaudio.transforms.MelSpectrogram] = {}
        self.latent_history: list[dict] = []  # latent diagnostics of this process, by step

    def scalars(self, values: Mapping[str, float], step: int) -> None:
        if self.writer is None:
            return
        for tag, value in values.items():
            self.writer.add_scalar(tag, float(value), step)

    def text(self, tag: str, text: str, step: int = 0) -> None:
        if self.writer is not None:
            self.writer.add_text(tag, text, step)

    def audio(self, tag: str, audio: torch.Tensor, sample_rate: int, step: int) -> None:
        """One clip ``[C, T]``; the first channel is logged, clipped to [-1, 1] for playback."""
        if self.writer is None:
            return
        clip = audio.detach().float().cpu()[0].clamp(-1, 1)
        self.writer.add_audio(tag, clip, step, sample_rate=sample_rate)

    def mel_image(self, tag: str, audio: torch.Tensor, sample_rate: int, step: int) -> None:
        """The log-mel spectrogram of ``audio [C, T]`` (first channel) as a figure with
        time and frequency axes, ``MEL_FIGURE_PIXELS`` in size."""
        if self.writer is None:
            return
        self.writer.add_image(tag, mel_figure(audio, sample_rate, self._mel, title=tag), step,
                              dataformats="HWC")

    def hparams(self, settings: Mapping[str, Any], metrics: Mapping[str, float]) -> None:
        """A row of TensorBoard's hparams table for this run: ``settings`` (plain values)
        beside ``metrics``, which name scalar tags this run logs (their last values are
        shown). Written into the run's own event file, so runs compare in one table."""
        if self.writer is None or not metrics:
            return
        from torch.utils.tensorboard.summary import hparams

        writer = self.writer._get_file_writer()
        for summary in hparams(dict(settings), {k: float(v) for k, v in metrics.items()}):
            writer.add_summary(summary)

    def latent_diagnostics(self, model: Codec, audio: torch.Tensor, step: int) -> None:
        """``codec.train.latents`` diagnostics of ``model``'s latents on ``audio [B, C, T]``
        (B >= 2): the ``latent/...`` scalars at ``step``, and the figures (names in its
        ``FIGURES``) drawn over every call of this process so far (a resumed run starts
        them again)."""
        if self.writer is None:
            return
        result = latent_diagnostics(model, audio)
        self.scalars(result["scalars"], step)
        self.latent_history.append({"step": step, **result})
        for name, figure in diagnostic_figures(self.latent_history).items():
            self.writer.add_figure(name, figure, step)  # renders it

    def flush(self) -> None:
        if self.writer is not None:
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def mel_figure(audio: torch.Tensor, sample_rate: int,
               cache: dict[int, torchaudio.transforms.MelSpectrogram] | None = None,
               title: str = "") -> np.ndarray:
    """``audio [C, T]`` -> its log-mel spectrogram drawn with a time axis (seconds) and a
    frequency axis (kHz at the mel band centres), an RGB image ``[H, W, 3]`` uint8 of
    ``MEL_FIGURE_PIXELS`` (width, height) whatever the clip's length: a 0.5 s clip
    would otherwise be an image a few dozen pixels wide."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    image = mel_image(audio, sample_rate, cache).numpy()
    seconds = audio.shape[-1] / sample_rate
    width, height = MEL_FIGURE_PIXELS
    figure, axis = plt.subplots(figsize=(width / 100, height / 100), dpi=100)
    axis.imshow(image, aspect="auto", interpolation="nearest",
                extent=(0, seconds, 0, image.shape[0]))
    top = sample_rate / 2000
    ticks = [f for f in (0.5, 1, 2, 4, 8, 16) if f < top]
    axis.set_yticks([_mel_row(f * 1000, sample_rate, image.shape[0]) for f in ticks],
                    [f"{f:g}" for f in ticks])
    axis.set_xlabel("seconds")
    axis.set_ylabel("kHz")
    axis.set_title(title, fontsize=9)
    figure.tight_layout()
    figure.canvas.draw()
    pixels = np.asarray(figure.canvas.buffer_rgba())[..., :3].copy()
    plt.close(figure)
    return pixels


def _mel_row(hertz: float, sample_rate: int, n_mels: int) -> float:
    """Where ``hertz`` falls on the mel axis of ``n_mels`` bands up to ``sample_rate``/2
    (HTK mel scale, torchaudio's default)."""
    return n_mels * hz_to_mel(hertz) / hz_to_mel(sample_rate / 2)


def mel_image(audio: torch.Tensor, sample_rate: int,
              cache: dict[int, torchaudio.transforms.MelSpectrogram] | None = None
              ) -> torch.Tensor:
    """``audio [C, T]`` -> an RGB image ``[n_mels, frames, 3]`` in [0, 1], low bands at the
    bottom, coloured with matplotlib's magma map."""
    from matplotlib import colormaps

    cache = {} if cache is None else cache
    if sample_rate not in cache:
        cache[sample_rate] = torchaudio.transforms.MelSpectrogram(
            sample_rate, n_fft=1024, hop_length=256, n_mels=80, power=1.0)
    mel = cache[sample_rate](audio.detach().float().cpu()[0])
    low, high = MEL_IMAGE_RANGE
    level = ((mel.clamp(min=1e-8).log10() - low) / (high - low)).clamp(0, 1).flip(0)
    return torch.from_numpy(colormaps["magma"](level.numpy())[..., :3]).float()
