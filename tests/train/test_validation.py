"""Training's validation codes as ``codec encode`` does: its figure for a crop at a
bitrate is the one ``eval.evaluate`` gives for the same audio at that bitrate."""
from __future__ import annotations

import math

import pytest
import soundfile as sf
import torch

from codec import Codec, model_config
from codec.coding.bitrate import codebooks_for_kbps
from codec.config import CodingConfig, Config, DataConfig
from codec.pretrained import PretrainedModel
from codec.train.trainer import build_trainer
from codec.train.validation import FIGURES, coding_model, valid_metrics, valid_rates
from eval.dataset import EvalItem
from eval.evaluate import evaluate

RATE = 16000
CODING = CodingConfig(postfilter=1.5, band_levels=8, band_level_kbps=0.5)


def spectral_model() -> PretrainedModel:
    """A tiny spectral model (100 frames/s, 0.6 kbps a codebook) whose codebooks have
    seen audio, coding with band levels and the post-filter."""
    torch.manual_seed(0)
    network = Codec(model_config("spectral", sample_rate=RATE, strides=(160,), n_fft=320,
                                 widths=(32, 32), latent_dim=16, dilations=(1,), n_q=4,
                                 codebook_size=64))
    network.train()
    network(torch.randn(4, 1, RATE))  # k-means codebooks
    return PretrainedModel.from_network(network.eval(), target_lufs=-23.0, coding=CODING)


def crop() -> torch.Tensor:
    """One second ``[1, T]`` of a swelling vowel-like tone in a little noise."""
    t = torch.arange(RATE) / RATE
    voice = sum(torch.sin(2 * math.pi * 140 * k * t) / k for k in range(1, 12))
    envelope = 0.5 + 0.5 * torch.sin(2 * math.pi * 3 * t)
    return (0.05 * voice * envelope + 0.003 * torch.randn(RATE))[None].float()


def test_validation_at_a_bitrate_equals_eval_evaluate_on_the_same_audio(tmp_path):
    model, audio = spectral_model(), crop()
    rates = valid_rates(model, (2.4,))
    # 2.4 kbps is 3 codebooks (1.8 kbps) and the levels' 0.5 kbps, as codec encode sends.
    assert [(r.n_q, r.label) for r in rates] == [(3, "2.3kbps"), (4, "2.9kbps")]
    assert codebooks_for_kbps(model.network, model.coding, 2.4) == 3
    figures = valid_metrics(model, [audio], rates, "valid")

    sf.write(tmp_path / "crop.wav", audio.T.numpy(), RATE, subtype="FLOAT")
    summary = evaluate(model, [EvalItem(tmp_path / "crop.wav", "crop", speech=False)],
                       tmp_path / "eval", kbps=(2.4,), clips=0)
    codec_row = next(s for s in summary["systems"] if s["kind"] == "codec")
    assert codec_row["n_q"] == 3 and codec_row["nominal_kbps"] == pytest.approx(rates[0].kbps)
    for name in FIGURES:
        assert figures[f"valid/2.3kbps/{name}"] == pytest.approx(codec_row["mean"][name],
                                                                 rel=1e-6, abs=1e-9), name


def test_validation_codes_with_the_runs_coding_settings_and_loudness():
    config = Config(model=model_config("tiny"), coding=CodingConfig(band_levels=4),
                    data=DataConfig(target_lufs=-20.0))
    t = build_trainer(config)
    model = coding_model(t, t.codec)
    assert model.coding == config.coding and model.target_lufs == -20.0
    # The same model without the levels validates at other codebook counts per rate.
    rates = valid_rates(model, (1.5, 3.0, 6.0))
    plain = valid_rates(PretrainedModel.from_network(t.codec), (1.5, 3.0, 6.0))
    assert [r.n_q for r in rates] != [r.n_q for r in plain]
    assert all(r.kbps <= k + 1e-9 for r, k in zip(rates, (1.5, 3.0, 6.0), strict=False))
