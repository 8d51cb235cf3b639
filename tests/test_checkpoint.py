import json
from pathlib import Path

import pytest
import torch

from codec.checkpoint import (
    check_model_config,
    latest_checkpoint,
    list_checkpoints,
    pack_state,
    prune_checkpoints,
    read_checkpoint,
    save_checkpoint,
    step_dir_name,
    unpack_state,
)
from codec.config import Config, model_config
from codec.errors import CodecError
from codec.network.model import Codec, compute_model_id

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


def test_a_full_disk_is_one_error_and_leaves_no_partial_folder(tmp_path, monkeypatch):
    from codec import checkpoint
    from codec.checkpoint import CheckpointError

    config = _config()
    model = _trained_model(config)

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint, "save_file", full)
    with pytest.raises(CheckpointError, match="cannot write \\(No space left on device\\)"):
        _save(tmp_path, model, config, step=3)
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == []
