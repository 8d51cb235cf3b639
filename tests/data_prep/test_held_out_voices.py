import json

import numpy as np
import soundfile as sf

from data_prep import held_out_voices
from data_prep.demo_corpus import SAMPLE_RATE


def _recordings(folder, count, seconds=3.0, rate=8000):
    folder.mkdir(parents=True)
    t = np.arange(int(seconds * rate)) / rate
    for index in range(count):
        tone = 0.3 * np.sin(2 * np.pi * (150 + 20 * index) * t)
        sf.write(folder / f"prompt{index}.wav", tone, rate)


def test_clips_of_the_installed_voices_and_one_manifest_of_them(tmp_path):
    roots = {"asterisk": tmp_path / "sounds", "ktuberling": tmp_path / "nothing"}
    _recordings(roots["asterisk"] / "ru_RU_f_IvrvoiceRU", 8)  # 3 s each: 2 clips of 3, 1 of 2
    out = tmp_path / "voices"
    notes = held_out_voices.write_clips(out, seconds=40, seed=0, roots=roots)
    # The voices whose packages are absent are named, not silently dropped.
    assert {note.split(":")[0] for note in notes} == set(held_out_voices.VOICES) - {
        "asterisk-IvrvoiceRU"}
    clips = sorted((out / "speech" / "asterisk-IvrvoiceRU").glob("*.wav"))
    assert len(clips) == 3
    info = sf.info(str(clips[0]))
    assert info.samplerate == SAMPLE_RATE and info.duration >= 8.0
    assert 6.0 <= sf.info(str(clips[-1])).duration < 8.0
    assert held_out_voices.write_manifest(out) == 3
    lines = [json.loads(line) for line in (out / "voices.jsonl").read_text().splitlines()]
    assert {line["group"] for line in lines} == {"speech/asterisk-IvrvoiceRU"}
    assert sum(line["duration"] for line in lines) > 20
    # A manifest per band that has a voice: the telephone one holds them all here.
    assert (out / "telephone.jsonl").read_text() == (out / "voices.jsonl").read_text()
    assert not (out / "wideband.jsonl").exists()


def test_each_band_has_its_manifest(tmp_path):
    roots = {"asterisk": tmp_path / "sounds", "ktuberling": tmp_path / "kt"}
    _recordings(roots["asterisk"] / "ru_RU_f_IvrvoiceRU", 4)
    _recordings(roots["ktuberling"] / "el", 4, rate=44100)
    for wav in (roots["ktuberling"] / "el").glob("*.wav"):  # ktuberling's files are Ogg
        audio, rate = sf.read(wav)
        sf.write(wav.with_suffix(".ogg"), audio, rate)
        wav.unlink()
    out = tmp_path / "voices"
    held_out_voices.write_clips(out, seconds=40, seed=0, roots=roots)
    held_out_voices.write_manifest(out)
    groups = {band: {json.loads(line)["group"] for line in
                     (out / f"{band}.jsonl").read_text().splitlines()}
              for band in held_out_voices.BANDS}
    assert groups == {"telephone": {"speech/asterisk-IvrvoiceRU"},
                      "wideband": {"speech/ktuberling-el"}}


def test_no_voice_installed_is_an_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(held_out_voices, "SOUNDS", tmp_path / "nothing")
    monkeypatch.setattr(held_out_voices, "KTUBERLING", tmp_path / "nothing")
    assert held_out_voices.main([str(tmp_path / "out"), "--install-audio", "false"]) == 1
    assert "no held-out voice is installed" in capsys.readouterr().err
