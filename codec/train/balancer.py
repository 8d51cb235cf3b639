"""Gradient balancer: weights set each loss's share of the gradient, not its scale.

EnCodec (Défossez et al. 2022, sec. 3.4) observed that loss weights interact with
the losses' raw scales, which change during training. The balancer takes the
gradient of each loss with respect to the model output, divides it by a running
average of its norm, and rescales it to ``weight / sum(weights) * total_norm``.
The weights are then the shares of the output gradient each loss gets, whatever
the scale of the loss.
"""
from __future__ import annotations

import math
from typing import Mapping

import torch

from codec.train.losses import weights_as_dict


class Balancer:
    """Combine the gradients of several losses at the model ``output``.

    Args:
        weights: share of each loss in the output gradient; 0 leaves the loss out.
            A dict or a ``codec.config.LossWeights``.
        total_norm: norm of the combined output gradient (when the losses' gradients
            are orthogonal and their norms are at their running averages).
        ema_decay: decay of the running average of each gradient norm; the average
            is bias-corrected, so the first step uses the first norm as it is.
    """

    def __init__(self, weights: Mapping[str, float] | object, total_norm: float = 1.0,
                 ema_decay: float = 0.999):
        weights = weights_as_dict(weights)
        if any(w < 0 for w in weights.values()):
            raise ValueError(f"balancer weights must be >= 0, got {weights}")
        if not 0 <= ema_decay < 1:
            raise ValueError(f"ema_decay must be in [0, 1), got {ema_decay}")
        self.weights = weights
        if not any(self.weights.values()):
            raise ValueError("the balancer needs at least one loss with a positive weight")
        self.total_norm = total_norm
        self.ema_decay = ema_decay
        self._norm_sum: dict[str, float] = {}
        self._norm_count: dict[str, float] = {}

    def _average_norm(self, name: str, norm: float) -> float:
        """Bias-corrected EMA of the norms seen so far for ``name``, including ``norm``."""
        if math.isfinite(norm):  # a non-finite step must not poison the average
            decay = self.ema_decay
            self._norm_sum[name] = self._norm_sum.get(name, 0.0) * decay + norm
            self._norm_count[name] = self._norm_count.get(name, 0.0) * decay + 1
        if name not in self._norm_count:
            return norm
        return self._norm_sum[name] / self._norm_count[name]

    def state_dict(self) -> dict[str, dict[str, float]]:
        """The running norm averages, as plain floats (JSON-safe) for checkpoints."""
        return {"norm_sum": dict(self._norm_sum), "norm_count": dict(self._norm_count)}

    def load_state_dict(self, state: Mapping[str, Mapping[str, float]]) -> None:
        self._norm_sum = {k: float(v) for k, v in state["norm_sum"].items()}
        self._norm_count = {k: float(v) for k, v in state["norm_count"].items()}

    def backward(self, losses: Mapping[str, torch.Tensor], output: torch.Tensor,
                 other: torch.Tensor | None = None) -> dict[str, float]:
        """Backpropagate the balanced losses through ``output``; return raw gradient norms.

        Args:
            losses: scalar losses that depend on ``output``; names without a positive
                weight are ignored (they are only logged). Unknown names raise.
            output: the model output the losses were computed from (e.g. decoded audio).
            other: an optional scalar loss that does not go through ``output`` (such
                as the weighted commitment loss). It is backpropagated in the same
                pass, so the graph the two share is only traversed once.
        Returns:
            ``{name: norm of d loss / d output}`` before rescaling, for logging.
        """
        unknown = sorted(set(losses) - set(self.weights))
        if unknown:
            raise ValueError(f"no balancer weight for loss(es) {unknown}; "
                             f"known: {sorted(self.weights)}")
        names = [name for name in losses if self.weights[name] > 0]
        if not names:
            raise ValueError(f"none of the losses {sorted(losses)} has a positive weight")
        total_weight = sum(self.weights[name] for name in names)
        combined = torch.zeros_like(output, dtype=torch.float32)
        norms: dict[str, float] = {}
        for name in names:
            (grad,) = torch.autograd.grad(losses[name], output, retain_graph=True,
                                          allow_unused=True)
            if grad is None:
                raise ValueError(f"loss {name!r} does not depend on the balanced output; "
                                 f"pass it as `other` instead")
            grad = grad.float()
            norms[name] = float(grad.norm())
            scale = self.weights[name] / total_weight * self.total_norm
            combined += grad * (scale / (self._average_norm(name, norms[name]) + 1e-12))
        tensors, grads = [output], [combined.to(output.dtype)]
        if other is not None:
            tensors.append(other)
            grads.append(torch.ones_like(other))
        torch.autograd.backward(tensors, grads)
        return norms

