import json

import numpy as np
import pytest
import soundfile as sf

from codec.errors import CodecError
from eval.dataset import is_speech_label, list_items


def touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.zeros(800, "f4"), 8000)
    return path


@pytest.mark.parametrize("text,speech", [
    ("speech", True), ("speech/en-gb-f4", True), ("clean-speech", True), ("Speech_EN", True),
    ("music/drascula-track1", False), ("speechless", False), ("sounds", False), ("", False)])
def test_speech_labels(text, speech):
    assert is_speech_label(text) == speech


def test_folder_lists_audio_sorted_with_kind_from_the_folders(tmp_path):
    touch(tmp_path / "speech" / "spk1" / "b.wav")
    touch(tmp_path / "speech" / "spk1" / "a.flac")
    touch(tmp_path / "music" / "x.wav")
    (tmp_path / "notes.txt").write_text("not audio")
    items = list_items(tmp_path)
    assert [i.name for i in items] == ["music/x", "speech/spk1/a", "speech/spk1/b"]
    assert [i.speech for i in items] == [False, True, True]
    assert items[1].group == "speech"
    assert [i.name for i in list_items(tmp_path, max_files=1)] == ["music/x"]
    assert all(i.speech for i in list_items(tmp_path, kind="speech"))


def test_manifest_paths_groups_and_duplicate_names(tmp_path):
    touch(tmp_path / "audio" / "speech" / "one.wav")
    touch(tmp_path / "other" / "one.wav")
    manifest = tmp_path / "test.jsonl"
    lines = [{"path": "audio/speech/one.wav"},                      # relative: to the manifest
             {"path": str(tmp_path / "other" / "one.wav"), "group": "music/t1"},
             {"path": str(tmp_path / "other" / "one.wav"), "group": "music/t1"}]
    manifest.write_text("\n".join(json.dumps(line) for line in lines) + "\n\n")
    items = list_items(manifest)
    assert [i.speech for i in items] == [True, False, False]
    assert [i.name for i in items] == ["one", "music/t1/one", "music/t1/one~2"]
    assert items[0].path == tmp_path / "audio" / "speech" / "one.wav"


@pytest.mark.parametrize("content,message", [
    ("not json\n", "test.jsonl:1: not a JSON line"),
    ('{"duration": 1}\n', r"test.jsonl:1: missing field\(s\) \['path'\]"),
    ('{"path": "gone.wav"}\n', "gone.wav not found"),
    ("", "lists no files")])
def test_bad_manifests_name_the_line(tmp_path, content, message):
    (tmp_path / "test.jsonl").write_text(content)
    with pytest.raises(CodecError, match=message):
        list_items(tmp_path / "test.jsonl")


def test_bad_arguments(tmp_path):
    touch(tmp_path / "a.wav")
    with pytest.raises(CodecError, match="no such file"):
        list_items(tmp_path / "missing")
    with pytest.raises(CodecError, match="kind"):
        list_items(tmp_path, kind="noise")
    with pytest.raises(CodecError, match="at least 1"):
        list_items(tmp_path, max_files=0)
    (tmp_path / "x.txt").write_text("")
    with pytest.raises(CodecError, match="expected a .jsonl"):
        list_items(tmp_path / "x.txt")
