"""How many CPU threads a training step uses, chosen from measured step times.

On 2 idle cores a 2-thread step is about 1.5x faster than a 1-thread one. When another
CPU-bound program shares the cores, the threads of each parallel region wait for the one
that was descheduled, and the same 2-thread step became 4-6x slower, while a 1-thread
step only shares its core (about 2x): ``python -m eval.probes.contention`` measures both.
Letting OpenMP threads sleep instead of spin (``OMP_WAIT_POLICY=PASSIVE``) also
avoids the collapse, but it made the idle step 1.5x slower, and idle is the usual case.

So the trainer starts with the configured count, tries one thread for a few steps once
early on (the machine may be busy from the start), and keeps whichever was faster. Then it
watches its own step times: when they grow well past the best it has seen at that count,
it tries one thread again; while on one thread it tries the configured count now and then,
so that a run returns to full speed once the other program is done.
"""
from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

import torch

# Steps whose median is the reference (and the current figure) at a thread count.
WINDOW = 10
# Steps timed in a trial of the other thread count (the first one after a switch is
# left out: it pays for waking the threads).
TRIAL = 8
# A trial starts when the recent median is this many times the reference.
SLOW_RATIO = 1.5
# Steps between trials after a trial (to come back to the configured count, or to try
# one thread again).
RECHECK_STEPS = 200


@dataclass
class ThreadTuner:
    """Feed ``observe(seconds)`` with each training step's duration; it sets torch's
    thread count and returns a message whenever it changes it."""
    threads: int
    set_threads: Callable[[int], None] = torch.set_num_threads
    current: int = 0
    reference: dict = field(default_factory=dict)  # thread count -> best median s/step
    _recent: deque = field(default_factory=lambda: deque(maxlen=WINDOW))
    _trial: list | None = None
    _before_trial: float = 0.0
    _steps_to_recheck: int = 0
    _tried: bool = False

    def __post_init__(self) -> None:
        self.current = self.threads

    @property
    def enabled(self) -> bool:
        return self.threads > 1

    def observe(self, seconds: float) -> str | None:
        if not self.enabled:
            return None
        if self._trial is not None:
            return self._trial_step(seconds)
        self._recent.append(seconds)
        self._steps_to_recheck -= 1
        if len(self._recent) < WINDOW:
            return None
        median = statistics.median(self._recent)
        self.reference[self.current] = min(self.reference.get(self.current, median), median)
        if self._steps_to_recheck > 0:
            return None
        slow = median > SLOW_RATIO * self.reference[self.current]
        if not self._tried or self.current != self.threads or slow:
            self._start_trial(median)
        return None

    def _other(self) -> int:
        return 1 if self.current == self.threads else self.threads

    def _start_trial(self, median: float) -> None:
        self._before_trial, self._tried = median, True
        self._trial = []
        self.set_threads(self._other())

    def _trial_step(self, seconds: float) -> str | None:
        self._trial.append(seconds)
        if len(self._trial) < TRIAL + 1:
            return None
        trial = statistics.median(self._trial[1:])
        other, self._trial = self._other(), None
        self._recent.clear()
        self._steps_to_recheck = RECHECK_STEPS
        if trial < self._before_trial:
            before, self.current = self.current, other
            return (f"threads {before} -> {other}: {self._before_trial:.2f} -> {trial:.2f} "
                    f"s/step (the cores are {'shared' if other == 1 else 'free again'})")
        self.set_threads(self.current)
        return None
