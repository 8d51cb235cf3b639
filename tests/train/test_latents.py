import math

import pytest
import torch

from codec.train import latents


def test_gaussian_rate_by_reverse_water_filling():
    variances = torch.tensor([4.0, 1.0])
    # Distortion 0.5 puts the water level at 0.25 in both directions:
    # 0.5 log2(4 / 0.25) + 0.5 log2(1 / 0.25) = 2 + 1 bits.
    assert latents.gaussian_rate_bits(variances, 0.5) == pytest.approx(3.0, abs=1e-6)
    # Distortion 2 leaves the weak direction uncoded: level 1, only 0.5 log2(4) = 1 bit.
    assert latents.gaussian_rate_bits(variances, 2.0) == pytest.approx(1.0, abs=1e-6)
    assert latents.gaussian_rate_bits(variances, 5.0) == 0.0


def test_gaussian_entropy_of_unit_entropy_directions_is_zero():
    one_bit_free = torch.full((3,), 1 / (2 * math.pi * math.e))
    assert latents.gaussian_entropy_bits(one_bit_free) == pytest.approx(0.0, abs=1e-9)
    assert latents.gaussian_entropy_bits(one_bit_free * 4) == pytest.approx(3.0)


def test_effective_dimension_and_pca():
    assert latents.dims_for(torch.tensor([5.0, 3.0, 1.0, 1.0]), 0.9) == 3
    assert latents.dims_for(torch.tensor([5.0, 3.0, 1.0, 1.0]), 0.99) == 4
    generator = torch.Generator().manual_seed(0)
    # Two directions with variances 9 and 1 inside a 4-D space.
    rows = torch.randn(20000, 2, generator=generator) * torch.tensor([3.0, 1.0])
    rows = torch.cat([rows, torch.zeros(20000, 2)], 1)
    rotation, _ = torch.linalg.qr(torch.randn(4, 4, generator=generator))
    spectrum = latents.pca_spectrum(rows @ rotation)
    assert spectrum[:2].tolist() == pytest.approx([9.0, 1.0], rel=0.05)
    assert spectrum[2:].abs().max() < 1e-6


def test_ridge_probe_scores_linear_and_unrelated_targets():
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(2000, 8, generator=generator)
    y = x @ torch.randn(8, 5, generator=generator) + 3.0
    assert latents.ridge_r2(x[:1000], y[:1000], x[1000:], y[1000:]) > 0.99
    unrelated = torch.randn(2000, 5, generator=generator)
    r2 = latents.ridge_r2(x[:1000], unrelated[:1000], x[1000:], unrelated[1000:])
    assert abs(r2) < 0.05


def test_latent_diagnostics_leave_the_model_untouched(tiny_model):
    tiny_model.train()
    before = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    audio = torch.randn(4, 1, 4000) * 0.1
    result = latents.latent_diagnostics(tiny_model, audio)
    assert tiny_model.training
    assert all(torch.equal(before[k], v) for k, v in tiny_model.state_dict().items())
    dim, n_q = tiny_model.config.latent_dim, tiny_model.config.n_q
    assert len(result["variance"]) == len(result["explained"]) == dim
    assert result["explained"][-1] == pytest.approx(1.0)
    assert len(result["codebook_entropy_bits"]) == n_q
    scalars = result["scalars"]
    assert 1 <= scalars["latent/dims_90"] <= scalars["latent/dims_99"] <= dim
    assert scalars["latent/nominal_bits"] == n_q * 8
    assert 0 <= scalars["latent/code_entropy_bits"] <= n_q * 8
    assert all(isinstance(v, (int, float)) for v in scalars.values())
    with pytest.raises(ValueError, match="B >= 2"):
        latents.latent_diagnostics(tiny_model, audio[:1])


def test_figures_have_the_documented_names(tiny_model):
    result = latents.latent_diagnostics(tiny_model, torch.randn(2, 1, 2000) * 0.1)
    figures = latents.diagnostic_figures([{"step": s, **result} for s in (10, 0)])
    assert tuple(figures) == latents.FIGURES
    for figure in figures.values():
        assert figure.axes and figure.axes[0].get_title()  # drawn, and titled
