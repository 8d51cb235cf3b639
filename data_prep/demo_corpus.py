"""Build a small corpus of real speech and music from what a Debian machine already has.

    python -m data_prep.demo_corpus OUT_DIR [--minutes 25] [--seed 0] [--synthetic-only]
        [--music-only] [--native]

- Speech from real human voices: the letters and syllables of ``klettres-data`` (one
  speaker per language, 44.1 kHz) and the telephone prompts of the
  ``asterisk-core-sounds-*-wav`` packages (one folder per speaker, 8 kHz), joined into
  clips of about CLIP_SECONDS: ``speech/<speaker>/*.wav``. Without them, synthetic speech
  from ``espeak-ng`` (19 voices over 9 languages, varied sentences, speeds and pitches)
  and festival's ``text2wave`` when present: ``speech/<voice>/*.wav``.
- Music from the Ogg files of the Debian packages drascula-music and nexuiz-music (the
  latter packed in a .pk3 zip) and any decodable file of fb-music-high (its tracker
  module is not something soundfile decodes, and is reported), cut into segments of
  about 25 s: ``music/<package>-<track>/*.wav``.
- Short sounds from sound-theme-freedesktop: ``sounds/freedesktop/*.wav``.
- Without espeak-ng and music (or with ``--synthetic-only``): seeded synthetic audio
  (tones with vibrato, chirps, noise bursts, hits): ``synthetic/set-NN/*.wav``.

Everything is written as 24 kHz mono 16-bit WAV, but with ``--native`` the music keeps
its source's rate and channels (the Debian music is 44.1 kHz stereo), for full-band and
stereo models; ``--music-only`` makes music alone, all ``--minutes`` of it.

A voice, a track or a synthetic set is one folder, that is one group for
``data_prep.manifest``, whose default split by group, stratified by top-level folder,
keeps test speakers and tracks out of training and gives valid and test both speech and
music.

The corpus is built in a hidden folder beside OUT_DIR and moved into place when done,
with a marker file (``.demo_corpus.json``: options, sources and their licence files)
that makes a rerun with the same options do nothing.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Optional, Sequence

import numpy as np
import soundfile as sf
import torch

from codec.audio import AUDIO_SUFFIXES, resample, write_audio
from codec.errors import CodecError
from data_prep import debian, synth
from data_prep.texts import utterance

SAMPLE_RATE = 24000
MARKER = ".demo_corpus.json"
VERSION = 3  # raised whenever the same options build different audio
SEGMENT_SECONDS = 25.0
SECONDS_PER_VOICE = 40.0
SECONDS_PER_TRACK = 50.0
CLIP_SECONDS = 8.0  # real-voice clips: recordings joined with GAP_SECONDS of silence
GAP_SECONDS = 0.25
SOUNDS_SHARE = 0.05
MIN_SOUND_SECONDS = 1.0

# (group name, sentence language, espeak-ng voice), ordered so that any prefix mixes
# languages, accents and voice variants.
ESPEAK_VOICES = (
    ("en-us-m1", "en", "en-us+m1"), ("de-f3", "de", "de+f3"), ("en-gb-f4", "en", "en-gb+f4"),
    ("fr-m2", "fr", "fr-fr+m2"), ("es-f2", "es", "es+f2"),
    ("en-scotland-m2", "en", "en-gb-scotland+m2"), ("it-m6", "it", "it+m6"),
    ("en-us-f2", "en", "en-us+f2"), ("nl-f1", "nl", "nl+f1"), ("pt-br-m7", "pt", "pt-br+m7"),
    ("en-029-f1", "en", "en-029+f1"), ("pl-f4", "pl", "pl+f4"), ("de-m4", "de", "de+m4"),
    ("en-rp-m5", "en", "en-gb-x-rp+m5"), ("sv-m1", "sv", "sv+m1"), ("fr-f5", "fr", "fr-fr+f5"),
    ("en-us-croak", "en", "en-us+croak"), ("es-m3", "es", "es+m3"), ("en-gb-m3", "en", "en-gb+m3"),
)
FESTIVAL_GROUP = "festival-kal"

# Debian music packages: where their files are looked for when dpkg cannot list them.
MUSIC_PACKAGES = {
    "drascula-music": ("/usr/share/scummvm/drascula",),
    "nexuiz-music": ("/usr/share/games/nexuiz",),
    "fb-music-high": ("/usr/share/games/frozen-bubble",),
}
SOUND_PACKAGES = {"sound-theme-freedesktop": ("/usr/share/sounds/freedesktop",)}
# Real human voices: where each package keeps its recordings.
KLETTRES_DIR = Path("/usr/share/klettres")
ASTERISK_DIR = Path("/usr/share/asterisk/sounds")
# Sources of real recordings, as Report.sources names them.
REAL_SOURCES = frozenset({"klettres-data", "asterisk-core-sounds", *MUSIC_PACKAGES})
# What a machine without any of the above can install to get real audio (Debian names).
REAL_AUDIO_PACKAGES = ("klettres-data", "asterisk-core-sounds-en-wav",
                       "asterisk-core-sounds-fr-wav", "asterisk-core-sounds-it-wav",
                       "fb-music-high", "drascula-music", "nexuiz-music",
                       "sound-theme-freedesktop")
# The asterisk languages those packages bring. Only these are used, even where more are
# installed, so that every machine with the packages builds the same corpus.
ASTERISK_LANGUAGES = frozenset(name.split("-")[3] for name in REAL_AUDIO_PACKAGES
                               if name.startswith("asterisk-core-sounds-"))
ARCHIVE_SUFFIXES = {".pk3", ".zip"}


@dataclass
class Track:
    """A decodable file of a package; ``open`` gives a path or an in-memory file."""
    package: str
    name: str
    open: Callable[[], object]
    seconds: float


@dataclass
class Report:
    seconds: dict[str, float] = field(default_factory=dict)  # per top-level folder
    files: int = 0
    groups: set[str] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)  # package -> licence file

    def add(self, folder: Path, out_dir: Path, audio: torch.Tensor,
            rate: int = SAMPLE_RATE) -> None:
        relative = folder.relative_to(out_dir)
        self.seconds[relative.parts[0]] = (self.seconds.get(relative.parts[0], 0.0)
                                           + audio.shape[-1] / rate)
        self.files += 1
        self.groups.add(str(relative))


def build(out_dir: str | Path, minutes: float = 25.0, seed: int = 0,
          synthetic_only: bool = False, progress: bool = True, music_only: bool = False,
          native: bool = False) -> Optional[Report]:
    """Make the corpus in ``out_dir``; None when an identical one is already there.
    ``music_only``: music alone; ``native``: music at its source's rate and channels."""
    out_dir = Path(out_dir)
    if music_only and synthetic_only:
        raise CodecError("--music-only and --synthetic-only exclude each other")
    options = dict(version=VERSION, minutes=minutes, seed=seed, synthetic_only=synthetic_only)
    # Recorded only when set, so that corpora built before these options still match.
    options.update({name: True for name, value in (("music_only", music_only),
                                                   ("native", native)) if value})
    if _already_built(out_dir, options):
        return None
    if out_dir.exists() and any(out_dir.iterdir()):
        raise CodecError(f"{out_dir} exists and is not an empty folder or a demo corpus; "
                         f"choose another folder")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-", dir=out_dir.parent))
    try:
        report = (_fill_music(work, minutes * 60, seed, native, progress) if music_only
                  else _fill(work, minutes * 60, seed, synthetic_only, progress, native))
        marker = dict(options, seconds=report.seconds, files=report.files,
                      groups=len(report.groups), sources=report.sources, notes=report.notes)
        (work / MARKER).write_text(json.dumps(marker, indent=2) + "\n")
        if out_dir.exists():
            out_dir.rmdir()
        os.replace(work, out_dir)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return report


