import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from codec import Codec, model_config
from codec.checkpoint import save_checkpoint
from codec.cli import main as cli_main
from codec.config import Config, DataConfig
from codec.errors import CodecError
from codec.network.model import compute_model_id
from codec.network.spectral import SpectralEncoder
from codec.onnx_export import ConvAnalysis, ConvSynthesis, export_onnx

README = Path(__file__).parents[1] / "README.md"
SMALL_SPECTRAL = dict(sample_rate=16000, strides=(80,), widths=(32, 32), n_fft=320,
                      dilations=(1, 3), latent_dim=16, n_q=4, codebook_size=64)
CONFIGS = {"time-domain": model_config("tiny"),
           "spectral": model_config("spectral", **SMALL_SPECTRAL),
           "causal spectral": model_config("live", **{**SMALL_SPECTRAL,
                                                      "synthesis_overlap": 20}),
           # Frame levels: the first codebook codes them, and the graphs measure and
           # apply them themselves.
           "levelled": model_config("live", **{**SMALL_SPECTRAL, "synthesis_overlap": 20,
                                               "level_bands": 12})}


def _model(name: str) -> Codec:
    torch.manual_seed(0)
    model = Codec(CONFIGS[name])
    if CONFIGS[name].level_bands:  # level codewords placed on quiet and loud frames
        with torch.no_grad():
            model.train()(torch.tensor([0.02, 0.05, 0.1, 0.3])[:, None, None]
                          * torch.randn(4, 1, 16000))
    return model.eval()


@pytest.mark.parametrize("name", ["spectral", "causal spectral"])
def test_conv_analysis_computes_the_encoders_features(name):
    encoder = _model(name).encoder
    audio = torch.randn(2, 1, 80 * 9)
    expected = SpectralEncoder.features(encoder.analysis(audio))
    assert torch.allclose(ConvAnalysis(encoder.analysis)(audio), expected, atol=1e-5)


@pytest.mark.parametrize("name", ["spectral", "causal spectral"])
def test_conv_synthesis_is_the_decoders_inverse_transform(name):
    decoder = _model(name).decoder
    parts = torch.randn(2, 1, 2, decoder.bins, 7)
    expected = decoder.synthesis(parts)
    got = ConvSynthesis(decoder.synthesis, channels=1)(parts.flatten(1, 3))
    assert got.shape == expected.shape == (2, 1, 7 * 80)
    assert torch.allclose(got, expected, atol=1e-5)


@pytest.fixture(scope="module", params=list(CONFIGS))
def exported(request, tmp_path_factory):
    """A model, and onnxruntime sessions of its exported encoder and decoder."""
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    model = _model(request.param)
    paths = export_onnx(model, tmp_path_factory.mktemp("onnx"), target_lufs=-23.0)
    sessions = [ort.InferenceSession(str(paths[name]), providers=["CPUExecutionProvider"])
                for name in ("encoder.onnx", "decoder.onnx")]
    return model, *sessions, paths


@pytest.mark.parametrize("batch, length", [(1, 4000), (3, 1237)])
def test_graphs_code_and_decode_as_the_model_does(exported, batch, length):
    model, encoder, decoder, _ = exported
    audio = 0.1 * torch.randn(batch, model.config.channels, length)
    expected = model.encode(audio)
    codes = encoder.run(None, {"audio": audio.numpy()})[0]
    assert codes.dtype == np.int64 and codes.shape == tuple(expected.shape)
    assert all(len(np.unique(codes[:, q])) > 1 for q in range(codes.shape[1]))  # no trivial case
    np.testing.assert_array_equal(codes, expected.numpy())
    decoded = decoder.run(None, {"codes": codes})[0]
    assert decoded.shape == (batch, model.config.channels, codes.shape[-1] * model.hop_length)
    assert np.abs(decoded - model.decode(expected).numpy()).max() < 1e-4


def test_the_decoder_takes_fewer_codebooks(exported):
    model, encoder, decoder, _ = exported
    audio = 0.1 * torch.randn(2, model.config.channels, 3000)
    codes = encoder.run(None, {"audio": audio.numpy()})[0]
    for k in (1, 2):
        # The first k codes are what coding with k codebooks gives.
        np.testing.assert_array_equal(codes[:, :k], model.encode(audio, n_q=k).numpy())
        decoded = decoder.run(None, {"codes": codes[:, :k]})[0]
        expected = model.decode(torch.from_numpy(codes[:, :k])).numpy()
        assert np.abs(decoded - expected).max() < 1e-4


def test_the_description_says_how_to_feed_the_graphs(exported):
    model, *_, paths = exported
    info = json.loads(paths["codec.json"].read_text())
    assert info["sample_rate"] == model.sample_rate and info["hop"] == model.hop_length
    assert info["n_q"] == model.config.n_q
    assert info["codebook_size"] == model.config.codebook_size
    assert info["model_id"] == compute_model_id(model) and info["target_lufs"] == -23.0
    assert any("loudness" in step for step in info["outside_the_graphs"])


def test_export_command_writes_the_graphs_and_refuses_to_overwrite(tmp_path, capsys):
    pytest.importorskip("onnx")
    model = _model("spectral")
    run = tmp_path / "run"
    config = Config(model=model.config, data=DataConfig(target_lufs=-20.0))
    save_checkpoint(run / "best", model_state=model.state_dict(), config=config, step=1,
                    model_id=compute_model_id(model))
    out = tmp_path / "onnx"
    assert cli_main(["export", str(run), "--onnx", str(out)]) == 0
    assert "encoder.onnx" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["codec.json", "decoder.onnx",
                                                     "encoder.onnx"]
    assert json.loads((out / "codec.json").read_text())["target_lufs"] == -20.0
    assert cli_main(["export", str(run), "--onnx", str(out)]) != 0
    assert "exists" in capsys.readouterr().err
    assert cli_main(["export", str(run), "--onnx", str(out), "-f"]) == 0
    assert cli_main(["export", str(run), "--onnx", str(out), "--half", "-f"]) != 0


def test_export_without_the_onnx_package_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(CodecError, match="pip install"):
        export_onnx(_model("time-domain"), tmp_path)


@pytest.mark.parametrize("overrides", [dict(level_codebooks=2), dict(level_overlap=80)])
def test_levels_the_graphs_cannot_carry_are_refused(tmp_path, overrides):
    model = Codec(model_config("live", widths=(32, 32), n_q=4, level_bands=8, **overrides))
    with pytest.raises(CodecError, match="stream-encode"):
        export_onnx(model, tmp_path / "onnx")
    assert not (tmp_path / "onnx").exists()


def test_the_readme_example_runs_verbatim(tmp_path, monkeypatch):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    section = README.read_text().split("### ONNX", 1)[1].split("\n## ", 1)[0]
    example = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)[0]
    export_onnx(_model("spectral"), tmp_path / "onnx")
    monkeypatch.chdir(tmp_path)
    names: dict = {}
    exec(compile(example, str(README), "exec"), names)
    assert names["codes"].shape == (1, 4, 200) and names["decoded"].shape == (1, 1, 16000)

