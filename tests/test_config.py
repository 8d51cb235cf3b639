import pytest

from codec.config import Config, ConfigError, load_config, model_config


def test_preset_then_yaml_then_overrides(tmp_path):
    base = tmp_path / "base.yaml"
    base.write_text("model:\n  preset: small\ntrain:\n  lr: 0.001\n")
    child = tmp_path / "child.yaml"
    child.write_text("base: base.yaml\ntrain:\n  steps: 7\n")
    config = load_config([child], ["model.n_q=4", "train.disc=[msstft]"])
    assert isinstance(config, Config)
    assert config.model.widths == model_config("small").widths
    assert config.model.n_q == 4
    assert config.train.lr == 0.001 and config.train.steps == 7
    assert config.train.disc == ("msstft",)


def test_unknown_keys_are_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("loss:\n  mrsftf: 1.0\n")
    with pytest.raises(ConfigError, match="mrsftf"):
        load_config([bad])
    with pytest.raises(ConfigError, match="lrr"):
        load_config([], ["train.lrr=1"])
    with pytest.raises(ConfigError, match="unknown model preset"):
        load_config([], ["model.preset=huge"])


def test_inheritance_loop_is_an_error(tmp_path):
    (tmp_path / "a.yaml").write_text("base: b.yaml\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\n")
    with pytest.raises(ConfigError, match="loop"):
        load_config([tmp_path / "a.yaml"])
