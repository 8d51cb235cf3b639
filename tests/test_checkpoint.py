import json
from pathlib import Path

import pytest
import torch

from codec.checkpoint import (
    check_model_config,
    latest_checkpoint,
    list_checkpoints,
    load_model,
    pack_state,
    prune_checkpoints,
    read_checkpoint,
    save_checkpoint,
    step_dir_name,
    unpack_state,
)
from codec.config import Config, model_config
from codec.errors import CodecError
from codec.model import Codec, compute_model_id

TINY = dict(strides=(2, 4, 5), widths=(8, 16, 32, 64))


def _config(**model_overrides) -> Config:
    return Config(model=model_config("tiny", **{**TINY, **model_overrides}))


def _trained_model(config: Config) -> Codec:
    model = Codec(config.model)
    model.train()
    model(torch.randn(2, 1, 2000))  # k-means init changes the codebook buffers
    return model


def _save(run: Path, model: Codec, config: Config, step: int, **kw) -> Path:
    return save_checkpoint(run / "checkpoints" / step_dir_name(step),
                           model_state=model.state_dict(), config=config, step=step,
                           model_id=compute_model_id(model), **kw)


def test_pack_state_round_trips_optimizer_state():
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters(), betas=(0.8, 0.99))
    model(torch.randn(4, 3)).sum().backward()
    optimizer.step()
    tree, tensors = pack_state({"opt": optimizer.state_dict(), "rng": torch.get_rng_state()})
    json.dumps(tree)  # everything left is plain JSON
    back = unpack_state(json.loads(json.dumps(tree)), tensors)
    assert back["opt"]["param_groups"][0]["betas"] == (0.8, 0.99)
    assert set(back["opt"]["state"]) == {0, 1}
    assert torch.equal(back["opt"]["state"][0]["exp_avg"], optimizer.state[model.weight]["exp_avg"])
    assert torch.equal(back["rng"], torch.get_rng_state())


def test_save_then_load_model_from_run_checkpoint_and_file(tmp_path):
    config = _config()
    model = _trained_model(config)
    directory = _save(tmp_path, model, config, 10, metrics={"valid/snr": 3.0},
                      train_state={"step": 10})
    audio = torch.randn(1, 1, 800)
    model.eval()
    expected = model.decode(model.encode(audio), 800)
    for path in (tmp_path, directory, directory / "model.safetensors"):
        loaded = load_model(path)
        assert not loaded.training
        assert loaded.model_id == compute_model_id(model)
        assert torch.allclose(loaded.decode(loaded.encode(audio), 800), expected)
    checkpoint = read_checkpoint(directory)
    assert checkpoint.step == 10 and checkpoint.train_state == {"step": 10}
    assert checkpoint.meta["metrics"] == {"valid/snr": 3.0}


def test_load_model_carries_training_loudness_and_reads_exports(tmp_path):
    config = _config()
    config.data.target_lufs = -20.0
    model = _trained_model(config)
    directory = _save(tmp_path, model, config, 3)
    assert load_model(directory / "model.safetensors").target_lufs == -20.0
    export = pytest.importorskip("codec.export")
    export.export_model(load_model(tmp_path), tmp_path / "exported.safetensors")
    exported = load_model(tmp_path / "exported.safetensors")
    assert exported.model_id == compute_model_id(model)


def test_load_model_prefers_best(tmp_path):
    config = _config()
    old, best = _trained_model(config), _trained_model(config)
    _save(tmp_path, old, config, 20)
    save_checkpoint(tmp_path / "best", model_state=best.state_dict(), config=config, step=10,
                    model_id=compute_model_id(best))
    assert load_model(tmp_path).model_id == compute_model_id(best)


def test_load_model_rejects_other_paths(tmp_path):
    with pytest.raises(CodecError, match="no such file"):
        load_model(tmp_path / "missing")
    with pytest.raises(CodecError, match="not a model"):
        load_model(tmp_path)
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(CodecError, match="not a model file"):
        load_model(tmp_path / "notes.txt")


def test_truncated_newest_checkpoint_falls_back_with_warning(tmp_path):
    config = _config()
    model = _trained_model(config)
    _save(tmp_path, model, config, 1, train_state={"step": 1})
    newest = _save(tmp_path, model, config, 2, train_state={"step": 2})
    data = (newest / "model.safetensors").read_bytes()
    (newest / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.warns(UserWarning, match="step-000002.*truncated"):
        checkpoint = latest_checkpoint(tmp_path)
    assert checkpoint.step == 1


def test_interrupted_write_leaves_no_checkpoint(tmp_path):
    # A temporary directory left by a crash is not mistaken for a checkpoint.
    (tmp_path / "checkpoints" / ".tmp-step-000003-1").mkdir(parents=True)
    assert list_checkpoints(tmp_path) == []
    assert latest_checkpoint(tmp_path) is None


def test_prune_keeps_newest(tmp_path):
    config = _config()
    model = _trained_model(config)
    for step in (1, 2, 3, 4):
        _save(tmp_path, model, config, step)
    prune_checkpoints(tmp_path, keep_last=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step-000003", "step-000004"]


def test_config_mismatch_names_the_fields(tmp_path):
    config = _config()
    directory = _save(tmp_path, _trained_model(config), config, 1)
    other = _config(n_q=2, codebook_size=128)
    with pytest.raises(CodecError, match=r"n_q: 4 != 2.*codebook_size: 256 != 128|"
                                         r"codebook_size: 256 != 128.*n_q: 4 != 2"):
        check_model_config(other.model, read_checkpoint(directory))
    check_model_config(config.model, read_checkpoint(directory))  # same config: no error
