import pytest
import torch
from test_checkpoint import _config, _save, _trained_model

from codec.checkpoint import read_checkpoint, save_checkpoint
from codec.errors import CodecError
from codec.export import export_model
from codec.network.model import compute_model_id
from codec.pretrained import load


def test_load_from_run_checkpoint_and_file(tmp_path):
    config = _config()
    model = _trained_model(config)
    directory = _save(tmp_path, model, config, 10, metrics={"valid/snr": 3.0},
                      train_state={"step": 10})
    audio = torch.randn(1, 1, 800)
    model.eval()
    expected = model.decode(model.encode(audio), 800)
    for path in (tmp_path, directory, directory / "model.safetensors"):
        loaded = load(path)
        assert not loaded.network.training
        assert loaded.model_id == compute_model_id(model)
        assert loaded.source.kind == ("run" if path == tmp_path else "checkpoint")
        network = loaded.network
        assert torch.allclose(network.decode(network.encode(audio), 800), expected)
    checkpoint = read_checkpoint(directory)
    assert checkpoint.step == 10 and checkpoint.train_state == {"step": 10}
    assert checkpoint.meta["metrics"] == {"valid/snr": 3.0}


def test_load_carries_training_loudness_and_reads_exports(tmp_path):
    config = _config()
    config.data.target_lufs = -20.0
    model = _trained_model(config)
    directory = _save(tmp_path, model, config, 3)
    assert load(directory / "model.safetensors").target_lufs == -20.0
    loaded = load(tmp_path)
    export_model(loaded.network, tmp_path / "exported.safetensors",
                 target_lufs=loaded.target_lufs)
    exported = load(tmp_path / "exported.safetensors")
    assert exported.model_id == compute_model_id(model)
    assert exported.target_lufs == -20.0 and exported.source.kind == "export"


def test_load_prefers_best(tmp_path):
    config = _config()
    old, best = _trained_model(config), _trained_model(config)
    _save(tmp_path, old, config, 20)
    save_checkpoint(tmp_path / "best", model_state=best.state_dict(), config=config, step=10,
                    model_id=compute_model_id(best))
    assert load(tmp_path).model_id == compute_model_id(best)


def test_load_rejects_other_paths(tmp_path):
    with pytest.raises(CodecError, match="no such file"):
        load(tmp_path / "missing")
    with pytest.raises(CodecError, match="not a model"):
        load(tmp_path)
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(CodecError, match="not a model file"):
        load(tmp_path / "notes.txt")


def test_a_checkpoint_from_before_the_coding_section_keeps_its_coding(tmp_path):
    """Old model files held the coding settings in their model config; they load with
    them, and an export made from them carries them in a section of their own."""
    from dataclasses import replace

    from test_golden import written_before_coding_config

    from codec.config import CodingConfig

    coding = CodingConfig(postfilter=1.3, band_levels=6)
    config = replace(_config(), coding=coding)
    model = _trained_model(config)
    best = save_checkpoint(tmp_path / "run" / "best", model_state=model.state_dict(),
                           config=config, step=1, model_id=compute_model_id(model))
    written_before_coding_config(best)
    loaded = load(tmp_path / "run")
    assert loaded.coding == coding and loaded.model_id == compute_model_id(model)
    export_model(loaded.network, tmp_path / "m.safetensors", coding=loaded.coding)
    assert load(tmp_path / "m.safetensors").coding == coding
    assert loaded.with_postfilter(1.0).coding.postfilter == 1.0
    assert loaded.coding.postfilter == 1.3  # a new value; the loaded model is as it was
    with pytest.raises(CodecError, match="causal|\\[1, 4\\]"):
        loaded.with_postfilter(9.0)


def test_an_export_whose_header_lacks_its_model_config_is_refused(tmp_path):
    import json
    import struct

    path = export_model(_trained_model(_config()), tmp_path / "model.safetensors")
    data = path.read_bytes()
    (size,) = struct.unpack_from("<Q", data)
    header = json.loads(data[8:8 + size])
    del header["__metadata__"]["model_config"]
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + data[8 + size:])
    with pytest.raises(CodecError, match="no model_config"):
        load(path)
