"""Windows of different lengths run together give what each gives alone."""
import pytest
import torch
from torch.nn import functional as F

from codec.coding.batched import Window, run_windows

REACH = 3  # two "same" 3-tap convs and a 3-tap average: 3 frames each side in all


def smear(batch: torch.Tensor) -> torch.Tensor:
    """``[B, 1, n]`` -> ``[B, 1, n]``: zero-padded 3-tap convs with a nonlinearity between,
    so that an output reads 3 frames either side and a window's ends show in its output."""
    kernel = torch.tensor([[[0.3, 0.5, 0.2]]], dtype=batch.dtype)
    out = torch.tanh(F.conv1d(batch, kernel, padding=1) + 0.1)
    out = F.conv1d(out, kernel.flip(-1), padding=1)
    return F.avg_pool1d(out, 3, stride=1, padding=1, count_include_pad=True)


@pytest.mark.parametrize("batch_size", [1, 3, 16])
def test_each_window_gets_its_own_output(batch_size):
    generator = torch.Generator().manual_seed(0)
    lengths = [1, 4, 6, 7, 7, 12, 30, 31, 50]  # at most 2 * REACH, and longer
    windows = [Window(torch.randn(1, n, generator=generator, dtype=torch.float64),
                      (n // 4, n - n // 5)) for n in lengths]
    calls = []

    def run(batch: torch.Tensor) -> torch.Tensor:
        calls.append(batch.shape[0])
        return smear(batch)

    got = run_windows(run, windows, step_in=1, step_out=1, reach=REACH, batch_size=batch_size)
    for window, output in zip(windows, got, strict=True):
        first, last = window.keep
        alone = smear(window.data[None])[0][..., first:last]
        assert torch.equal(output, alone)  # in float64, the same sums: no padding read
    assert max(calls) <= batch_size
    if batch_size == 16:
        assert len(calls) < len(windows)  # lengths were shared, not run one by one


def test_steps_in_and_out_keep_frames_aligned():
    """Encoder-like: ``step_in`` samples a frame in, one value a frame out."""
    def frames_mean(batch: torch.Tensor) -> torch.Tensor:
        return smear(F.avg_pool1d(batch, 4))

    generator = torch.Generator().manual_seed(1)
    windows = [Window(torch.randn(1, 4 * n, generator=generator, dtype=torch.float64), (0, n))
               for n in (5, 9, 20)]
    got = run_windows(frames_mean, windows, step_in=4, step_out=1, reach=REACH, batch_size=4)
    for window, output in zip(windows, got, strict=True):
        assert torch.equal(output, frames_mean(window.data[None])[0])


def test_a_reach_too_short_would_show():
    """The check above can fail: with a reach shorter than the network's, padding leaks
    into the kept frames."""
    generator = torch.Generator().manual_seed(2)
    windows = [Window(torch.randn(1, n, generator=generator, dtype=torch.float64), (0, n))
               for n in (20, 40)]
    got = run_windows(smear, windows, step_in=1, step_out=1, reach=1, batch_size=2)
    assert not torch.equal(got[0], smear(windows[0].data[None])[0])
