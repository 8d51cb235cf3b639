"""The coding section's check: band levels and post-filter settings a model can code with.

A causal model codes frame by frame, so it takes no band levels (a level covers several
frames); its post-filter is the live one, whose frames look back only.
"""
from __future__ import annotations

from codec.coding import band_levels, postfilter
from codec.config import CodingConfig, ConfigError


def check_coding(coding: CodingConfig, causal: bool) -> None:
    """ConfigError naming the setting when ``coding`` cannot be used with a model that is
    (or is not) ``causal``."""
    problem = postfilter.check_exponent(coding.postfilter)
    if problem:
        raise ConfigError(f"coding.postfilter: {problem}")
    problem = band_levels.check_config(coding, causal)
    if problem:
        raise ConfigError(problem)