def _already_built(out_dir: Path, options: dict) -> bool:
    marker = out_dir / MARKER
    if not marker.is_file():
        return False
    found = json.loads(marker.read_text())
    made_with = {key: found.get(key) for key in options}
    if made_with != options:
        raise CodecError(f"{out_dir} holds a demo corpus made with {made_with}, not {options}; "
                         f"remove it or choose another folder")
    return True


def _fill_music(work: Path, total_seconds: float, seed: int, native: bool,
                progress: bool) -> Report:
    """Music alone; CodecError naming the packages when none is installed."""
    report = Report()
    tracks = find_tracks(MUSIC_PACKAGES, report)
    if not tracks:
        raise CodecError(f"no music found for --music-only; install the Debian packages "
                         f"{', '.join(MUSIC_PACKAGES)} (or give --install)")
    if progress:
        print(f"music: {total_seconds / 60:.1f} min from {len(tracks)} tracks")
    make_music(work, tracks, total_seconds, seed, report, progress, native)
    return report


def _fill(work: Path, total_seconds: float, seed: int, synthetic_only: bool,
          progress: bool, native: bool = False) -> Report:
    report = Report()
    say = print if progress else (lambda *args, **kwargs: None)
    voices = [] if synthetic_only else find_voices()
    espeak = None if synthetic_only or voices else shutil.which("espeak-ng")
    tracks = [] if synthetic_only else find_tracks(MUSIC_PACKAGES, report)
    if not voices and not espeak and not tracks:
        if not synthetic_only:
            report.notes.append("no real voices, no espeak-ng and no music found: "
                                "synthetic audio only")
        say(f"synthetic audio: {total_seconds / 60:.1f} min")
        make_synthetic(work, total_seconds, seed, report)
        return report
    sounds = find_tracks(SOUND_PACKAGES, report)
    sound_seconds = min(sum(t.seconds for t in sounds if t.seconds >= MIN_SOUND_SECONDS),
                        SOUNDS_SHARE * total_seconds)
    rest = total_seconds - sound_seconds
    has_speech = bool(voices or espeak)
    speech_seconds = rest / 2 if has_speech and tracks else rest if has_speech else 0.0
    if voices:
        say(f"speech: {speech_seconds / 60:.1f} min of real voices")
        make_real_speech(work, voices, speech_seconds, seed, report, progress)
    elif espeak:
        report.notes.append("no real voices found (klettres-data, asterisk-core-sounds-*-wav):"
                            " the speech is synthesised by espeak-ng")
        say(f"speech: {speech_seconds / 60:.1f} min, synthesised")
        make_speech(work, speech_seconds, seed, report, progress)
    if tracks:
        say(f"music: {(rest - speech_seconds) / 60:.1f} min from {len(tracks)} tracks")
        make_music(work, tracks, rest - speech_seconds, seed, report, progress, native)
    if sounds and sound_seconds > 0:
        make_sounds(work, sounds, sound_seconds, report)
    return report


