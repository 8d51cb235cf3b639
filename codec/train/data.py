"""Manifests in, training crops out: reading, salient cropping, loudness normalisation.

A manifest is JSON Lines, one file a line, written by ``python -m data_prep.manifest``::

    {"path": "/abs/a.wav", "duration": 3.2, "sample_rate": 16000, "channels": 1,
     "frames": 51200, "loudness": -24.1, "peak": 0.71, "group": "speaker1"}

A crop is float32 ``[C, T]`` at the model's rate and channel layout, with
``T = round(segment_seconds * sample_rate)``:

- A file at another rate is resampled; its channels are mapped to the model's: a mono
  model gets the mean of a file's channels, a stereo model gets a mono file in both
  channels alike (a centred source, as a mono file sounds on two speakers), and any
  other mismatch (5.1 for a stereo model) is a CodecError.

- Only the frames a crop needs are decoded (at the file's own rate, plus a few frames
  of context each side so the resampler's edges fall outside the crop).
- Files are drawn in proportion to their duration, so every second of audio in a
  manifest is equally likely; several manifests mix by weight.
- Salient crops: a crop whose level, RMS in dBFS *after* normalisation (the level the
  model will see), is under ``salient_min_db`` is drawn again at a new position in the
  same file, at most ``salient_retries`` times; the loudest try is kept.
- Loudness normalisation: each crop is scaled by the gain that brings its source
  file's integrated loudness (from the manifest) to ``target_lufs``, limited so the
  crop's peak stays at or under 0.99: nothing clips. Quiet passages stay quieter than
  loud ones. When the crop's channels are mapped (stereo downmixed to mono), the
  file's loudness is corrected by the change in summed channel power measured on the
  crop, so crops land at the target in the model's layout (see :func:`read_crop`).
  ``target_lufs=None`` leaves levels as recorded.
- A file shorter than a crop is zero-padded at the end.
- A crop that cannot be read (the file is gone, damaged, changed) or holds NaN or
  infinite samples is replaced by another draw. Each file's bad draws are counted
  (:attr:`Manifest.bad_draws`, shared with DataLoader workers) and the first one is
  reported as a :class:`DataWarning` naming the file; only ``MAX_BAD_DRAWS`` bad draws
  in a row, for one crop, stop the run.

Every crop is a pure function of (seed, index): a ``torch.Generator`` is seeded from
both, so ``TrainCrops[i]`` is the same crop on every call, in any DataLoader worker, and
a resumed run continues the data stream by starting at index ``step * batch_size``.
The datasets hold no open files and no generators between calls (safe across fork), and
keep the manifest in numpy columns rather than Python objects, so forked workers do not
copy it page by page through reference counting (PyTorch issue 13246).
"""
from __future__ import annotations

import json
import math
import os
import warnings
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from codec.audio import loudness_gain, read_audio, resample, to_channels
from codec.config import DEFAULT_TARGET_LUFS, DataConfig
from codec.errors import CodecError

# One manifest line: field -> accepted types.
MANIFEST_FIELDS = {
    "path": (str,), "duration": (int, float), "sample_rate": (int,), "channels": (int,),
    "frames": (int,), "loudness": (int, float), "peak": (int, float), "group": (str,),
}
# Peak a normalised crop may reach.
MAX_PEAK = 0.99
# Source frames read beyond each side of a crop that is resampled: torchaudio's
# windowed-sinc kernel reaches about lowpass_filter_width (6) input samples per side,
# scaled by the rate ratio when downsampling.
RESAMPLE_CONTEXT = 16
# Length of the training stream; the sampler, not the dataset, decides the order.
STREAM_LENGTH = 10 ** 9
# How TrainCrops picks files within a manifest (see its docstring).
BALANCES = ("duration", "kind")

# Bad draws in a row (unreadable or non-finite crops) after which a crop gives up: far
# more than a manifest with some bad files needs, few enough to stop soon when all are.
MAX_BAD_DRAWS = 50


class DataWarning(UserWarning):
    """A training file that was skipped (unreadable, or not finite)."""


