"""The one bitrate rule: codebooks and band levels within a bitrate."""
import pytest

from codec import Codec, model_config
from codec.coding.bitrate import codebooks_for_kbps, coded_kbps, level_grid, level_kbps
from codec.config import CodingConfig
from codec.errors import CodecError

# 75 frames/s x 10 bits: 0.75 kbps a codebook, 8 codebooks.
NETWORK = Codec(model_config("small"))
LEVELS = CodingConfig(band_levels=32, band_levels_low_rate=24, band_level_kbps=2.25)


def test_without_levels_the_codebooks_take_the_whole_bitrate():
    assert [codebooks_for_kbps(NETWORK, CodingConfig(), k) for k in (1.5, 3, 6, 99)] == [
        2, 4, 8, 8]
    assert level_grid(NETWORK, CodingConfig(), -23.0, 8) is None


def test_levels_take_their_share_or_half_a_low_bitrate():
    assert [codebooks_for_kbps(NETWORK, LEVELS, k) for k in (1.5, 3, 6)] == [1, 2, 5]
    assert [level_kbps(NETWORK, LEVELS, n) for n in (1, 2, 5)] == [0.75, 1.5, 2.25]
    assert coded_kbps(NETWORK, LEVELS, 5) == 6.0
    # Short of their share, the levels are measured in the low-rate band count.
    assert level_grid(NETWORK, LEVELS, -23.0, 2).bands == 24
    assert level_grid(NETWORK, LEVELS, -23.0, 5).bands == 32


def test_a_bitrate_below_one_codebook_and_its_levels_is_refused():
    with pytest.raises(CodecError, match="1.5 kbps with one codebook and its band levels"):
        codebooks_for_kbps(NETWORK, LEVELS, 1.0)
    with pytest.raises(CodecError, match="finite"):
        codebooks_for_kbps(NETWORK, LEVELS, float("nan"))