def is_synthetic(report: Report) -> bool:
    """Whether the corpus has no real recording in it."""
    return not set(report.sources) & REAL_SOURCES


# ---------------------------------------------------------------- real voices

@dataclass
class Voice:
    """One speaker's recordings, from one package (whose licence file is ``licence``)."""
    group: str
    package: str
    files: list[Path]
    licence: str


def find_voices(klettres_dir: Path = KLETTRES_DIR,
                asterisk_dir: Path = ASTERISK_DIR) -> list[Voice]:
    """Real human voices installed: one per klettres language and per asterisk speaker
    of ``ASTERISK_LANGUAGES``."""
    voices = []
    if klettres_dir.is_dir():
        for language in sorted(p for p in klettres_dir.iterdir() if p.is_dir()):
            files = sorted(language.rglob("*.ogg"))
            if files:
                voices.append(Voice(f"klettres-{language.name}", "klettres-data", files,
                                    "/usr/share/doc/klettres-data/copyright"))
    by_speaker: dict[str, list[Path]] = {}
    licences: dict[str, str] = {}
    if asterisk_dir.is_dir():
        for folder in sorted(p for p in asterisk_dir.iterdir() if p.is_dir()):
            language = folder.name.split("_")[0]
            if language not in ASTERISK_LANGUAGES:
                continue
            # en_US_f_Allison and it_IT_f_Allison would be one speaker: one group, so
            # that she never lands in two splits.
            speaker = folder.name.rsplit("_", 1)[-1]
            by_speaker.setdefault(speaker, []).extend(sorted(folder.rglob("*.wav")))
            licences.setdefault(speaker, f"/usr/share/doc/asterisk-core-sounds-{language}-wav/"
                                         f"copyright")
    voices += [Voice(f"asterisk-{speaker}", "asterisk-core-sounds", files, licences[speaker])
               for speaker, files in sorted(by_speaker.items()) if files]
    return voices