class Strings:
    """Strings packed in one UTF-8 byte array with offsets: no Python object per item.

    A numpy ``str`` array would pad every path to the longest (4 bytes a character).
    """

    def __init__(self, items: Sequence[str]):
        encoded = [item.encode("utf-8") for item in items]
        self.offsets = np.cumsum([0] + [len(item) for item in encoded], dtype=np.int64)
        self.data = np.frombuffer(b"".join(encoded), dtype=np.uint8)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, index: int) -> str:
        return self.data[self.offsets[index]:self.offsets[index + 1]].tobytes().decode("utf-8")


class Manifest:
    """The files of one manifest as numpy columns (paths absolute)."""

    def __init__(self, path: str | Path):
        self.source = str(path)
        lines = read_manifest(path)
        self.paths = Strings([line["path"] for line in lines])
        self.sample_rates = np.array([line["sample_rate"] for line in lines], dtype=np.int64)
        self.frames = np.array([line["frames"] for line in lines], dtype=np.int64)
        self.loudness = np.array([line["loudness"] for line in lines], dtype=np.float64)
        self.groups = Strings([line["group"] for line in lines])
        self.durations = self.frames / self.sample_rates
        self.cumulative = torch.from_numpy(np.cumsum(self.durations))
        # Bad draws per file, in shared memory: forked DataLoader workers count into it.
        self.bad_draws = torch.zeros(len(lines), dtype=torch.int32).share_memory_()

    def kinds(self) -> list[str]:
        """Each file's kind: the top-level folder of its group (``speech/alice`` ->
        ``speech``)."""
        return [self.groups[row].split("/")[0] for row in range(len(self))]

    def balanced_cumulative(self) -> torch.Tensor:
        """Cumulative sampling weights that give every kind the same share of crops (by
        duration within a kind), however many hours each kind has."""
        kinds = self.kinds()
        totals: dict[str, float] = {}
        for kind, seconds in zip(kinds, self.durations, strict=True):
            totals[kind] = totals.get(kind, 0.0) + float(seconds)
        weights = np.array([seconds / totals[kind] for kind, seconds in
                            zip(kinds, self.durations, strict=True)])
        return torch.from_numpy(np.cumsum(weights))

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def hours(self) -> float:
        return float(self.durations.sum() / 3600)


def read_manifest(path: str | Path, fields: Sequence[str] = tuple(MANIFEST_FIELDS)) -> list[dict]:
    """The checked lines of a manifest, as dicts holding at least ``fields`` (of
    :data:`MANIFEST_FIELDS`, each of its type). ``path`` is made absolute: a relative
    path is taken from the manifest's folder."""
    path = Path(path)
    if not path.is_file():
        raise CodecError(f"manifest not found: {path} (make one with "
                         f"`python -m data_prep.manifest AUDIO_DIR -o OUT_DIR`)")
    lines = []
    with open(path, encoding="utf-8") as handle:
        for number, text in enumerate(handle, start=1):
            if text.strip():
                lines.append(_check_line(text, f"{path}:{number}", fields))
    if not lines:
        raise CodecError(f"manifest {path} lists no files")
    base = path.resolve().parent
    for line in lines:
        line["path"] = str(base / line["path"])
    return lines


def _check_line(text: str, where: str, fields: Sequence[str]) -> dict:
    try:
        line = json.loads(text)
    except json.JSONDecodeError as error:
        raise CodecError(f"{where}: not a JSON line ({error.msg})") from None
    if not isinstance(line, dict):
        raise CodecError(f"{where}: expected a JSON object")
    missing = [name for name in fields if name not in line]
    if missing:
        raise CodecError(f"{where}: missing field(s) {missing}")
    for name in fields:
        value, types = line[name], MANIFEST_FIELDS[name]
        if isinstance(value, bool) or not isinstance(value, types):
            raise CodecError(f"{where}: field {name!r} should be "
                             f"{' or '.join(t.__name__ for t in types)}, got {value!r}")
    if any(line[name] <= 0 for name in ("sample_rate", "frames") if name in fields):
        raise CodecError(f"{where}: sample_rate and frames must be positive")
    if "loudness" in fields and not math.isfinite(line["loudness"]):
        raise CodecError(f"{where}: loudness must be finite, got {line['loudness']}")
    return line


