"""``python -m eval.tokens``: the counts' figures behave as entropies do, the code language
model learns what is predictable, and a tiny model's token set gives finite figures."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from codec.cli import main as codec_main
from eval import code_lm
from eval.token_stats import CodeCounts, entropy_bits
from eval.tokens import main


def test_entropy_bits():
    assert entropy_bits(np.array([5, 5, 5, 5])) == pytest.approx(2.0)
    assert entropy_bits(np.array([7, 0, 0])) == 0.0


def test_conditional_entropies_see_what_the_codes_repeat():
    """Codebook 2 repeats codebook 1 of its frame; codebook 3 repeats its own previous
    frame (after a random first): each is certain given what it repeats."""
    rng = np.random.default_rng(0)
    counts = CodeCounts(n_q=3, codebook_size=8)
    for _ in range(20):
        first = rng.integers(0, 8, 200)
        counts.add(np.stack([first, first, np.full(200, rng.integers(0, 8))], axis=1))
    one, two, three = counts.codebook_figures()
    assert one["entropy_bits"] == pytest.approx(3.0, abs=0.05) and one["usage"] == 1.0
    assert two["entropy_bits"] == pytest.approx(3.0, abs=0.05)
    assert two["given_coarser_bits"] == pytest.approx(0.0, abs=1e-9)
    assert two["given_previous_frame_bits"] > 2.5  # random from frame to frame
    assert three["entropy_bits"] > 2.0
    # Only the first frame of each sequence (given the start symbol) is uncertain.
    assert three["given_previous_frame_bits"] < 0.05 * three["entropy_bits"]
    assert one["perplexity"] == pytest.approx(2 ** one["entropy_bits"])


def test_the_code_model_learns_a_predictable_sequence():
    """Codes that count up by one each frame cost log2(16) = 4 bits a code unpredicted;
    a model that has learned to count, far less."""
    sequence = np.stack([np.arange(2000) % 16, (np.arange(2000) + 3) % 16], axis=1)
    settings = code_lm.LMSettings(steps=150, width=32, layers=1, batch=8, window=32, lr=1e-2)
    model = code_lm.train([sequence], n_q=2, size=16, settings=settings)
    bits, frames = code_lm.score(model, [sequence[:500]])
    assert frames == 500
    assert bits.sum() < 0.5  # of the 8 bits a frame unpredicted


@pytest.fixture(scope="module")
def tokens(tiny_run, eval_set, tmp_path_factory):
    """The eval set tokenized with the tiny model at 2 of its codebooks."""
    out = tmp_path_factory.mktemp("tokens") / "set"
    assert codec_main(["tokenize", "--model", str(tiny_run), "--data", str(eval_set), "-o",
                       str(out), "--kbps", "10"]) == 0
    return out


def test_a_tiny_models_tokens_give_finite_figures(tokens, tmp_path, capsys):
    assert main([str(tokens), "--json", str(tmp_path / "t.json"), "--lm-steps", "3",
                 "--lm-width", "16", "--threads", "1"]) == 0
    printed = capsys.readouterr().out
    result = json.loads((tmp_path / "t.json").read_text())
    assert result["tokens_per_second"] == 1200  # 2 codebooks at 600 frames/s
    assert result["rates"]["nominal_bps"] == 9600
    assert len(result["codebooks"]) == 2 and "H | previous frame" in printed
    for row in result["codebooks"]:
        assert 0 < row["usage"] <= 1
        assert math.isfinite(row["entropy_bits"]) and row["entropy_bits"] >= 0
        assert row["given_previous_frame_bits"] <= row["entropy_bits"]
        assert row["given_coarser_bits"] is None or row["given_coarser_bits"] <= row[
            "entropy_bits"]
    assert result["codebooks"][1]["given_coarser_bits"] is not None
    lm = result["lm"]
    assert lm["test_frames"] > 0 and all(math.isfinite(b) and b > 0 for b in lm["codebook_bits"])
    assert result["rates"]["lm_test_bps"] == pytest.approx(lm["bits_per_frame"] * 600)


def test_train_and_test_sets(tokens, capsys):
    assert main(["--train", str(tokens), "--test", str(tokens), "--lm-steps", "0"]) == 0
    assert "code LM" not in capsys.readouterr().out
    assert main([str(tokens), "--train", str(tokens)]) == 2
    assert "name OUT_DIR, or --train" in capsys.readouterr().err
