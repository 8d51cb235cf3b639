import csv
import json
import math

from eval.results import read_json, text_table, write_csv, write_json


def test_json_is_strict_and_keeps_infinities(tmp_path):
    value = {"snr": math.inf, "low": -math.inf, "pesq": math.nan, "list": (1.5, math.inf)}
    write_json(tmp_path / "x.json", value)
    text = (tmp_path / "x.json").read_text()
    json.loads(text, parse_constant=lambda name: (_ for _ in ()).throw(ValueError(name)))
    back = read_json(tmp_path / "x.json")
    assert back["snr"] == math.inf and back["low"] == -math.inf and math.isnan(back["pesq"])
    assert back["list"] == [1.5, math.inf]


def test_csv_columns_are_the_union_in_first_seen_order(tmp_path):
    write_csv(tmp_path / "x.csv", [{"file": "a", "snr": math.inf}, {"file": "b", "pesq": 2.5}])
    with open(tmp_path / "x.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["file", "snr", "pesq"]
    assert rows[0]["snr"] == "inf" and rows[0]["pesq"] == "" and rows[1]["pesq"] == "2.5"


def test_text_table_aligns_columns():
    lines = text_table(["system", "SNR"], [["codec", 12.3456], ["Opus 6 kbps", math.inf],
                                           ["none", None]]).splitlines()
    assert lines[2] == "codec        12.346"
    assert lines[3] == "Opus 6 kbps     inf"
    assert lines[4] == "none              -"
    assert len({len(line) for line in lines}) == 1