def make_real_speech(work: Path, voices: list[Voice], seconds: float, seed: int,
                     report: Report, progress: bool) -> None:
    """Clips of about CLIP_SECONDS from each chosen speaker's recordings, seeded order."""
    by_package: dict[str, list[Voice]] = {}
    for voice in voices:
        by_package.setdefault(voice.package, []).append(voice)
    rng = random.Random(seed)
    for members in by_package.values():
        rng.shuffle(members)
    chosen = _take_turns(by_package)
    count = min(len(chosen), max(3, round(seconds / SECONDS_PER_VOICE)))
    for index, voice in enumerate(chosen[:count]):
        folder = work / "speech" / voice.group
        made = 0.0
        for number, clip in enumerate(_voice_clips(voice, seed, seconds / count, report)):
            write_audio(folder / f"{voice.group}_{number:03d}.wav", clip, SAMPLE_RATE)
            report.add(folder, work, clip)
            made += clip.shape[-1] / SAMPLE_RATE
        report.sources[voice.package] = voice.licence
        if progress:
            print(f"  [{index + 1}/{count}] speech/{voice.group}: {made:.0f} s")


def _voice_clips(voice: Voice, seed: int, seconds: float,
                 report: Report) -> Iterator[torch.Tensor]:
    """The speaker's recordings in a seeded order, joined with short silences into clips
    of at least CLIP_SECONDS (the last one at least MIN_SOUND_SECONDS), ``seconds`` in all."""
    files = list(voice.files)
    random.Random(f"{seed}:{voice.group}").shuffle(files)
    gap = torch.zeros(1, int(GAP_SECONDS * SAMPLE_RATE))
    pieces: list[torch.Tensor] = []
    made = length = 0
    for path in files:
        if made >= seconds * SAMPLE_RATE:
            return
        try:
            audio = _decoded(str(path))
        except (sf.LibsndfileError, RuntimeError, OSError) as error:
            report.notes.append(f"{voice.group}: {path.name} left out ({error})")
            continue
        pieces += [audio, gap]
        length += audio.shape[-1] + gap.shape[-1]
        if length >= CLIP_SECONDS * SAMPLE_RATE:
            yield torch.cat(pieces[:-1], dim=-1)
            made, pieces, length = made + length, [], 0
    if length >= MIN_SOUND_SECONDS * SAMPLE_RATE:
        yield torch.cat(pieces[:-1], dim=-1)


def _take_turns(by_source: dict[str, list]) -> list:
    """The members of each source in turn (sources in name order): any prefix mixes them."""
    order = []
    for turn in range(max((len(m) for m in by_source.values()), default=0)):
        order += [m[turn] for _, m in sorted(by_source.items()) if turn < len(m)]
    return order


# ---------------------------------------------------------------- speech

