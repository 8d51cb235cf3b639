"""Discriminators for adversarial training: multi-scale STFT and multi-period.

Every discriminator takes audio ``[B, C, T]`` and returns a list of
``DiscriminatorOutput``, one per sub-discriminator (one STFT scale, one period),
each holding its logits and the feature map after every hidden layer (for the
feature matching loss). ``build_discriminator`` combines several by name.
All convolutions use weight norm, as in MelGAN, HiFi-GAN and EnCodec, which keeps
the discriminators' gradients well scaled without batch statistics.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

LEAKY_SLOPE = 0.2


@dataclass
class DiscriminatorOutput:
    """``logits`` of one sub-discriminator and its hidden ``features``; ``name`` for logs."""
    logits: torch.Tensor
    features: list[torch.Tensor] = field(default_factory=list)
    name: str = ""


def _run_layers(layers: nn.ModuleList, head: nn.Module, x: torch.Tensor, name: str
                ) -> DiscriminatorOutput:
    features = []
    for layer in layers:
        x = nn.functional.leaky_relu(layer(x), LEAKY_SLOPE)
        features.append(x)
    return DiscriminatorOutput(logits=head(x), features=features, name=name)


class STFTDiscriminator(nn.Module):
    """2-D conv net on one complex STFT (real and imaginary parts as channels).

    Follows the layout of EnCodec's MS-STFT discriminator (Défossez et al. 2022,
    sec. 3.3): convs with kernel (3 frames, 9 bins) that halve the frequency axis while
    their time dilation grows (1, 2, 4), a last 3x3 conv, and a 3x3 conv to one logit map.
    Input ``[B, C, T]``; the spectrogram is ``[B, 2C, frames, bins]``.
    """

    def __init__(self, n_fft: int, channels: int = 1, filters: int = 32,
                 dilations: Sequence[int] = (1, 2, 4), kernel: tuple[int, int] = (3, 9)):
        super().__init__()
        self.n_fft = n_fft
        self.hop_length = n_fft // 4
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        time_k, freq_k = kernel
        # Unlike EnCodec, the first conv already halves the frequency axis: the convs
        # after it, filters x filters wide, then cost half as much, which matters on CPU.
        layers = [nn.Conv2d(2 * channels, filters, kernel, stride=(1, 2),
                            padding=(time_k // 2, freq_k // 2))]
        for dilation in dilations:
            layers.append(nn.Conv2d(filters, filters, kernel, stride=(1, 2),
                                    dilation=(dilation, 1),
                                    padding=(dilation * (time_k // 2), freq_k // 2)))
        layers.append(nn.Conv2d(filters, filters, (time_k, time_k),
                                padding=(time_k // 2, time_k // 2)))
        self.layers = nn.ModuleList(weight_norm(layer) for layer in layers)
        self.head = weight_norm(nn.Conv2d(filters, 1, (time_k, time_k),
                                          padding=(time_k // 2, time_k // 2)))

    def spectrogram(self, audio: torch.Tensor) -> torch.Tensor:
        """``[B, C, T]`` -> ``[B, 2C, frames, bins]``, STFT normalised by the window norm."""
        batch, channels, length = audio.shape
        # The FFT runs in float32 even under autocast; the convs after it may use bf16.
        with torch.autocast(device_type=audio.device.type, enabled=False):
            spec = torch.stft(audio.reshape(batch * channels, length).float(), self.n_fft,
                              hop_length=self.hop_length, window=self.window,
                              normalized=True, return_complex=True)
        spec = spec.reshape(batch, channels, *spec.shape[-2:])       # [B, C, bins, frames]
        spec = torch.cat([spec.real, spec.imag], dim=1)               # [B, 2C, bins, frames]
        return spec.transpose(-1, -2)                                 # [B, 2C, frames, bins]

    def forward(self, audio: torch.Tensor) -> DiscriminatorOutput:
        return _run_layers(self.layers, self.head, self.spectrogram(audio),
                           f"msstft/{self.n_fft}")


class MultiScaleSTFTDiscriminator(nn.Module):
    """One ``STFTDiscriminator`` per FFT size; returns one output per size."""

    def __init__(self, channels: int = 1, n_ffts: Sequence[int] = (2048, 1024, 512),
                 filters: int = 32):
        super().__init__()
        self.discriminators = nn.ModuleList(
            STFTDiscriminator(n_fft, channels=channels, filters=filters) for n_fft in n_ffts)

    def forward(self, audio: torch.Tensor) -> list[DiscriminatorOutput]:
        return [disc(audio) for disc in self.discriminators]


class PeriodDiscriminator(nn.Module):
    """HiFi-GAN's period discriminator (Kong et al. 2020, sec. 2.2).

    The waveform ``[B, C, T]`` is folded to ``[B, C, T / p, p]`` so that each column
    holds every p-th sample, then 2-D convs with kernels ``(k, 1)`` look along the
    columns only: the net sees the periodic structure of period ``p``.
    """

    def __init__(self, period: int, channels: int = 1, widths: Sequence[int] = (32, 64, 128, 256),
                 kernel_size: int = 5, stride: int = 3):
        super().__init__()
        self.period = period
        pad = (kernel_size // 2, 0)
        layers = []
        in_width = channels
        for width in widths:
            layers.append(nn.Conv2d(in_width, width, (kernel_size, 1), stride=(stride, 1),
                                    padding=pad))
            in_width = width
        layers.append(nn.Conv2d(in_width, in_width, (kernel_size, 1), padding=pad))
        self.layers = nn.ModuleList(weight_norm(layer) for layer in layers)
        self.head = weight_norm(nn.Conv2d(in_width, 1, (3, 1), padding=(1, 0)))

    def fold(self, audio: torch.Tensor) -> torch.Tensor:
        """``[B, C, T]`` -> ``[B, C, ceil(T / p), p]``, reflect-padding the end."""
        batch, channels, length = audio.shape
        extra = -length % self.period
        if extra:
            mode = "reflect" if extra < length else "constant"
            audio = nn.functional.pad(audio, (0, extra), mode=mode)
        return audio.reshape(batch, channels, -1, self.period)

    def forward(self, audio: torch.Tensor) -> DiscriminatorOutput:
        return _run_layers(self.layers, self.head, self.fold(audio), f"mpd/{self.period}")


class MultiPeriodDiscriminator(nn.Module):
    """One ``PeriodDiscriminator`` per period (primes, so the periods overlap little)."""

    def __init__(self, channels: int = 1, periods: Sequence[int] = (2, 3, 5, 7, 11),
                 filters: int = 32):
        super().__init__()
        # Each layer twice as wide as the one before it, from ``filters``.
        widths = tuple(filters * 2 ** i for i in range(4))
        self.discriminators = nn.ModuleList(
            PeriodDiscriminator(p, channels=channels, widths=widths) for p in periods)

    def forward(self, audio: torch.Tensor) -> list[DiscriminatorOutput]:
        return [disc(audio) for disc in self.discriminators]


DISCRIMINATORS: dict[str, type[nn.Module]] = {
    "msstft": MultiScaleSTFTDiscriminator,
    "mpd": MultiPeriodDiscriminator,
}


class Discriminator(nn.Module):
    """Several discriminators side by side; ``forward`` concatenates their outputs."""

    def __init__(self, parts: dict[str, nn.Module], channels: int = 1):
        super().__init__()
        self.parts = nn.ModuleDict(parts)
        self.channels = channels

    def forward(self, audio: torch.Tensor) -> list[DiscriminatorOutput]:
        """``audio [B, C, T]`` -> one ``DiscriminatorOutput`` per sub-discriminator."""
        if audio.dim() != 3 or audio.shape[1] != self.channels:
            raise ValueError(f"discriminators built for {self.channels} channel(s) take audio "
                             f"[B, {self.channels}, T], got {tuple(audio.shape)}")
        return [out for part in self.parts.values() for out in part(audio)]


def build_discriminator(names: Sequence[str], channels: int = 1,
                        filters: int = 32) -> Discriminator | None:
    """The named discriminators (keys of ``DISCRIMINATORS``) combined; None for no names.
    ``filters`` sets their width: every layer of msstft's, the first of mpd's. A step's
    cost grows with its square, so narrow ones suit a CPU."""
    if isinstance(names, str):
        names = (names,)
    unknown = [name for name in names if name not in DISCRIMINATORS]
    if unknown:
        raise ValueError(f"unknown discriminator(s) {unknown}; choices: {sorted(DISCRIMINATORS)}")
    if len(set(names)) != len(names):
        raise ValueError(f"discriminator names repeat: {list(names)}")
    if filters < 1:
        raise ValueError(f"discriminator filters must be at least 1, got {filters}")
    if not names:
        return None
    return Discriminator({name: DISCRIMINATORS[name](channels=channels, filters=filters)
                          for name in names}, channels=channels)
