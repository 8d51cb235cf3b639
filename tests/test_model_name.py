"""A compressed file names its model without the machine's folders, and decoding finds
it again near the file or in the current folder."""
from pathlib import Path

from codec.model_name import find_model, is_machine_path, model_name


def test_names_keep_the_run_folder_and_drop_the_folders_above(tmp_path):
    assert model_name(tmp_path / "exp" / "x") == "x"
    assert model_name(tmp_path / "exp" / "x" / "best") == "x/best"
    assert model_name(tmp_path / "x" / "checkpoints" / "step-000100") == \
        "x/checkpoints/step-000100"
    assert model_name(tmp_path / "x" / "best" / "model.safetensors") == "x/best/model.safetensors"
    assert model_name(tmp_path / "models" / "m.safetensors") == "m.safetensors"
    for path in ("exp/x", str(tmp_path / "x" / "best")):
        assert not is_machine_path(model_name(path))
        assert str(tmp_path) not in model_name(path)


def test_machine_paths_are_recognised():
    assert is_machine_path("/home/user/exp/x") and is_machine_path("C:\\runs\\x")
    assert not is_machine_path("x/best") and not is_machine_path("m.safetensors")


def test_find_model_near_the_file_above_it_and_in_exp(tmp_path, monkeypatch):
    (tmp_path / "exp" / "x" / "best").mkdir(parents=True)
    (tmp_path / "codes" / "sub").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "codes")
    qca = tmp_path / "codes" / "sub" / "a.qca"
    assert find_model("x/best", qca) == tmp_path / "exp" / "x" / "best"
    assert find_model("y", qca) is None
    assert find_model(None, qca) is None
    assert find_model("../exp/x", qca) is None  # never climbs out


def test_old_files_with_a_path_still_find_their_model(tmp_path, monkeypatch):
    (tmp_path / "x").mkdir()
    monkeypatch.chdir(tmp_path)
    assert find_model(str(tmp_path / "x"), tmp_path / "a.qca") == tmp_path / "x"
    moved = "/nowhere/that/exists/x"
    assert find_model(moved, tmp_path / "a.qca") == Path(tmp_path / "x")
