"""Processes and devices: where this process sits in a torchrun job, the device, the
autocast precision, and the seed of each step.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from codec.errors import CodecError


@dataclass
class Distributed:
    """Where this process sits in a torchrun job (rank 0 of 1 when run alone)."""
    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def mean(self, value: torch.Tensor) -> torch.Tensor:
        """The average of ``value`` over processes (non-finite anywhere stays non-finite)."""
        if self.world_size > 1:
            value = value.clone()
            dist.all_reduce(value)
            value /= self.world_size
        return value

    def any(self, flag: bool, device: torch.device) -> bool:
        """True on every process if ``flag`` is True on any, so all stop together."""
        if self.world_size == 1:
            return flag
        tensor = torch.tensor(float(flag), device=device)
        dist.all_reduce(tensor)
        return bool(tensor > 0)

    def max(self, value: float, device: torch.device) -> float:
        """The largest ``value`` over processes, the same on every process."""
        if self.world_size == 1:
            return value
        tensor = torch.tensor(value, dtype=torch.float64, device=device)
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
        return float(tensor)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise CodecError(f"train.device={name} but no CUDA device is available")
    return torch.device(name)


def init_distributed(device_name: str) -> tuple[Distributed, torch.device]:
    """Join the torchrun job described by the environment, if any (nccl on CUDA, else gloo)."""
    device = resolve_device(device_name)
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return Distributed(), device
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Distributed(dist.get_rank(), dist.get_world_size()), device


def cpu_has_amx() -> bool:
    """Whether this CPU multiplies bf16 matrices in hardware (Intel AMX tiles)."""
    probe = getattr(torch.cpu, "_is_amx_tile_supported", None)  # private in torch 2.x
    try:
        return bool(probe and probe())
    except RuntimeError:
        return False


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype, or None for float32. ``auto``: bf16 on CUDA and on a CPU with
    AMX, float32 elsewhere.

    On an AMX CPU the spectral recipes' convs take half the time in bf16 and a step about
    a sixth less (the losses stay in float32); without AMX, bf16 has not been measured to
    pay on a CPU."""
    if precision not in ("auto", "fp32", "bf16"):
        raise CodecError(f"train.precision must be auto, fp32 or bf16, got {precision!r}")
    if precision == "auto":
        bf16 = (torch.cuda.is_bf16_supported() if device.type == "cuda"
                else device.type == "cpu" and cpu_has_amx())
        return torch.bfloat16 if bf16 else None
    return torch.bfloat16 if precision == "bf16" else None


def seed_step(seed: int, step: int, rank: int, world_size: int) -> None:
    """Seed torch from (seed, step, rank): each step's draws are a function of where it is."""
    torch.manual_seed((seed + 1_000_003 * (step * world_size + rank + 1)) % (1 << 63))
