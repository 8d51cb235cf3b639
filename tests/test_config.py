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


def test_coding_settings_under_model_move_to_their_own_section(tmp_path):
    """A config written before coding had a section of its own still means what it meant,
    and says where its keys live now."""
    old = tmp_path / "old.yaml"
    old.write_text("model:\n  preset: tiny\n  postfilter: 1.4\n  band_levels: 12\n")
    with pytest.warns(UserWarning, match="now live in the coding section") as caught:
        config = load_config([old], ["model.band_level_kbps=2.0"])
    said = " ".join(str(w.message) for w in caught)
    assert "(coding.postfilter, coding.band_levels)" in said and "coding.band_level_kbps" in said
    assert (config.coding.postfilter, config.coding.band_levels) == (1.4, 12)
    assert config.coding.band_level_kbps == 2.0
    assert not hasattr(config.model, "postfilter")


def test_coding_settings_are_frozen():
    config = load_config([], ["coding.band_levels=8"])
    with pytest.raises(AttributeError):
        config.coding.band_levels = 4