class _Crops(Dataset):
    """Shared crop machinery; subclasses decide which file and which generator."""

    def __init__(self, sample_rate: int, channels: int, segment_seconds: float,
                 target_lufs: Optional[float], salient_min_db: float, salient_retries: int,
                 seed: int):
        if segment_seconds <= 0:
            raise CodecError(f"segment_seconds must be positive, got {segment_seconds}")
        if salient_retries < 0:
            raise CodecError(f"salient_retries must be >= 0, got {salient_retries}")
        self.sample_rate = sample_rate
        self.channels = channels
        self.length = round(segment_seconds * sample_rate)
        self.target_lufs = target_lufs
        self.salient_min_db = salient_min_db
        self.salient_retries = salient_retries
        self.seed = seed

    def _crop(self, manifest: Manifest, row: int, generator: torch.Generator) -> torch.Tensor:
        """The most salient of up to 1 + salient_retries crops of one file, ``[C, T]``."""
        best, best_db = None, -math.inf
        for _ in range(1 + self.salient_retries):
            crop = self._normalised_crop(manifest, row, generator)
            level = rms_db(crop)
            if level > best_db or best is None:
                best, best_db = crop, level
            if level >= self.salient_min_db:
                break
        return best

    def _usable_crop(self, manifest: Manifest, row: int,
                     generator: torch.Generator) -> Optional[torch.Tensor]:
        """:meth:`_crop`, or None when the file cannot be read or the crop is not finite
        (counted in ``manifest.bad_draws``; the file's first bad draw is reported)."""
        try:
            crop = self._crop(manifest, row, generator)
        except CodecError as error:
            problem = str(error)
        else:
            if bool(torch.isfinite(crop).all()):
                return crop
            problem = f"{manifest.paths[row]}: NaN or infinite samples"
        first = int(manifest.bad_draws[row]) == 0
        manifest.bad_draws[row] += 1
        if first:
            warnings.warn(f"training data: {problem}; drawing other crops instead "
                          f"(reported once per file)", DataWarning, stacklevel=2)
        return None

    def _no_usable_crop(self, manifests: Sequence[Manifest]) -> CodecError:
        bad = [m.paths[row] for m in manifests for row in torch.nonzero(m.bad_draws).flatten()]
        return CodecError(f"no usable training crop in {MAX_BAD_DRAWS} draws in a row; "
                          f"{len(bad)} file(s) could not be used, e.g. {', '.join(bad[:3])}")

    def _normalised_crop(self, manifest: Manifest, row: int,
                         generator: torch.Generator) -> torch.Tensor:
        rate, frames = int(manifest.sample_rates[row]), int(manifest.frames[row])
        needed = math.ceil(self.length * rate / self.sample_rate)
        spare = frames - needed
        start = int(torch.randint(0, spare + 1, (1,), generator=generator)) if spare > 0 else 0
        crop, layout_db = read_crop(manifest.paths[row], start, rate, frames,
                                    self.length, self.sample_rate, self.channels)
        if self.target_lufs is None:
            return crop
        peak_value = float(crop.abs().max()) if crop.numel() else 0.0
        file_lufs = float(manifest.loudness[row]) + layout_db
        return crop * loudness_gain(file_lufs, self.target_lufs, peak_value, MAX_PEAK)


