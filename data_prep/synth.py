"""Seeded synthetic audio for a demo corpus when no speech synthesiser or music is at hand.

A clip is a mixture of events placed at random times: harmonic tones with vibrato and
attack-decay-sustain-release envelopes, exponential chirps, filtered noise bursts and
percussive hits. A :class:`Palette` holds one group's character (pitch range, brightness,
vibrato, density, the mix of event kinds), so groups sound different from each other
the way speakers or instruments do.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import lfilter

EVENT_KINDS = ("tone", "chirp", "noise", "hit")


@dataclass(frozen=True)
class Palette:
    low_hz: float  # fundamental range of tones and hits
    high_hz: float
    brightness: float  # harmonic amplitude falls as k ** -brightness
    vibrato_hz: float
    vibrato_depth: float  # fraction of the fundamental
    events_per_second: float
    kind_weights: tuple[float, ...]  # over EVENT_KINDS

    @classmethod
    def draw(cls, rng: np.random.Generator) -> "Palette":
        low = float(rng.uniform(70, 400))
        weights = rng.dirichlet(np.ones(len(EVENT_KINDS)) * 1.5) + 0.05
        return cls(low_hz=low, high_hz=low * float(rng.uniform(1.5, 4.0)),
                   brightness=float(rng.uniform(0.6, 2.0)),
                   vibrato_hz=float(rng.uniform(3.5, 7.5)),
                   vibrato_depth=float(rng.uniform(0.0, 0.03)),
                   events_per_second=float(rng.uniform(1.5, 5.0)),
                   kind_weights=tuple(float(w) for w in weights / weights.sum()))


def clip(palette: Palette, seconds: float, sample_rate: int,
         rng: np.random.Generator) -> np.ndarray:
    """A mono float32 clip ``[T]`` with a random peak between 0.3 and 0.9."""
    length = int(seconds * sample_rate)
    out = np.zeros(length)
    count = max(1, int(rng.poisson(palette.events_per_second * seconds)))
    for _ in range(count):
        kind = EVENT_KINDS[rng.choice(len(EVENT_KINDS), p=palette.kind_weights)]
        event = EVENTS[kind](palette, sample_rate, rng)
        start = int(rng.integers(0, max(1, length - len(event) // 2)))
        event = event[:length - start] * 10 ** (rng.uniform(-24, 0) / 20)
        out[start:start + len(event)] += event
    peak = np.abs(out).max()
    if peak > 0:
        out *= rng.uniform(0.3, 0.9) / peak
    return out.astype(np.float32)


def _envelope(length: int, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Attack, decay to a sustain level, release: a piecewise-linear ADSR shape."""
    attack = max(1, int(rng.uniform(0.005, 0.08) * sample_rate))
    decay = max(1, int(rng.uniform(0.02, 0.2) * sample_rate))
    release = max(1, int(rng.uniform(0.03, 0.3) * sample_rate))
    sustain = rng.uniform(0.3, 0.9)
    points = [0, attack, attack + decay, max(attack + decay, length - release), length]
    return np.interp(np.arange(length), points, [0.0, 1.0, sustain, sustain, 0.0])


def _tone(palette: Palette, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    length = int(rng.uniform(0.2, 1.5) * sample_rate)
    t = np.arange(length) / sample_rate
    f0 = rng.uniform(palette.low_hz, palette.high_hz)
    wobble = 1 + palette.vibrato_depth * np.sin(2 * np.pi * palette.vibrato_hz * t
                                                + rng.uniform(0, 2 * np.pi))
    phase = 2 * np.pi * np.cumsum(f0 * wobble) / sample_rate
    harmonics = np.arange(1, int(0.45 * sample_rate / f0) + 1)[:40]
    amplitudes = harmonics ** -palette.brightness
    wave = (amplitudes[:, None] * np.sin(harmonics[:, None] * phase[None, :])).sum(axis=0)
    return wave / amplitudes.sum() * _envelope(length, sample_rate, rng)


def _chirp(palette: Palette, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    length = int(rng.uniform(0.1, 0.8) * sample_rate)
    start, stop = rng.uniform(100, 0.4 * sample_rate, size=2)
    frequency = start * (stop / start) ** (np.arange(length) / length)  # exponential sweep
    phase = 2 * np.pi * np.cumsum(frequency) / sample_rate
    return np.sin(phase) * _envelope(length, sample_rate, rng)


def _noise(palette: Palette, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    length = int(rng.uniform(0.05, 0.6) * sample_rate)
    noise = rng.standard_normal(length)
    pole = rng.uniform(0.0, 0.97)  # one-pole low-pass; 0 leaves it white
    if rng.random() < 0.5:
        noise = lfilter([1 - pole], [1, -pole], noise)
    else:
        noise = np.diff(noise, prepend=0.0)  # a first difference tilts it bright
    return 0.3 * noise / (np.abs(noise).max() + 1e-9) * _envelope(length, sample_rate, rng)


def _hit(palette: Palette, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    length = int(rng.uniform(0.1, 0.5) * sample_rate)
    t = np.arange(length) / sample_rate
    decay = np.exp(-t * rng.uniform(8, 40))
    f0 = rng.uniform(40, palette.low_hz * 1.5)
    drop = 1 + rng.uniform(0, 2) * np.exp(-t * 30)  # the pitch falls just after the strike
    body = np.sin(2 * np.pi * np.cumsum(f0 * drop) / sample_rate)
    click = rng.standard_normal(length) * np.exp(-t * 300)
    return (body + 0.5 * click) * decay


EVENTS = {"tone": _tone, "chirp": _chirp, "noise": _noise, "hit": _hit}