def make_speech(work: Path, seconds: float, seed: int, report: Report, progress: bool) -> None:
    voices: list[tuple[str, str, Optional[str]]] = list(ESPEAK_VOICES)
    if shutil.which("text2wave"):
        voices.insert(4, (FESTIVAL_GROUP, "en", None))  # festival's English diphone voice
        report.sources["festival"] = "/usr/share/doc/festvox-kallpc16k/copyright"
    report.sources["espeak-ng"] = "/usr/share/doc/espeak-ng-data/copyright"
    count = min(len(voices), max(3, round(seconds / SECONDS_PER_VOICE)))
    per_voice = seconds / count
    for index, (group, language, voice) in enumerate(voices[:count]):
        rng = random.Random(f"{seed}:{group}")
        speed, pitch = rng.randint(135, 185), rng.randint(30, 70)
        folder, made, failures = work / "speech" / group, 0.0, 0
        while made < per_voice and failures < 3:
            text = utterance(language, rng)
            try:
                audio = (_festival(text, work) if voice is None else
                         _espeak(voice, text, speed + rng.randint(-15, 15), pitch))
            except (OSError, RuntimeError, subprocess.SubprocessError) as error:
                failures += 1
                report.notes.append(f"speech {group}: {error}")
                continue
            number = len(list(folder.glob("*.wav"))) if folder.exists() else 0
            write_audio(folder / f"{group}_{number:03d}.wav", audio, SAMPLE_RATE)
            report.add(folder, work, audio)
            made += audio.shape[-1] / SAMPLE_RATE
        if progress:
            print(f"  [{index + 1}/{count}] speech/{group}: {made:.0f} s")


def _espeak(voice: str, text: str, speed: int, pitch: int) -> torch.Tensor:
    result = subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch),
                             "--stdout", text], capture_output=True, timeout=60)
    if result.returncode != 0 or len(result.stdout) < 100:
        raise RuntimeError(f"espeak-ng -v {voice} failed: {result.stderr.decode()[:200]}")
    return _decoded(io.BytesIO(result.stdout))


def _festival(text: str, work: Path) -> torch.Tensor:
    with tempfile.NamedTemporaryFile(suffix=".wav", dir=work) as output:
        result = subprocess.run(["text2wave", "-o", output.name], input=text.encode(),
                                capture_output=True, timeout=120)
        if result.returncode != 0:
            raise RuntimeError(f"text2wave failed: {result.stderr.decode()[:200]}")
        return _decoded(output.name)


def _decoded(source, start: int = 0, frames: int = -1) -> torch.Tensor:
    """A file (path or file object) as mono float32 ``[1, T]`` at SAMPLE_RATE."""
    data, rate = sf.read(source, start=start, frames=frames, dtype="float32", always_2d=True)
    mono = torch.from_numpy(np.ascontiguousarray(data.mean(axis=1)))[None]
    return resample(mono, rate, SAMPLE_RATE)


def _native(source, start: int = 0, frames: int = -1) -> tuple[torch.Tensor, int]:
    """A file (path or file object) as float32 ``[C, T]`` at its own rate, and the rate."""
    data, rate = sf.read(source, start=start, frames=frames, dtype="float32", always_2d=True)
    return torch.from_numpy(np.ascontiguousarray(data.T)), rate


# ---------------------------------------------------------------- music and sounds

def find_tracks(packages: dict[str, Sequence[str]], report: Report) -> list[Track]:
    """Decodable audio of the installed ``packages``, sorted, duplicates dropped."""
    tracks, seen = [], set()
    for package, fallback_dirs in packages.items():
        files = _package_files(package, fallback_dirs)
        if not files:
            continue
        found_before = len(tracks)
        for path in files:
            suffix = path.suffix.lower()
            if suffix in AUDIO_SUFFIXES and (path.name, path.stat().st_size) not in seen:
                seen.add((path.name, path.stat().st_size))
                track = _track(package, path.stem, lambda p=path: str(p))
                tracks += [track] if track else []
            elif suffix in ARCHIVE_SUFFIXES:
                try:
                    tracks += _archive_tracks(package, path)
                except (zipfile.BadZipFile, OSError) as error:
                    report.notes.append(f"{package}: cannot open {path.name} ({error})")
            elif suffix in {".xm", ".mod", ".it", ".s3m"}:
                report.notes.append(f"{package}: {path.name} is a tracker module; "
                                    f"soundfile cannot decode it, left out")
        if len(tracks) > found_before:
            report.sources[package] = f"/usr/share/doc/{package}/copyright"
    return tracks