class TrainCrops(_Crops):
    """An endless, index-addressed stream of random crops from one or more manifests.

    ``weights`` mixes the manifests (one weight each; empty: in proportion to their
    hours, as if they were one manifest). Within a manifest, ``balance`` picks files in
    proportion to their duration (``"duration"``) or gives each kind of audio (the
    top-level folder of a file's group: speech, music ...) the same share (``"kind"``),
    so that an hour of music beside twelve minutes of speech does not teach mostly music.
    ``__getitem__(index)`` returns float32 ``[C, T]``, the same for the same (seed, index).
    """

    def __init__(self, manifests: Sequence[str | Path], sample_rate: int, channels: int,
                 segment_seconds: float = 1.0, weights: Sequence[float] = (),
                 target_lufs: Optional[float] = DEFAULT_TARGET_LUFS, salient_min_db: float = -50.0,
                 salient_retries: int = 5, seed: int = 0, length: int = STREAM_LENGTH,
                 balance: str = "duration"):
        super().__init__(sample_rate, channels, segment_seconds, target_lufs, salient_min_db,
                         salient_retries, seed)
        if not manifests:
            raise CodecError("no training manifest given (data.train is empty)")
        self.manifests = [Manifest(path) for path in manifests]
        self.weights = _mixing_weights(weights, self.manifests)
        self.stream_length = length
        if balance not in BALANCES:
            raise CodecError(f"unknown data.balance {balance!r}; choices: {list(BALANCES)}")
        self.cumulatives = [m.cumulative if balance == "duration" else m.balanced_cumulative()
                            for m in self.manifests]

    def __len__(self) -> int:
        return self.stream_length

    def __getitem__(self, index: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(_mix_seed(self.seed, index, salt=1))
        for _ in range(MAX_BAD_DRAWS):
            which = int(torch.multinomial(self.weights, 1, generator=generator))
            manifest, cumulative = self.manifests[which], self.cumulatives[which]
            position = torch.rand(1, generator=generator, dtype=torch.float64)
            position = position * cumulative[-1]
            row = min(int(torch.searchsorted(cumulative, position, right=True)),
                      len(manifest) - 1)
            crop = self._usable_crop(manifest, row, generator)
            if crop is not None:
                return crop
        raise self._no_usable_crop(self.manifests)

    @property
    def hours(self) -> float:
        return sum(manifest.hours for manifest in self.manifests)

    @property
    def bad_draws(self) -> int:
        """Crops replaced so far because their file was unreadable or not finite."""
        return sum(int(manifest.bad_draws.sum()) for manifest in self.manifests)


class ValidCrops(_Crops):
    """A fixed list of ``count`` crops of a manifest, identical across runs and steps.

    Crops go round the groups (speakers, tracks) in a seeded order, one file from each
    in turn, so a few crops already cover many groups.
    """

    def __init__(self, manifest: str | Path, sample_rate: int, channels: int, count: int = 32,
                 segment_seconds: float = 1.0, target_lufs: Optional[float] = DEFAULT_TARGET_LUFS,
                 salient_min_db: float = -50.0, salient_retries: int = 5, seed: int = 0):
        super().__init__(sample_rate, channels, segment_seconds, target_lufs, salient_min_db,
                         salient_retries, seed)
        if count <= 0:
            raise CodecError(f"the number of validation crops must be positive, got {count}")
        self.manifest = Manifest(manifest)
        self.count = count
        self.rows = _round_robin_by_group(self.manifest.groups, seed)

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> torch.Tensor:
        if not 0 <= index < self.count:
            raise IndexError(f"validation crop {index} of {self.count}")
        generator = torch.Generator().manual_seed(_mix_seed(self.seed, index, salt=2))
        for attempt in range(MAX_BAD_DRAWS):  # a bad file gives way to the next in turn
            row = int(self.rows[(index + attempt) % len(self.rows)])
            crop = self._usable_crop(self.manifest, row, generator)
            if crop is not None:
                return crop
        raise self._no_usable_crop([self.manifest])


def build_datasets(data: DataConfig, sample_rate: int, channels: int,
                   seed: int) -> tuple[TrainCrops, Optional[ValidCrops]]:
    """The training stream and the validation crops a DataConfig describes.

    The validation set is None when ``data.valid`` is empty.
    """
    common = dict(segment_seconds=data.segment_seconds, target_lufs=data.target_lufs,
                  salient_min_db=data.salient_min_db, salient_retries=data.salient_retries,
                  seed=seed)
    train = TrainCrops(data.train, sample_rate, channels, weights=data.train_weights,
                       balance=data.balance, **common)
    valid = (ValidCrops(data.valid, sample_rate, channels, count=data.valid_crops, **common)
             if data.valid else None)
    return train, valid


def read_crop(path: str, start: int, rate: int, frames: int, length: int, sample_rate: int,
              channels: int) -> tuple[torch.Tensor, float]:
    """``length`` samples at ``sample_rate`` from frame ``start`` of a file at ``rate``
    holding ``frames`` frames, as float32 ``[channels, length]`` (zero-padded at the end),
    and the change in dB of the summed channel power that the channel mapping made.

    BS.1770 sums the power of the channels, so the mapping changes loudness: a mono
    downmix of an uncorrelated stereo pair is 6 dB below the pair, of identical channels
    3 dB; the caller adds this change to the file's loudness so that crops land at the
    target in the model's layout. Only the frames the crop covers are decoded, plus
    RESAMPLE_CONTEXT frames each side when the rates differ.
    """
    needed = math.ceil(length * rate / sample_rate)
    context = 0 if rate == sample_rate else RESAMPLE_CONTEXT * max(1, math.ceil(rate / sample_rate))
    first = max(0, start - context)
    stop = min(frames, start + needed + context)
    try:
        audio, actual_rate = read_audio(path, first, max(stop - first, 0))
    except CodecError:
        if not os.path.exists(path):
            raise CodecError(f"{path}: listed in a manifest but no longer exists "
                             f"(rebuild the manifest)") from None
        raise
    if actual_rate != rate:
        raise CodecError(f"{path}: sample rate is {actual_rate} Hz, the manifest says {rate} "
                         f"(the file changed; rebuild the manifest)")
    mapped = to_channels(audio, channels)
    layout_db = _power_db(mapped) - _power_db(audio) if mapped.shape[0] != audio.shape[0] else 0.0
    audio = resample(mapped, rate, sample_rate)
    skip = round((start - first) * sample_rate / rate)
    audio = audio[:, skip:skip + length]
    if audio.shape[1] < length:
        audio = torch.nn.functional.pad(audio, (0, length - audio.shape[1]))
    return audio.contiguous(), (layout_db if math.isfinite(layout_db) else 0.0)


def _power_db(audio: torch.Tensor) -> float:
    """Summed mean-square power of the channels of ``[C, T]``, in dB."""
    power = float(audio.double().square().mean(dim=1).sum()) if audio.numel() else 0.0
    return 10 * math.log10(power) if power > 0 else -math.inf


def rms_db(audio: torch.Tensor) -> float:
    """Root-mean-square level in dB relative to full scale; -inf for silence."""
    mean_square = float(audio.double().square().mean()) if audio.numel() else 0.0
    return 10 * math.log10(mean_square) if mean_square > 0 else -math.inf


def _mixing_weights(weights: Sequence[float], manifests: list[Manifest]) -> torch.Tensor:
    if not weights:
        return torch.tensor([manifest.hours for manifest in manifests], dtype=torch.float64)
    if len(weights) != len(manifests):
        raise CodecError(f"{len(weights)} mixing weight(s) for {len(manifests)} training "
                         f"manifest(s); give one weight per manifest or none")
    if any(not math.isfinite(w) or w < 0 for w in weights) or sum(weights) <= 0:
        raise CodecError(f"mixing weights must be >= 0 with a positive sum, got {list(weights)}")
    return torch.tensor(list(weights), dtype=torch.float64)


def _mix_seed(seed: int, index: int, salt: int) -> int:
    """A 63-bit generator seed from (seed, index, salt), well spread for nearby inputs."""
    value = (seed * 0x9E3779B97F4A7C15 + index * 0xBF58476D1CE4E5B9 + salt) % 2 ** 64
    value ^= value >> 31
    value = (value * 0x94D049BB133111EB) % 2 ** 64
    return (value ^ (value >> 29)) % 2 ** 63


def _round_robin_by_group(groups: "Strings", seed: int) -> np.ndarray:
    """Row numbers in a seeded order that takes one file from each group in turn."""
    generator = torch.Generator().manual_seed(_mix_seed(seed, 0, salt=3))
    by_group: dict[str, list[int]] = {}
    for row in range(len(groups)):
        name = groups[row]
        by_group.setdefault(name, []).append(row)
    names = sorted(by_group)
    members = []
    for position in torch.randperm(len(names), generator=generator).tolist():
        rows = by_group[names[position]]
        members.append([rows[i] for i in torch.randperm(len(rows), generator=generator).tolist()])
    order = []
    for turn in range(max(len(rows) for rows in members)):
        order.extend(rows[turn] for rows in members if turn < len(rows))
    return np.array(order, dtype=np.int64)
