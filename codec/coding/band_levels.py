"""Band levels: the input's level in a few bands, sent beside the codes, and the decoded
audio brought to them.

At a low bitrate the decoder gets the low bands right and leaves the upper ones far too
faint, their syllable envelopes smeared: the codes carry what the waveform terms pay for,
and above about 1.5 kHz that is little. A few hundred bits a second carry what the codes
leave out. The encoder measures the input's mean-square level in each of ``bands`` bands
(equally wide on the mel scale) over every ``frames`` codec frames, in steps of
``step_db``; the decoder scales each band of its output so that its level over the same
span follows them, interpolated from one span's centre to the next. On speech this is the
per-band envelope that STOI, PESQ and listeners follow.

A level at or under ``floor_db`` is sent as the floor, and there the decoder only
quietens a band to the floor, never raises it: what the pauses need is silence, not
decoded noise brought up to a floor. Between two silent spans the decoder gives
silence: the floor is far above a pause's true level (digital silence in many
recordings), and decoded noise left there is what a mel distance and a listener hear in
the pauses. A silent span is one with every band at the floor and, when the grid has a
``silence_db``, every band under that too: the encoder sends one flag for each span at
the floor, so the faint ends of words keep their floor while true pauses go silent. The
floor sits a fixed distance under the model's loudness target (the encoder brings every
input there first), so quiet passages cost almost nothing.

Coding: each level is range-coded (constriction) with a quantised Laplace distribution
centred on the same band's previous level; each band's spread is measured on the file and
written in its header.

Levels live on the codec's frame grid: short-time Fourier frames two hops wide, one hop
apart, centred on each frame's first sample. So each chunk of a chunked decode can be
brought to its levels on its own, given ``reach_frames`` frames of context each side.
Shapes: audio ``[rows, n]`` (one row per item and model channel), levels
``[rows, bands, spans]`` (integers, 0 the floor).
"""
from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from codec.coding import postfilter
from codec.coding.binary_header import nearest_spread
from codec.coding.bitstream import BitstreamError
from codec.config import DEFAULT_TARGET_LUFS, CodingConfig

# Levels span this far above the floor; a band louder than that is sent at the top.
RANGE_DB = 120.0
# The decoder never raises a band by more than this (a guard, far beyond real gains).
MAX_BOOST_DB = 60.0
# A file whose levels pass their share of the bitrate takes steps this much coarser, in
# turn, up to twice the first step; then spans twice as long.
STEP_GROWTH = 1.1
MAX_STEP_GROWTH = 2.0
# The limits a file's header is held to (codec.coding.bitstream checks the same).
MAX_BANDS, MAX_FRAMES = 64, 1024
MIN_STEP_DB, MAX_STEP_DB = 0.1, 24.0
# The share of silent spans among those at the floor is kept this far off 0 and 1.
MIN_SHARE = 0.01
TINY = 1e-20


