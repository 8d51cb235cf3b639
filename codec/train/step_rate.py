"""The training step rate, now and early in the run, and a warning when it collapses.

A laptop with a browser open is a busy machine: when other programs take the cores,
training slows, and the user should learn it from the progress bar rather than from a
run that reached a tenth of its steps. The run's own early rate is the yardstick, so no
figure for any particular machine is written in.
"""
from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

# Steps left out at the start (model warm-up, first allocations, data workers starting)
# and steps that make the early rate.
SKIP_STEPS = 5
EARLY_STEPS = 20
# The current rate is taken over this many most recent steps.
WINDOW_STEPS = 20
# Warn when the current rate falls below this fraction of the early one.
SLOW_FRACTION = 1 / 3


@dataclass
class StepRate:
    """Feed ``step_done()`` after each training step (and ``pause()``/``resume()`` around
    work that is not training, such as validation)."""
    clock: Callable[[], float] = time.monotonic
    early: float | None = None  # steps per second over the early steps
    _durations: deque = field(default_factory=lambda: deque(maxlen=WINDOW_STEPS))
    _early_durations: list = field(default_factory=list)
    _skipped: int = 0
    _last: float | None = None
    _warned: bool = False

    def pause(self) -> None:
        self._last = None

    def step_done(self) -> float | None:
        """Record a step; its duration in seconds (None for the first after a pause)."""
        now, last = self.clock(), self._last
        self._last = now
        if last is None:
            return None
        self._record(now - last)
        return now - last

    def _record(self, seconds: float) -> None:
        if self._skipped < SKIP_STEPS:
            self._skipped += 1
            return
        self._durations.append(seconds)
        if self.early is None:
            self._early_durations.append(seconds)
            if len(self._early_durations) == EARLY_STEPS:
                self.early = EARLY_STEPS / sum(self._early_durations)

    @property
    def current(self) -> float | None:
        """Steps per second over the last WINDOW_STEPS steps (None before any)."""
        if not self._durations:
            return None
        return len(self._durations) / sum(self._durations)

    def warning(self) -> str | None:
        """A message the first time the rate falls far below the early one (and again
        after it has recovered and fallen once more); None otherwise."""
        now, early = self.current, self.early
        if now is None or early is None or len(self._durations) < WINDOW_STEPS:
            return None
        slow = now < SLOW_FRACTION * early
        if slow and not self._warned:
            self._warned = True
            return (f"training slowed to {now:.2f} steps/s from {early:.2f} steps/s early in "
                    f"this run: other programs are using the cores (train.threads sets how "
                    f"many this run uses)")
        if not slow and now > 0.5 * early:
            self._warned = False
        return None
