from pathlib import Path

from eval.probes import step_profile

ROOT = Path(__file__).parents[3]


def test_prints_the_seconds_per_step_and_the_costliest_operators(capsys):
    config = ROOT / "recipes" / "quickstart" / "conf" / "quickstart.yaml"
    assert step_profile.main([str(config), "data.batch_size=2", "data.segment_seconds=0.2",
                              "train.threads=1", "--steps", "1", "--top", "3"]) == 0
    out = capsys.readouterr().out
    assert " s per step over 1 steps (1 threads" in out
    assert "aten::" in out and "Self CPU time total" in out


def test_without_the_profiler_it_prints_the_median_step_and_the_precision(capsys):
    config = ROOT / "recipes" / "quickstart" / "conf" / "quickstart.yaml"
    assert step_profile.main([str(config), "data.batch_size=2", "data.segment_seconds=0.2",
                              "train.threads=1", "train.precision=bf16", "--steps", "3",
                              "--no-profiler"]) == 0
    out = capsys.readouterr().out
    assert " s per step, the median of 3 (1 threads, bf16)" in out
    assert "aten::" not in out
