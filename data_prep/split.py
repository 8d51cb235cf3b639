"""Deterministic train/valid/test splits that never put one group in two splits.

A *group* is the folder a file sits in, relative to the scanned root (a speaker, an
album, a track cut into segments); a file directly in the root is its own group. With
``group_depth`` only the first levels name the group (``speaker/chapter`` -> ``speaker``).

Groups are split inside *strata*, so each kind of audio reaches every split: the
stratum of a group is its first ``stratify_depth`` folder levels, when the group has
more levels than that (``speech/en-us`` -> ``speech``, ``music/track7`` -> ``music``);
shallower groups (``speaker12``) share one stratum. Depth 0 turns stratification off.

Inside a stratum, groups are ordered by a hash of (seed, group name): the same seed
gives the same split on every run and machine, and adding a group never moves the
others in the order. The first groups of that order go to valid, the next to test,
the rest to train.
"""
from __future__ import annotations

import hashlib
import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Iterable, Optional

SPLITS = ("train", "valid", "test")


def group_of(relative_path: str, group_depth: Optional[int] = None) -> str:
    """The group of a file given its path relative to the scanned root (``/`` separators)."""
    path = PurePosixPath(relative_path)
    folders = path.parent.parts
    if not folders:
        return path.name  # a file in the root is its own group
    return "/".join(folders[:group_depth] if group_depth else folders)


def stratum_of(group: str, stratify_depth: int) -> str:
    """The stratum a group is split within; ``""`` is the shared stratum."""
    parts = group.split("/")
    if stratify_depth <= 0 or len(parts) <= stratify_depth:
        return ""
    return "/".join(parts[:stratify_depth])


@dataclass(frozen=True)
class SplitSizes:
    """How many units each stratum gives to valid and test: a count, or a fraction.

    A fraction is rounded, and a non-zero fraction gives at least one unit when the
    stratum has three or more (so a small corpus still gets a valid and a test set).
    Train always keeps at least one unit.
    """
    valid_fraction: float = 0.05
    test_fraction: float = 0.05
    valid_count: Optional[int] = None
    test_count: Optional[int] = None

    def counts(self, units: int) -> tuple[int, int]:
        valid = self._count(units, self.valid_fraction, self.valid_count)
        test = self._count(units, self.test_fraction, self.test_count)
        while valid + test > max(units - 1, 0):
            if test >= valid and test > 0:
                test -= 1
            else:
                valid -= 1
        return valid, test

    @staticmethod
    def _count(units: int, fraction: float, count: Optional[int]) -> int:
        if count is not None:
            return count
        rounded = math.floor(fraction * units + 0.5)
        return max(rounded, 1) if fraction > 0 and units >= 3 else rounded


def split_order_key(seed: int, unit: str) -> str:
    return hashlib.sha256(f"{seed}\0{unit}".encode()).hexdigest()


def assign_splits(units: Iterable[tuple[str, str]], sizes: SplitSizes,
                  seed: int) -> dict[str, str]:
    """Map each unit to ``train``/``valid``/``test``; ``units`` holds (unit, stratum)."""
    by_stratum: dict[str, set[str]] = defaultdict(set)
    for unit, stratum in units:
        by_stratum[stratum].add(unit)
    assignment = {}
    for stratum in sorted(by_stratum):
        ordered = sorted(by_stratum[stratum], key=lambda unit: split_order_key(seed, unit))
        valid, test = sizes.counts(len(ordered))
        for position, unit in enumerate(ordered):
            assignment[unit] = ("valid" if position < valid
                                else "test" if position < valid + test else "train")
    return assignment