def _package_files(package: str, fallback_dirs: Sequence[str]) -> list[Path]:
    listing = []
    if shutil.which("dpkg"):
        result = subprocess.run(["dpkg", "-L", package], capture_output=True, text=True)
        if result.returncode == 0:
            listing = [Path(line) for line in result.stdout.splitlines()]
    if not listing:
        listing = [p for d in fallback_dirs if os.path.isdir(d) for p in Path(d).rglob("*")]
    return sorted(p for p in listing if p.is_file() and "/doc/" not in str(p))


def _archive_tracks(package: str, path: Path) -> list[Track]:
    tracks = []
    with zipfile.ZipFile(path) as archive:
        for member in sorted(archive.namelist()):
            if Path(member).suffix.lower() in AUDIO_SUFFIXES:
                def opener(archive_path=path, name=member):
                    with zipfile.ZipFile(archive_path) as again:
                        return io.BytesIO(again.read(name))
                track = _track(package, Path(member).stem, opener)
                tracks += [track] if track else []
    return tracks


def _track(package: str, name: str, opener: Callable[[], object]) -> Optional[Track]:
    try:
        info = sf.info(opener())
    except Exception:  # not decodable by soundfile: not a track for us
        return None
    return Track(package, name, opener, info.duration) if info.frames > 0 else None


def make_music(work: Path, tracks: list[Track], seconds: float, seed: int, report: Report,
               progress: bool, native: bool = False) -> None:
    """Segments of SEGMENT_SECONDS spread over each chosen track: 24 kHz mono, or with
    ``native`` at the track's own rate and channels."""
    chosen = _interleaved_tracks(tracks, seed)
    count = min(len(chosen), max(3, round(seconds / SECONDS_PER_TRACK)))
    per_track = seconds / count
    for index, track in enumerate(chosen[:count]):
        pieces = max(1, round(per_track / SEGMENT_SECONDS))
        length = min(track.seconds / pieces, per_track / pieces)
        gap = (track.seconds - pieces * length) / (pieces + 1)
        group = f"{track.package.removesuffix('-music')}-{track.name}"
        folder = work / "music" / group
        source = track.open()
        rate = sf.info(source).samplerate
        for piece in range(pieces):
            if hasattr(source, "seek"):
                source.seek(0)  # an in-memory file is read from its start each time
            start = gap * (piece + 1) + length * piece
            if native:
                audio, _ = _native(source, int(start * rate), int(length * rate))
            else:
                audio = _decoded(source, int(start * rate), int(length * rate))
            written = rate if native else SAMPLE_RATE
            write_audio(folder / f"{track.name}_{piece:02d}.wav", audio, written)
            report.add(folder, work, audio, written)
        if progress:
            print(f"  [{index + 1}/{count}] music/{group}: {pieces} x {length:.0f} s")


def _interleaved_tracks(tracks: list[Track], seed: int) -> list[Track]:
    """Tracks long enough for two segments first, taking packages in turn, seeded order."""
    by_package: dict[str, list[Track]] = {}
    for track in sorted(tracks, key=lambda t: (t.package, t.name)):
        by_package.setdefault(track.package, []).append(track)
    rng = random.Random(seed)
    for members in by_package.values():
        rng.shuffle(members)
        members.sort(key=lambda t: t.seconds < 2 * SEGMENT_SECONDS)  # stable: long ones first
    return sorted(_take_turns(by_package), key=lambda t: t.seconds < 2 * SEGMENT_SECONDS)


