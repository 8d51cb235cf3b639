"""Real voices that the demo corpus leaves out: a second validation set of speech.

    python -m data_prep.held_out_voices OUT_DIR [--seconds 40] [--seed 0]
        [--install-audio true]

The demo corpus takes its speech from klettres-data and from the English, French and
Italian asterisk-core-sounds. Debian has more speakers that it never hears:

- telephone band (8 kHz, nothing above 4 kHz: they judge the lower band that PESQ and
  STOI weigh most, not the upper): the Russian voice of asterisk-core-sounds-ru-wav
  (PCM), and the French and Colombian Spanish prompts of asterisk-prompt-fr-armelle and
  asterisk-prompt-es-co (GSM 6.10, coded once already);
- wide band (44.1 kHz): the English, German and Greek voices of ktuberling-data, two in
  languages the corpus trains on (klettres-data has English and German, from other
  speakers) and one in a language it has none of.

A model trained on the corpus has heard none of them, so scoring it on them says whether
a change helps more voices than the corpus's validation speakers.

Writes OUT_DIR/speech/VOICE/VOICE_NNN.wav (each voice's recordings in a seeded order,
joined with short silences as the corpus joins them, ``--seconds`` of each), and the
manifests for ``eval.evaluate --data``: OUT_DIR/voices.jsonl of them all,
OUT_DIR/telephone.jsonl and OUT_DIR/wideband.jsonl of each band's voices.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

import soundfile as sf

from data_prep import debian
from data_prep.demo_corpus import SAMPLE_RATE, Report, Voice, _voice_clips
from data_prep.manifest import find_files, manifest_line, measure_all, write_jsonl
from data_prep.probe import Measured
from data_prep.split import group_of

SOUNDS = Path("/usr/share/asterisk/sounds")
KTUBERLING = Path("/usr/share/ktuberling/sounds")
BANDS = ("telephone", "wideband")

# Voice name -> (Debian package, where its files lie: root and folder, their pattern, band).
VOICES = {
    "asterisk-IvrvoiceRU": ("asterisk-core-sounds-ru-wav", "asterisk", "ru_RU_f_IvrvoiceRU",
                            "*.wav", "telephone"),
    "asterisk-armelle": ("asterisk-prompt-fr-armelle", "asterisk", "fr", "*.gsm", "telephone"),
    "asterisk-es-co": ("asterisk-prompt-es-co", "asterisk", "es", "*.gsm", "telephone"),
    "ktuberling-en": ("ktuberling-data", "ktuberling", "en", "*.ogg", "wideband"),
    "ktuberling-de": ("ktuberling-data", "ktuberling", "de", "*.ogg", "wideband"),
    "ktuberling-el": ("ktuberling-data", "ktuberling", "el", "*.ogg", "wideband"),
}


def default_roots() -> dict[str, Path]:
    return {"asterisk": SOUNDS, "ktuberling": KTUBERLING}


def write_clips(out_dir: Path, seconds: float, seed: int,
                roots: Optional[dict[str, Path]] = None) -> list[str]:
    """Write each installed voice's clips under ``out_dir/speech`` (the voices' folders
    under ``roots``, :func:`default_roots` by default); the notes of what was missing or
    left out."""
    roots = default_roots() if roots is None else roots
    notes = []
    for name, (package, root, folder, pattern, _) in VOICES.items():
        files = sorted((roots[root] / folder).glob(pattern))
        if not files:
            notes.append(f"{name}: no {pattern} in {roots[root] / folder} (package {package})")
            continue
        report = Report()
        voice = Voice(name, package, files, "")
        for index, clip in enumerate(_voice_clips(voice, seed, seconds, report)):
            path = out_dir / "speech" / name / f"{name}_{index:03d}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, clip[0].numpy(), SAMPLE_RATE, subtype="PCM_16")
        notes += report.notes
    return notes


def write_manifest(out_dir: Path) -> int:
    """``out_dir/voices.jsonl`` of every clip under ``out_dir/speech``, and a manifest per
    band of its voices' clips (none for a band with no voice installed); the line count."""
    candidates = find_files([out_dir])
    measured = measure_all([c.path for c in candidates], 0.5, 1)
    lines = [manifest_line(candidate, result, group_of(candidate.relative))
             for candidate, result in zip(candidates, measured, strict=True)
             if isinstance(result, Measured)]
    write_jsonl(out_dir / "voices.jsonl", lines)
    for band in BANDS:
        members = [line for line in lines if _band_of(line["group"]) == band]
        if members:
            write_jsonl(out_dir / f"{band}.jsonl", members)
    return len(lines)


def _band_of(group: str) -> str | None:
    """The band of a manifest group ``speech/VOICE``."""
    voice = VOICES.get(group.split("/")[-1])
    return None if voice is None else voice[4]


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m data_prep.held_out_voices",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", metavar="OUT_DIR", help="folder for the clips and voices.jsonl")
    parser.add_argument("--seconds", type=float, default=40.0,
                        help="seconds of each voice (default 40)")
    parser.add_argument("--seed", type=int, default=0, help="order of the recordings (default 0)")
    parser.add_argument("--install-audio", choices=("true", "false"), default="true",
                        help="install the voices' Debian packages when missing (default true)")
    args = parser.parse_args(argv)
    if args.install_audio == "true":
        debian.install_missing(sorted({voice[0] for voice in VOICES.values()}),
                               "held-out voices")
    out_dir = Path(args.out_dir)
    notes = write_clips(out_dir, args.seconds, args.seed)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    count = write_manifest(out_dir) if (out_dir / "speech").is_dir() else 0
    if count == 0:
        print(f"error: no held-out voice is installed ({', '.join(VOICES)})", file=sys.stderr)
        return 1
    print(f"wrote {count} clips and {out_dir / 'voices.jsonl'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