@dataclass(frozen=True)
class LevelGrid:
    """Where and how finely levels are measured: ``bands`` bands, one level per
    ``frames`` codec frames of ``hop`` samples at ``sample_rate``, ``step_db`` apart,
    ``floor_db`` (dB of mean-square level, full scale 0) the lowest; a span with every
    band under ``silence_db`` is silence (None: every span at the floor is)."""
    sample_rate: int
    hop: int
    bands: int
    frames: int
    step_db: float
    floor_db: float
    silence_db: float | None = None

    @property
    def n_fft(self) -> int:
        return 2 * self.hop

    @property
    def top(self) -> int:
        """The highest level index."""
        return math.ceil(RANGE_DB / self.step_db)

    @property
    def smoothing(self) -> int:
        """Decoded frames averaged for a frame's level (odd, so it centres)."""
        return self.frames + 1 - self.frames % 2

    @property
    def reach_frames(self) -> int:
        """Codec frames each side of an output sample that bringing it to its level reads."""
        return self.smoothing // 2 + 2

    def spans(self, codec_frames: int) -> int:
        return -(-codec_frames // self.frames)


def bands_for(coding: CodingConfig, share_kbps: float | None = None) -> int:
    """How many bands ``coding`` measures levels in when they may take ``share_kbps`` of
    the bitrate (None: their full share, ``band_level_kbps``): ``band_levels_low_rate``
    under the full share, when it is set."""
    low = coding.band_levels_low_rate
    if share_kbps is None or share_kbps >= coding.band_level_kbps or not low:
        return coding.band_levels
    return low


def grid_for(coding: CodingConfig, sample_rate: int, hop: int, target_lufs: float | None,
             share_kbps: float | None = None) -> LevelGrid | None:
    """The grid ``coding`` measures levels on for a model at ``sample_rate`` (frames
    ``hop`` samples apart, trained on audio at ``target_lufs``) when they may take
    ``share_kbps`` of the bitrate (None: their full share), or None when it sends none.
    The floor sits under the loudness the encoder brings audio to."""
    if not coding.band_levels:
        return None
    target = DEFAULT_TARGET_LUFS if target_lufs is None else target_lufs
    silence = coding.band_level_silence_db
    return LevelGrid(sample_rate, hop, bands_for(coding, share_kbps),
                     coding.band_level_frames,
                     coding.band_level_step_db, round(target + coding.band_level_floor_db, 3),
                     None if silence is None else round(target + silence, 3))


def check_config(config: CodingConfig, causal: bool) -> str | None:
    """Why the ``band_level*`` settings of ``config`` cannot be (for a causal model or
    not), or None."""
    bands = config.band_levels
    if not (math.isfinite(config.band_level_kbps) and config.band_level_kbps >= 0):
        return f"coding.band_level_kbps must be 0 or more, got {config.band_level_kbps}"
    if bands == 0:
        return None
    if causal:
        return ("band levels look ahead (a level covers several frames), and a causal model "
                "codes frame by frame: coding.band_levels must be 0 (none)")
    if not 1 <= bands <= MAX_BANDS:
        return f"coding.band_levels must be 0 (none) or 1 to {MAX_BANDS} bands, got {bands}"
    if not 0 <= config.band_levels_low_rate <= MAX_BANDS:
        return (f"coding.band_levels_low_rate must be 0 (band_levels) or 1 to {MAX_BANDS} "
                f"bands, got {config.band_levels_low_rate}")
    if not 1 <= config.band_level_frames <= MAX_FRAMES:
        return (f"coding.band_level_frames must be 1 to {MAX_FRAMES} codec frames, "
                f"got {config.band_level_frames}")
    if not (math.isfinite(config.band_level_step_db)
            and MIN_STEP_DB <= config.band_level_step_db <= MAX_STEP_DB):
        return (f"coding.band_level_step_db must be {MIN_STEP_DB} to {MAX_STEP_DB} dB, "
                f"got {config.band_level_step_db}")
    if not (math.isfinite(config.band_level_floor_db) and -200 <= config.band_level_floor_db <= 0):
        return (f"coding.band_level_floor_db must be -200 to 0 dB under the loudness target, "
                f"got {config.band_level_floor_db}")
    silence = config.band_level_silence_db
    if silence is not None and not (math.isfinite(silence) and -300 <= silence
                                    < config.band_level_floor_db):
        return (f"coding.band_level_silence_db must be null (the floor) or -300 dB up to the "
                f"floor (coding.band_level_floor_db, {config.band_level_floor_db}), got {silence}")
    return None


@functools.lru_cache(maxsize=16)
@torch.inference_mode(False)  # cached: made during inference, it must still serve training
def band_members(grid: LevelGrid) -> torch.Tensor:
    """``[bins, bands]``: 1 where a bin of the grid's transform lies in a band (bands
    narrower than a bin are merged with the next, and their columns left empty)."""
    members = postfilter.band_members(grid.sample_rate, grid.n_fft, grid.bands)
    # Pad to ``bands`` columns, so every file of a grid has the same shape.
    return F.pad(members, (0, grid.bands - members.shape[1]))


def _window(grid: LevelGrid, like: torch.Tensor | None = None) -> torch.Tensor:
    """The transform's window, in ``like``'s real dtype and on its device (float64 on
    the CPU without one)."""
    if like is None:
        return torch.hann_window(grid.n_fft, dtype=torch.float64)
    return torch.hann_window(grid.n_fft, dtype=like.real.dtype, device=like.device)


def _band_power(spectra: torch.Tensor, grid: LevelGrid) -> torch.Tensor:
    """``[rows, bins, frames]`` spectra -> mean-square level ``[rows, bands, frames]``
    (by Parseval, a band's share of the frame's windowed mean square), in the spectra's
    real dtype."""
    power = spectra.abs().pow(2)
    scale = grid.n_fft * _window(grid, power).pow(2).sum() / 2
    return torch.einsum("rft,fb->rbt", power, band_members(grid).to(power)) / scale


class LevelMeter:
    """The band levels of a signal fed in blocks ``[rows, n]``. Each whole span's mean
    goes as it comes into one buffer that doubles as it fills: a long signal leaves no
    trail of small tensors through the heap, which the encoder's large working tensors
    would then be placed above, so that the process grew with the signal's length."""

    def __init__(self, grid: LevelGrid, rows: int):
        self.grid, self.rows = grid, rows
        # The frames are centred on multiples of the hop; the first looks a hop back,
        # at silence.
        self._buffer = torch.zeros(rows, grid.hop, dtype=torch.float64)
        self._tail = torch.zeros(rows, grid.bands, 0, dtype=torch.float64)  # not yet a span
        self._means = torch.zeros(rows, grid.bands, 64, dtype=torch.float64)
        self._spans = 0

    def push(self, block: torch.Tensor) -> None:
        self._measure(block)
        whole = self._tail.shape[-1] // self.grid.frames * self.grid.frames
        if whole:
            self._store(span_means(self._tail[..., :whole], self.grid.frames))
            self._tail = self._tail[..., whole:].clone()

    def _measure(self, block: torch.Tensor) -> None:
        grid = self.grid
        self._buffer = torch.cat([self._buffer, block.to(torch.float64)], dim=-1)
        count = (self._buffer.shape[-1] - grid.n_fft) // grid.hop + 1
        if count <= 0:
            return
        frames = self._buffer[:, :(count - 1) * grid.hop + grid.n_fft].unfold(
            -1, grid.n_fft, grid.hop)
        spectra = torch.fft.rfft(frames * _window(grid), dim=-1).transpose(1, 2)
        self._tail = torch.cat([self._tail, _band_power(spectra, grid)], dim=-1)
        self._buffer = self._buffer[:, count * grid.hop:].clone()

    def _store(self, means: torch.Tensor) -> None:
        end = self._spans + means.shape[-1]
        if end > self._means.shape[-1]:
            grown = self._means.new_zeros(*self._means.shape[:-1],
                                          max(2 * self._means.shape[-1], end))
            grown[..., :self._spans] = self._means[..., :self._spans]
            self._means = grown
        self._means[..., self._spans:end] = means
        self._spans = end

    def finish(self, codec_frames: int) -> torch.Tensor:
        """The mean-square level ``[rows, bands, spans]`` of each span of the
        ``codec_frames`` frames (at least those of the whole samples fed), before
        quantisation."""
        self._measure(torch.zeros(self._buffer.shape[0], self.grid.n_fft))
        tail = self._tail[..., :max(0, codec_frames - self._spans * self.grid.frames)]
        return torch.cat([self._means[..., :self._spans], span_means(tail, self.grid.frames)],
                         dim=-1)


def span_means(power: torch.Tensor, frames: int) -> torch.Tensor:
    """``[rows, bands, T]`` -> the mean over each ``frames`` frames (the last span may
    be shorter)."""
    spans = -(-power.shape[-1] // frames)
    total = F.pad(power, (0, spans * frames - power.shape[-1]))
    counts = F.pad(torch.ones(power.shape[-1], dtype=power.dtype),
                   (0, spans * frames - power.shape[-1]))
    return (total.unflatten(-1, (spans, frames)).sum(-1)
            / counts.unflatten(-1, (spans, frames)).sum(-1))


def quantise(power: torch.Tensor, grid: LevelGrid) -> np.ndarray:
    """Span levels -> ``[rows, bands, spans]`` steps of ``grid.step_db`` over the floor."""
    db = 10 * torch.log10(power + TINY)
    steps = torch.round((db - grid.floor_db) / grid.step_db).clamp(0, grid.top)
    # 16 bits: the finest step (MIN_STEP_DB) gives RANGE_DB / MIN_STEP_DB = 1,200 steps.
    return steps.to(torch.int16).numpy()


def spans_at_floor(levels: np.ndarray) -> np.ndarray:
    """``[rows, spans]``: the spans with every band at the floor (the ones a flag says
    silent or not)."""
    return (np.asarray(levels) == 0).all(axis=1)


def silent_spans(power: torch.Tensor, silence_db: float) -> np.ndarray:
    """``[rows, spans]``: the spans of ``power`` ``[rows, bands, spans]`` with every band
    under ``silence_db``. Under the floor, so at the floor in any step: each is among
    the :func:`spans_at_floor` that a flag is sent for."""
    return (10 * torch.log10(power + TINY) < silence_db).all(dim=1).numpy()


def measure(audio: torch.Tensor, grid: LevelGrid) -> np.ndarray:
    """The quantised levels ``[rows, bands, spans]`` of a whole signal ``[rows, n]``, as
    the encoder measures them."""
    meter = LevelMeter(grid, audio.shape[0])
    meter.push(audio.detach().cpu())
    return quantise(meter.finish(-(-audio.shape[-1] // grid.hop)), grid)


def _span_positions(grid: LevelGrid, spans: int, first: int, count: int):
    """For codec frames ``first .. first + count``: the span before each frame's
    position, the span after it and the weight of the one after (span centres apart)."""
    position = ((first + torch.arange(count, dtype=torch.float64)) - (grid.frames - 1) / 2) \
        / grid.frames
    low = position.floor().clamp(0, spans - 1).long()
    high = (low + 1).clamp(max=spans - 1)
    return low, high, (position - low).clamp(0, 1)


def _targets_db(levels: torch.Tensor, grid: LevelGrid, first: int, count: int) -> torch.Tensor:
    """The level of each band at codec frames ``first .. first + count``, in dB:
    interpolated from one span's centre to the next."""
    db = grid.floor_db + levels.to(torch.float64) * grid.step_db
    low, high, weight = _span_positions(grid, levels.shape[-1], first, count)
    return db[..., low] * (1 - weight) + db[..., high] * weight


def _silent_frames(silent: torch.Tensor, grid: LevelGrid, first: int,
                   count: int) -> torch.Tensor:
    """``[rows, count]``: the frames between two ``silent`` spans ``[rows, spans]``,
    where the decoder gives silence."""
    low, high, _ = _span_positions(grid, silent.shape[-1], first, count)
    return silent[..., low] & silent[..., high]


def apply_levels(audio: torch.Tensor, levels: np.ndarray, grid: LevelGrid,
                 first: int = 0, silent: np.ndarray | None = None) -> torch.Tensor:
    """Decoded ``audio`` ``[rows, n]``, starting at codec frame ``first`` of its file,
    with each band brought to ``levels`` (the whole file's ``[rows, bands, spans]``),
    silent between two ``silent`` spans ``[rows, spans]`` (None: the spans with every
    band at the floor). Exact only ``reach_frames`` frames from either end of ``audio``
    (unless they are the file's ends): a chunk needs that much context."""
    if audio.shape[-1] == 0:
        return audio
    return brought_to(audio.to(torch.float64), levels, grid, first, silent).to(audio.dtype)


def brought_to(audio: torch.Tensor, levels: np.ndarray, grid: LevelGrid,
               first: int = 0, silent: np.ndarray | None = None) -> torch.Tensor:
    """:func:`apply_levels` in ``audio``'s own dtype and differentiable in it: training
    scores the decoder's output as the decoder will hand it out, bands at their levels."""
    window = _window(grid, audio)
    spectra = torch.stft(audio, grid.n_fft, grid.hop, window=window, center=True,
                         pad_mode="constant", return_complex=True)
    decoded = _band_power(spectra, grid)
    decoded = F.avg_pool1d(decoded, grid.smoothing, 1, grid.smoothing // 2,
                           count_include_pad=False)
    decoded_db = 10 * torch.log10(decoded + TINY)
    levels = torch.from_numpy(np.asarray(levels))
    target = _targets_db(levels, grid, first, spectra.shape[-1]).to(audio)
    # At the floor, only quieter: a pause is not to be filled with decoded noise.
    at_floor = target <= grid.floor_db + 1e-6
    target = torch.where(at_floor, torch.minimum(target, decoded_db), target)
    gain_db = (target - decoded_db).clamp(max=MAX_BOOST_DB)
    gains = 10 ** (gain_db / 20)
    members = band_members(grid).to(audio)
    # A merged (empty) band column leaves its bins at gain 1.
    bin_gain = torch.einsum("rbt,fb->rft", gains, members) + (1 - members.sum(1))[:, None]
    silent = torch.from_numpy(spans_at_floor(levels) if silent is None
                              else np.asarray(silent, dtype=bool))
    sounding = ~_silent_frames(silent, grid, first, spectra.shape[-1]).to(audio.device)
    bin_gain = bin_gain * sounding[:, None, :]
    return torch.istft(spectra * bin_gain, grid.n_fft, grid.hop, window=window, center=True,
                       length=audio.shape[-1])


# ---------------------------------------------------------------------------
# Coding


def spreads(levels: np.ndarray) -> list[float]:
    """Each band's Laplace spread (the mean absolute change from one span to the next,
    its maximum-likelihood estimate), the nearest value the header can store."""
    changes = np.abs(np.diff(levels.astype(np.int64), axis=-1))
    if changes.shape[-1] == 0:
        return [nearest_spread(1.0)] * levels.shape[1]
    mean = changes.mean(axis=(0, 2))
    return [nearest_spread(float(m)) for m in mean]


def _coder_model(grid: LevelGrid):
    import constriction

    return constriction.stream.model.QuantizedLaplace(0, grid.top)


def silent_share(levels: np.ndarray, silent: np.ndarray) -> float:
    """The share of the spans at the floor that are silent, rounded and kept off 0 and 1,
    as the header stores it (the flags' coding probability)."""
    candidates = spans_at_floor(levels)
    share = float(silent[candidates].mean()) if candidates.any() else 0.5
    return round(min(max(share, MIN_SHARE), 1 - MIN_SHARE), 3)


def _flag_model(share: float):
    import constriction

    return constriction.stream.model.Categorical(np.array([1 - share, share]), perfect=False)


def encode_levels(levels: np.ndarray, grid: LevelGrid, scales: list[float],
                  silent: np.ndarray | None = None, share: float | None = None) -> bytes:
    """Levels ``[rows, bands, spans]`` -> range-coded bytes (whole 32-bit words); then,
    with ``silent`` ``[rows, spans]`` and its ``share`` (:func:`silent_share`), one flag
    for each span at the floor."""
    import constriction

    rows, bands, spans = levels.shape
    values = levels.astype(np.int32)
    # Each level is predicted by the band's previous one (the first by the floor).
    means = np.concatenate([np.zeros((rows, bands, 1), np.int32), values[..., :-1]], -1)
    scale = np.broadcast_to(np.asarray(scales, np.float64)[None, :, None], values.shape)
    encoder = constriction.stream.queue.RangeEncoder()
    for row in range(rows):  # span by span, each span's bands together
        encoder.encode(np.ascontiguousarray(values[row].T.reshape(-1)), _coder_model(grid),
                       np.ascontiguousarray(means[row].T.reshape(-1), dtype=np.float64),
                       np.ascontiguousarray(scale[row].T.reshape(-1)))
    if silent is not None:
        at_floor = spans_at_floor(levels)
        if share is None or (silent & ~at_floor).any():
            raise ValueError("silence flags need their share, and silence under the floor")
        flags = silent[at_floor].astype(np.int32)
        if flags.size:
            encoder.encode(flags, _flag_model(share))
    return encoder.get_compressed().astype("<u4").tobytes()


def decode_levels(data: bytes, grid: LevelGrid, scales: list[float], rows: int,
                  spans: int, share: float | None = None
                  ) -> tuple[np.ndarray, np.ndarray | None]:
    """Inverse of :func:`encode_levels`: the levels and (given the flags' ``share``) the
    silent spans; BitstreamError for bytes that are not such levels."""
    import constriction

    if len(data) % 4:
        raise BitstreamError("band levels must be whole 32-bit words")
    words = np.frombuffer(data, dtype="<u4").astype(np.uint32)
    scale = np.asarray(scales, np.float64)
    levels = np.empty((rows, grid.bands, spans), np.int16)
    try:
        decoder = constriction.stream.queue.RangeDecoder(words)
        for row in range(rows):
            previous = np.zeros(grid.bands, np.float64)
            for span in range(spans):
                values = decoder.decode(_coder_model(grid), previous, scale)
                levels[row, :, span] = values
                previous = values.astype(np.float64)
        silent = None
        if share is not None:
            candidates = spans_at_floor(levels)
            silent = np.zeros(candidates.shape, bool)
            count = int(candidates.sum())
            if count:
                silent[candidates] = decoder.decode(_flag_model(share), count) == 1
    except Exception as error:  # constriction raises plain exceptions on bad data
        raise BitstreamError(f"band levels are damaged ({error})") from None
    # A range decoder reads what it needs and nothing after it, and reads zeros past the
    # end: coded again, the levels must give exactly these bytes (none missing, none added).
    if encode_levels(levels, grid, scales, silent, share) != data:
        raise BitstreamError(f"band levels are damaged ({len(data)} bytes, not the "
                             f"coding of the levels they decode to)")
    return levels, silent


@dataclass
class BandLevels:
    """A file's levels ``[rows, bands, spans]`` and their grid; one row per item and
    model channel, items in order."""
    grid: LevelGrid
    levels: np.ndarray
    # [rows, spans]: the spans that decode silent (None: those with every band at the floor).
    silent: np.ndarray | None = None
    _coded: tuple[bytes, dict] | None = field(default=None, repr=False, compare=False)

    def apply(self, audio: torch.Tensor, item: int, first: int) -> torch.Tensor:
        """Item ``item``'s decoded audio ``[1, C, n]``, starting at codec frame ``first``,
        brought to its levels."""
        channels = audio.shape[1]
        rows = slice(item * channels, (item + 1) * channels)
        silent = None if self.silent is None else self.silent[rows]
        return apply_levels(audio[0], self.levels[rows], self.grid, first, silent)[None]

    def to_bytes(self) -> tuple[bytes, dict]:
        """The coded levels and the header field that describes them (coded once)."""
        if self._coded is None:
            grid, scales = self.grid, spreads(self.levels)
            share = None if self.silent is None else silent_share(self.levels, self.silent)
            data = encode_levels(self.levels, grid, scales, self.silent, share)
            described = {"bands": grid.bands, "frames": grid.frames,
                         "step_db": grid.step_db, "floor_db": grid.floor_db,
                         "scales": scales, "bytes": len(data)}
            if share is not None:  # files without flags stay as they were
                described.update(silence_db=grid.silence_db, silent_share=share)
            self._coded = data, described
        return self._coded

    @classmethod
    def fitted(cls, power: torch.Tensor, grid: LevelGrid,
               budget_bytes: float | None) -> BandLevels | None:
        """Span levels ``power`` quantised in ``grid.step_db`` steps; when their coded
        size passes ``budget_bytes``, in coarser steps (each ``STEP_GROWTH`` times the one
        before, up to ``MAX_STEP_GROWTH`` times the first), then over spans twice as long,
        and so on: the first that fits, so that a file's levels keep to their share of
        the bitrate (its header says the step and the span). None when none fits."""
        frames = grid.frames
        while True:
            # Silence does not depend on the step: measured once per span length.
            silent = None if grid.silence_db is None else silent_spans(power, grid.silence_db)
            step = grid.step_db
            while step <= min(grid.step_db * MAX_STEP_GROWTH, MAX_STEP_DB) + 1e-9:
                tried = dataclasses.replace(grid, frames=frames, step_db=round(step, 2))
                levels = cls(tried, quantise(power, tried), silent)
                if budget_bytes is None or len(levels.to_bytes()[0]) <= budget_bytes:
                    return levels
                step *= STEP_GROWTH
            if 2 * frames > MAX_FRAMES:
                return None
            frames *= 2
            power = span_means(power, 2)

    @classmethod
    def from_bytes(cls, data: bytes, described: dict, sample_rate: int, hop: int, rows: int,
                   codec_frames: int) -> BandLevels:
        """The levels a file holds, from its bytes and its header's ``band_levels``."""
        silence, share = described.get("silence_db"), described.get("silent_share")
        grid = LevelGrid(sample_rate, hop, described["bands"], described["frames"],
                         float(described["step_db"]), float(described["floor_db"]),
                         None if silence is None else float(silence))
        levels, silent = decode_levels(data, grid, [float(s) for s in described["scales"]],
                                       rows, grid.spans(codec_frames),
                                       None if share is None else float(share))
        return cls(grid, levels, silent)
