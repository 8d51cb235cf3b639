"""Per-group spread, the wide per-file table and the flags the report shows."""
import pytest

from eval.breakdown import (
    collapsed_codebooks,
    group_of,
    group_summaries,
    outlier_files,
    spread,
    wide_rows,
)


def rows(values: dict[str, float], group: str = "") -> list[dict]:
    return [{"file": name, "group": group, "speech": False, "snr": v, "mel_distance": 1.0}
            for name, v in values.items()]


def test_spread_gives_n_mean_std_and_iqr():
    figures = spread([1.0, 2.0, 3.0, 4.0, float("nan")])
    assert figures["n"] == 4 and figures["mean"] == 2.5
    assert figures["std"] == pytest.approx(1.29099, rel=1e-4)
    assert figures["iqr"] == pytest.approx(1.5)


def test_groups_are_summarised_apart():
    coded = {"a": rows({"s1": 10.0, "s2": 12.0}, "speech") + rows({"m1": 2.0}, "music")}
    summaries = {(g["group"], g["metrics"]["snr"]["n"]): g["metrics"]["snr"]["mean"]
                 for g in group_summaries(coded, {"a": "codec 6 kbps"})}
    assert summaries == {("music", 1): 2.0, ("speech", 2): 11.0}
    assert group_of({"group": "", "speech": True}) == "speech"


def test_wide_table_has_a_row_per_file_and_a_column_per_system():
    coded = {"a": rows({"x": 1.0, "y": 2.0}), "b": rows({"x": 3.0, "y": 4.0})}
    headers, table = wide_rows(coded, {"a": "A", "b": "B"}, metrics=("snr",))
    assert headers == ["file", "group", "snr A", "snr B"]
    assert table == [["x", "other", 1.0, 3.0], ["y", "other", 2.0, 4.0]]


def test_collapsed_codebook_is_flagged_and_a_used_one_is_not():
    flags = collapsed_codebooks([{"label": "codec", "codebook_entropy_bits": [9.1, 0.002]}],
                                codebook_size=1024)
    assert len(flags) == 1 and "codebook 1" in flags[0]


def test_outlier_file_is_flagged_on_its_bad_side_only():
    coded = {"a": rows({"f1": 10.0, "f2": 10.5, "f3": 11.0, "f4": 10.2, "bad": -5.0,
                        "great": 40.0})}
    flags = outlier_files(coded, {"a": "codec"})
    assert len(flags) == 1 and "bad" in flags[0] and "snr" in flags[0]
