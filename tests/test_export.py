import json
import pickle

import pytest
import torch
from safetensors import safe_open
from torch.nn.utils import parametrize

from codec import __version__
from codec.checkpoint import save_checkpoint
from codec.cli import main as cli_main
from codec.config import DEFAULT_TARGET_LUFS, Config, DataConfig
from codec.errors import CodecError
from codec.export import ExportError, export_model
from codec.network.model import compute_model_id
from codec.pretrained import is_exported, load, read_metadata


@pytest.fixture
def trained(tiny_model):
    """The tiny model after one training pass (k-means codebooks, EMA statistics)."""
    tiny_model.train()
    tiny_model(torch.randn(4, 1, 4000))
    return tiny_model.eval()


def _keys(path) -> list[str]:
    with safe_open(str(path), framework="pt") as handle:
        return list(handle.keys())


def test_export_folds_weight_norm_and_drops_training_state(trained, tmp_path):
    assert any(parametrize.is_parametrized(m) for m in trained.modules())
    path = export_model(trained, tmp_path / "m.safetensors")
    keys = _keys(path)
    assert not any("parametrizations" in k for k in keys)
    assert not any(k.endswith(("embed_sum", "cluster_size", "initialized")) for k in keys)
    assert sum(k.endswith(".embed") for k in keys) == trained.config.n_q
    loaded = load(path).network
    assert not any(parametrize.is_parametrized(m) for m in loaded.modules())
    assert not loaded.training


def test_float32_export_codes_and_audio_match_the_original(trained, tmp_path):
    loaded = load(export_model(trained, tmp_path / "m.safetensors"))
    network = loaded.network
    audio = torch.randn(2, 1, 1111)
    codes = trained.encode(audio)
    assert torch.equal(network.encode(audio), codes)
    assert torch.allclose(network.decode(codes, 1111), trained.decode(codes, 1111), atol=1e-5)
    assert loaded.model_id == compute_model_id(trained)


def test_half_export_is_smaller_keeps_the_model_id_and_decodes(trained, tmp_path):
    full = export_model(trained, tmp_path / "full.safetensors")
    half = export_model(trained, tmp_path / "half.safetensors", half=True)
    assert half.stat().st_size < full.stat().st_size
    with safe_open(str(half), framework="pt") as handle:
        dtypes = {k: handle.get_tensor(k).dtype for k in handle.keys()}
    assert all(d == torch.float32 for k, d in dtypes.items() if k.endswith(".embed"))
    assert any(d == torch.float16 for d in dtypes.values())
    loaded = load(half)
    assert all(p.dtype == torch.float32 for p in loaded.network.parameters())
    assert loaded.model_id == compute_model_id(trained)
    codes = trained.encode(torch.randn(1, 1, 2000))
    decoded = loaded.network.decode(codes)
    assert torch.isfinite(decoded).all()
    # float16 weights round at about 1e-3 relative: close to the float32 decode, not equal.
    reference = trained.decode(codes)
    assert (decoded - reference).abs().max() < 0.05 * reference.abs().max() + 1e-3


def test_exported_file_loads_without_pickle(trained, tmp_path, monkeypatch):
    path = export_model(trained, tmp_path / "m.safetensors")

    def refuse(*args, **kwargs):
        raise AssertionError("pickle used")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(torch, "load", refuse)
    assert load(path).model_id == compute_model_id(trained)
    # safetensors layout: 8-byte little-endian header length, then a JSON header.
    raw = path.read_bytes()
    header = json.loads(raw[8:8 + int.from_bytes(raw[:8], "little")])
    assert header["__metadata__"]["format"] == "codec-export"


def test_load_accepts_an_exported_file(trained, tmp_path):
    path = export_model(trained, tmp_path / "m.safetensors", target_lufs=-18.0)
    assert is_exported(path)
    model = load(path)
    assert model.model_id == compute_model_id(trained)
    assert model.target_lufs == -18.0
    audio = torch.randn(1, 1, 800)
    assert torch.equal(model.network.encode(audio), trained.encode(audio))


def test_not_an_export_is_a_clear_error(tmp_path):
    bogus = tmp_path / "x.safetensors"
    bogus.write_bytes(b"not a model")
    with pytest.raises(CodecError, match="cannot be read"):
        load(bogus)
    with pytest.raises(CodecError, match="no such file"):
        load(tmp_path / "missing.safetensors")
    assert not is_exported(bogus)


def test_damaged_codebooks_are_refused(trained, tmp_path):
    from safetensors.torch import load_file, save_file

    path = export_model(trained, tmp_path / "m.safetensors")
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata()
    tensors = load_file(path)
    tensors["quantizer.layers.0.embed"][0, 0] += 1.0
    save_file(tensors, path, metadata=metadata)
    with pytest.raises(ExportError, match="do not match the model id"):
        load(path)


def test_export_command_on_a_run_directory(trained, tmp_path, capsys):
    run = tmp_path / "run"
    config = Config(model=trained.config, data=DataConfig(target_lufs=-20.0))
    save_checkpoint(run / "best", model_state=trained.state_dict(), config=config, step=3,
                    model_id=compute_model_id(trained))
    out = tmp_path / "out" / "model.safetensors"
    assert cli_main(["export", str(run), "-o", str(out), "--half"]) == 0
    printed = capsys.readouterr().out
    assert str(out) in printed and "KiB" in printed
    model = load(out)
    assert model.model_id == compute_model_id(trained)
    assert model.target_lufs == -20.0 and model.source.kind == "export"
    header = read_metadata(out)
    assert json.loads(header["provenance"])["versions"]["codec"] == __version__
    assert json.loads(header["training"])["step"] == 3


def test_training_loudness_travels_with_the_export(trained, tmp_path):
    # Trained on audio kept at its recorded level:
    path = export_model(trained, tmp_path / "a.safetensors", target_lufs=None)
    assert load(path).target_lufs is None
    # Unknown: left out of the file, and coding takes the default.
    path = export_model(trained, tmp_path / "b.safetensors")
    assert "target_lufs" not in read_metadata(path)
    assert load(path).target_lufs == DEFAULT_TARGET_LUFS
