import math

import matplotlib.pyplot as plt
import pytest
import torch

from codec import Codec, model_config
from codec.checkpoint import save_checkpoint
from codec.config import Config
from codec.model import compute_model_id
from eval import diagnostics
from eval.results import read_json


def test_gaussian_rate_by_reverse_water_filling():
    variances = torch.tensor([4.0, 1.0])
    # Distortion 0.5 puts the water level at 0.25 in both directions:
    # 0.5 log2(4 / 0.25) + 0.5 log2(1 / 0.25) = 2 + 1 bits.
    assert diagnostics.gaussian_rate_bits(variances, 0.5) == pytest.approx(3.0, abs=1e-6)
    # Distortion 2 leaves the weak direction uncoded: level 1, only 0.5 log2(4) = 1 bit.
    assert diagnostics.gaussian_rate_bits(variances, 2.0) == pytest.approx(1.0, abs=1e-6)
    assert diagnostics.gaussian_rate_bits(variances, 5.0) == 0.0


def test_gaussian_entropy_of_unit_entropy_directions_is_zero():
    one_bit_free = torch.full((3,), 1 / (2 * math.pi * math.e))
    assert diagnostics.gaussian_entropy_bits(one_bit_free) == pytest.approx(0.0, abs=1e-9)
    assert diagnostics.gaussian_entropy_bits(one_bit_free * 4) == pytest.approx(3.0)


def test_effective_dimension_and_pca():
    assert diagnostics.dims_for(torch.tensor([5.0, 3.0, 1.0, 1.0]), 0.9) == 3
    assert diagnostics.dims_for(torch.tensor([5.0, 3.0, 1.0, 1.0]), 0.99) == 4
    generator = torch.Generator().manual_seed(0)
    # Two directions with variances 9 and 1 inside a 4-D space.
    rows = torch.randn(20000, 2, generator=generator) * torch.tensor([3.0, 1.0])
    rows = torch.cat([rows, torch.zeros(20000, 2)], 1)
    rotation, _ = torch.linalg.qr(torch.randn(4, 4, generator=generator))
    spectrum = diagnostics.pca_spectrum(rows @ rotation)
    assert spectrum[:2].tolist() == pytest.approx([9.0, 1.0], rel=0.05)
    assert spectrum[2:].abs().max() < 1e-6


def test_ridge_probe_scores_linear_and_unrelated_targets():
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(2000, 8, generator=generator)
    y = x @ torch.randn(8, 5, generator=generator) + 3.0
    assert diagnostics.ridge_r2(x[:1000], y[:1000], x[1000:], y[1000:]) > 0.99
    unrelated = torch.randn(2000, 5, generator=generator)
    r2 = diagnostics.ridge_r2(x[:1000], unrelated[:1000], x[1000:], unrelated[1000:])
    assert abs(r2) < 0.05


def test_latent_diagnostics_leave_the_model_untouched(tiny_model):
    tiny_model.train()
    before = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    audio = torch.randn(4, 1, 4000) * 0.1
    result = diagnostics.latent_diagnostics(tiny_model, audio)
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
        diagnostics.latent_diagnostics(tiny_model, audio[:1])


def test_figures_have_the_documented_names(tiny_model):
    result = diagnostics.latent_diagnostics(tiny_model, torch.randn(2, 1, 2000) * 0.1)
    figures = diagnostics.diagnostic_figures([{"step": s, **result} for s in (10, 0)])
    assert tuple(figures) == diagnostics.FIGURES
    for figure in figures.values():
        plt.close(figure)


def test_command_over_a_runs_checkpoints(eval_set, tmp_path, capsys):
    config = Config(model=model_config("tiny", strides=(2, 4, 5), widths=(8, 16, 32, 64)))
    run = tmp_path / "run"
    for step in (0, 20):
        torch.manual_seed(step)
        model = Codec(config.model)
        save_checkpoint(run / "checkpoints" / f"step-{step:06d}", step=step, config=config,
                        model_state=model.state_dict(), model_id=compute_model_id(model))
    out = tmp_path / "diag"
    assert diagnostics.main([str(run), "--data", str(eval_set), "-o", str(out),
                             "--seconds", "0.5"]) == 0
    saved = read_json(out / "diagnostics.json")
    assert [h["step"] for h in saved["history"]] == [0, 20]
    assert saved["crops"] == 3
    for name in diagnostics.FIGURES:
        assert (out / (name.replace("/", "_") + ".png")).is_file()
    assert (out / "index.html").read_text().count("data:image/png;base64,") == 7
    assert "step" in capsys.readouterr().out


def test_command_without_checkpoints_is_a_one_line_error(tmp_path, capsys):
    assert diagnostics.main([str(tmp_path)]) == 2
    assert "no checkpoints" in capsys.readouterr().err
