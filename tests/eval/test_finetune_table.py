import json

import pytest

from codec.errors import CodecError
from eval import finetune_table


def _summary(folder, files, snr_by_kbps):
    folder.mkdir()
    systems = [{"kind": "codec", "nominal_kbps": kbps, "mean": {"snr": snr, "pesq": 1.5}}
               for kbps, snr in snr_by_kbps.items()]
    (folder / "summary.json").write_text(json.dumps({"files": files, "systems": systems}))
    return f"{folder.name}={folder}"


def test_models_are_grouped_by_bitrate(tmp_path, capsys):
    before = _summary(tmp_path / "before", ["a", "b"], {6.0: 1.0, 3.0: 0.5})
    tuned = _summary(tmp_path / "tuned", ["a", "b"], {6.0: 2.0, 3.0: 1.5})
    assert finetune_table.main([before, tuned]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["model", "kbps", "SNR", "dB", "PESQ"]
    assert [line.split()[:3] for line in lines[2:6]] == [
        ["before", "3", "0.500"], ["tuned", "3", "1.500"],
        ["before", "6", "1.000"], ["tuned", "6", "2.000"]]


def test_different_files_are_refused(tmp_path):
    before = _summary(tmp_path / "before", ["a", "b"], {6.0: 1.0})
    other = _summary(tmp_path / "other", ["a", "c"], {6.0: 1.0})
    with pytest.raises(CodecError, match="different files"):
        finetune_table.read_summaries([before, other])