def make_sounds(work: Path, sounds: list[Track], seconds: float, report: Report) -> None:
    made = 0.0
    for track in sorted(sounds, key=lambda t: t.name):
        if made >= seconds:
            break
        if track.seconds < MIN_SOUND_SECONDS:
            continue  # clicks and beeps: shorter than the manifest's default minimum
        audio = _decoded(track.open())
        folder = work / "sounds" / track.package.removeprefix("sound-theme-")
        write_audio(folder / f"{track.name}.wav", audio, SAMPLE_RATE)
        report.add(folder, work, audio)
        made += audio.shape[-1] / SAMPLE_RATE


# ---------------------------------------------------------------- synthetic

def make_synthetic(work: Path, seconds: float, seed: int, report: Report) -> None:
    groups = max(4, min(12, round(seconds / 60)))
    files = max(2, round(seconds / groups / 10))
    clip_seconds = seconds / (groups * files)
    for group in range(groups):
        rng = np.random.default_rng([seed, group])
        palette = synth.Palette.draw(rng)
        folder = work / "synthetic" / f"set-{group:02d}"
        for number in range(files):
            audio = torch.from_numpy(synth.clip(palette, clip_seconds, SAMPLE_RATE, rng))[None]
            write_audio(folder / f"clip-{number:02d}.wav", audio, SAMPLE_RATE)
            report.add(folder, work, audio)


# ---------------------------------------------------------------- command line

def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m data_prep.demo_corpus",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", metavar="OUT_DIR")
    parser.add_argument("--minutes", type=float, default=25.0,
                        help="total length to make (default 25)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--synthetic-only", action="store_true",
                        help="make synthetic audio even where speech and music are available")
    parser.add_argument("--music-only", action="store_true",
                        help="make music alone (all --minutes of it)")
    parser.add_argument("--native", action="store_true",
                        help="write the music at its source's rate and channels (44.1 kHz "
                             "stereo for the Debian music) instead of 24 kHz mono")
    parser.add_argument("--install", action="store_true",
                        help="first install the missing Debian packages of real voices and "
                             "music with apt-get, where this process may")
    args = parser.parse_args(argv)
    if not 0 < args.minutes <= 600:
        parser.error("--minutes must be in (0, 600]")
    if args.install and not args.synthetic_only:
        install_real_audio()
    torch.set_num_threads(1)
    started = time.perf_counter()
    try:
        report = build(args.out_dir, args.minutes, args.seed, args.synthetic_only,
                       music_only=args.music_only, native=args.native)
    except CodecError as error:
        print(f"data_prep.demo_corpus: error: {error}", file=sys.stderr)
        return 2
    if report is None:
        print(f"{args.out_dir}: demo corpus already present; nothing to do")
        marker = json.loads((Path(args.out_dir) / MARKER).read_text())
        synthetic = not set(marker.get("sources", {})) & REAL_SOURCES
    else:
        minutes = ", ".join(f"{name} {value / 60:.1f} min" for name, value in
                            sorted(report.seconds.items()))
        print(f"wrote {report.files} files in {len(report.groups)} groups to {args.out_dir}: "
              f"{minutes} ({time.perf_counter() - started:.0f} s)")
        for note in report.notes:
            print(f"note: {note}")
        synthetic = is_synthetic(report)
    if synthetic:
        print(synthetic_warning(args.out_dir), file=sys.stderr)
    return 0


def install_real_audio() -> None:
    """Install the missing packages of REAL_AUDIO_PACKAGES, saying what happens."""
    debian.install_missing(REAL_AUDIO_PACKAGES, "real voices and music")


def synthetic_warning(out_dir: str) -> str:
    """Said before a model is trained on a corpus with no real recording in it."""
    rule = "!" * 78
    return (f"{rule}\nWARNING: {out_dir} holds synthetic audio only (tones, chirps, noise "
            f"bursts).\nA model trained on it learns that, and codes real speech and music "
            f"poorly.\nFor real voices and music install the Debian packages, then remove "
            f"{out_dir} and rerun:\n  sudo apt-get install {' '.join(REAL_AUDIO_PACKAGES)}"
            f"\nor train on your own audio (README: 'Train on your own audio').\n{rule}")


if __name__ == "__main__":
    sys.exit(main())
