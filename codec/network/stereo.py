"""How a two-channel model holds its channels: left/right as they come, or mid/side.

A stereo model codes both channels jointly either way: the frame-rate layers see the
spectra of both. Mid/side (``mid = (L + R) / 2``, ``side = (L - R) / 2``) changes what
the encoder's power compression and the frame levels measure: music is mostly near the
centre, so the side carries little energy, and compressing it apart from the mid keeps
its quiet detail apart from the loud common part. The decoder's output is mapped back
(``L = mid + side``, ``R = mid - side``), so the audio in and out is left/right in
every layout.

The maps are linear and act on the channel axis (1) of any tensor: audio ``[B, C, T]``,
spectra ``[B, C, bins, F]`` or parts ``[B, C, 2, bins, F]``. Mapping a frame's spectra
is the same as mapping the audio, so a path that cannot reach the spectra (an exported
graph) maps the audio before analysis and after synthesis instead.
"""
from __future__ import annotations

import torch

# model.stereo: how a two-channel model holds its channels.
LAYOUTS = ("lr", "ms")


def layout_problem(layout: str, channels: int, arch: str) -> str | None:
    """Why ``model.stereo = layout`` cannot go with the rest of a model, or None."""
    if layout not in LAYOUTS:
        return f"model.stereo must be one of {list(LAYOUTS)}, got {layout!r:.20}"
    if layout == "ms" and (channels != 2 or arch != "stft"):
        return (f"model.stereo ms (mid/side) needs a two-channel spectral model (arch "
                f"stft, channels 2); got arch {arch!r:.20}, channels {channels}")
    return None


def to_coded(tensor: torch.Tensor, layout: str) -> torch.Tensor:
    """Left/right along axis 1 -> the layout the model codes."""
    if layout == "lr":
        return tensor
    left, right = tensor[:, 0], tensor[:, 1]
    return torch.stack(((left + right) / 2, (left - right) / 2), dim=1)


def from_coded(tensor: torch.Tensor, layout: str) -> torch.Tensor:
    """The model's layout along axis 1 -> left/right: the exact inverse of
    :func:`to_coded`."""
    if layout == "lr":
        return tensor
    mid, side = tensor[:, 0], tensor[:, 1]
    return torch.stack((mid + side, mid - side), dim=1)
