import json
from pathlib import Path

import pytest

from codec.errors import CodecError
from data_prep import domain


def _manifests(root: Path, splits: dict[str, list[str]]) -> Path:
    """Manifests whose lines name only a path and a group (all domain.select reads)."""
    for name, groups in splits.items():
        lines = [{"path": f"/audio/{group}/{i}.wav", "group": group}
                 for group in groups for i in range(3)]
        (root / f"{name}.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    return root


def test_a_domain_in_every_split_keeps_the_corpus_splits(tmp_path):
    source = _manifests(tmp_path, {"train": ["music/a", "speech/x"], "valid": ["music/b"],
                                   "test": ["music/c", "speech/y"]})
    splits, kept = domain.select(source, "music")
    assert kept == "corpus"
    assert {name: sorted({x["group"] for x in lines}) for name, lines in splits.items()} == {
        "train": ["music/a"], "valid": ["music/b"], "test": ["music/c"]}


def test_one_voice_has_its_files_split_among_themselves(tmp_path):
    source = _manifests(tmp_path, {"train": ["speech/x", "speech/xy"], "valid": [],
                                   "test": []})
    splits, kept = domain.select(source, "speech/x")
    assert kept == "files"
    assert [len(splits[name]) for name in ("train", "valid", "test")] == [1, 1, 1]
    assert all(x["group"] == "speech/x" for lines in splits.values() for x in lines)


def test_too_few_files_is_an_error(tmp_path):
    source = _manifests(tmp_path, {"train": ["music/a"], "valid": [], "test": []})
    with pytest.raises(CodecError, match="'music/b': 0 file"):
        domain.select(source, "music/b")
