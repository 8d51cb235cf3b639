import json
import shutil

import numpy as np
import pytest
import soundfile as sf

from codec.errors import CodecError
from data_prep import demo_corpus, manifest, synth


def corpus_files(root):
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*.wav"))


def test_synthetic_corpus_is_made_once_and_splits_into_groups(tmp_path):
    out = tmp_path / "corpus"
    report = demo_corpus.build(out, minutes=0.5, synthetic_only=True, progress=False)
    files = corpus_files(out)
    assert report.files == len(files) == 8  # 4 groups (the minimum) of 2 clips
    assert set(report.seconds) == {"synthetic"}
    assert report.seconds["synthetic"] == pytest.approx(30.0, abs=0.1)
    info = sf.info(str(out / files[0]))
    assert (info.samplerate, info.channels) == (demo_corpus.SAMPLE_RATE, 1)
    marker = json.loads((out / demo_corpus.MARKER).read_text())
    assert marker["synthetic_only"] is True and marker["files"] == 8
    assert not list(tmp_path.glob(".corpus.partial-*"))  # the work folder was moved

    stamp = (out / files[0]).stat().st_mtime_ns
    assert demo_corpus.build(out, minutes=0.5, synthetic_only=True, progress=False) is None
    assert (out / files[0]).stat().st_mtime_ns == stamp
    with pytest.raises(CodecError, match="made with"):
        demo_corpus.build(out, minutes=1.0, synthetic_only=True, progress=False)

    summary = manifest.build([out], tmp_path / "manifests")
    assert summary["skipped"] == {}
    assert {s: row["groups"] for s, row in summary["splits"].items()} == {
        "train": 2, "valid": 1, "test": 1}


def test_synthetic_corpus_is_the_same_for_the_same_seed(tmp_path):
    demo_corpus.build(tmp_path / "a", minutes=0.2, synthetic_only=True, progress=False)
    demo_corpus.build(tmp_path / "b", minutes=0.2, synthetic_only=True, progress=False)
    for name in corpus_files(tmp_path / "a"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_a_folder_holding_other_files_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(CodecError, match="not an empty folder"):
        demo_corpus.build(tmp_path, minutes=0.2, synthetic_only=True, progress=False)


def test_synthetic_clips_are_seeded_bounded_and_audible():
    palette = synth.Palette.draw(np.random.default_rng(1))
    first = synth.clip(palette, 2.0, 16000, np.random.default_rng(2))
    again = synth.clip(palette, 2.0, 16000, np.random.default_rng(2))
    assert first.shape == (32000,) and np.array_equal(first, again)
    assert 0.3 <= np.abs(first).max() <= 0.9
    assert np.sqrt(np.mean(first ** 2)) > 1e-3


@pytest.mark.skipif(not shutil.which("espeak-ng"), reason="espeak-ng is not installed")
def test_espeak_speech_is_24k_mono_and_not_silent():
    audio = demo_corpus._espeak("en-us+f2", "Seven thin cats slept.", 160, 50)
    assert audio.shape[0] == 1 and audio.shape[1] > 0.5 * demo_corpus.SAMPLE_RATE
    assert float(audio.abs().max()) > 0.05


def test_command_line_prints_a_summary_and_then_nothing_to_do(tmp_path, capsys):
    arguments = [str(tmp_path / "c"), "--minutes", "0.2", "--synthetic-only"]
    assert demo_corpus.main(arguments) == 0
    assert "synthetic 0.2 min" in capsys.readouterr().out
    assert demo_corpus.main(arguments) == 0
    assert "already present" in capsys.readouterr().out


def _fake_voices(root):
    """A klettres-like and an asterisk-like tree of short tone recordings."""
    rate = 8000
    tone = (0.3 * np.sin(np.arange(int(1.5 * rate)) * 0.3)).astype(np.float32)
    for path in ["klettres/en/alpha/a.ogg", "klettres/en/syllab/ba.ogg", "klettres/fr/alpha/b.ogg",
                 "asterisk/en_US_f_Allison/digits/1.wav", "asterisk/it_IT_f_Allison/2.wav",
                 "asterisk/fr_CA_f_June/3.wav", "asterisk/ru_RU_f_IvrVoice/4.wav"]:
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(root / path), tone, rate)
    return root / "klettres", root / "asterisk"


def test_real_voices_are_one_group_per_speaker_across_languages(tmp_path):
    """Asterisk languages the corpus does not install (ru here) are left out, so the
    corpus is the same on every machine that has its packages."""
    assert demo_corpus.ASTERISK_LANGUAGES == {"en", "fr", "it"}
    voices = demo_corpus.find_voices(*_fake_voices(tmp_path))
    assert {v.group: len(v.files) for v in voices} == {
        "klettres-en": 2, "klettres-fr": 1, "asterisk-Allison": 2, "asterisk-June": 1}
    allison = next(v for v in voices if v.group == "asterisk-Allison")
    assert allison.licence == "/usr/share/doc/asterisk-core-sounds-en-wav/copyright"


def test_a_speakers_recordings_are_joined_into_clips_with_gaps(tmp_path, monkeypatch):
    monkeypatch.setattr(demo_corpus, "CLIP_SECONDS", 2.5)
    voices = demo_corpus.find_voices(*_fake_voices(tmp_path))
    allison = next(v for v in voices if v.group == "asterisk-Allison")
    clips = list(demo_corpus._voice_clips(allison, 0, 60.0, demo_corpus.Report()))
    gap = demo_corpus.GAP_SECONDS
    assert [c.shape[-1] / demo_corpus.SAMPLE_RATE for c in clips] == [
        pytest.approx(3.0 + gap, abs=1e-3)]


def test_a_corpus_of_real_voices_holds_speech_by_speaker_and_is_not_synthetic(tmp_path,
                                                                             monkeypatch):
    voices = demo_corpus.find_voices(*_fake_voices(tmp_path / "src"))
    monkeypatch.setattr(demo_corpus, "find_voices", lambda: voices)
    monkeypatch.setattr(demo_corpus, "MUSIC_PACKAGES", {})
    monkeypatch.setattr(demo_corpus, "SOUND_PACKAGES", {})
    report = demo_corpus.build(tmp_path / "c", minutes=0.2, progress=False)
    assert set(report.seconds) == {"speech"}
    assert {"klettres-data", "asterisk-core-sounds"} <= set(report.sources)
    assert {g.split("/")[1] for g in report.groups} <= {v.group for v in voices}
    assert not demo_corpus.is_synthetic(report)


def test_a_synthetic_corpus_says_so_loudly_with_the_packages_to_install(tmp_path, capsys):
    assert demo_corpus.main([str(tmp_path / "c"), "--minutes", "0.2", "--synthetic-only"]) == 0
    err = capsys.readouterr().err
    assert "WARNING" in err and "synthetic audio only" in err and "klettres-data" in err
    assert demo_corpus.main([str(tmp_path / "c"), "--minutes", "0.2", "--synthetic-only"]) == 0
    assert "WARNING" in capsys.readouterr().err  # and again before every training run


def _fake_stereo_tracks(folder):
    """Two 44.1 kHz stereo tracks of 3 s, their left channel louder than their right."""
    folder.mkdir(parents=True)
    tracks = []
    for number in range(2):
        rng = np.random.default_rng(number)
        path = folder / f"song{number}.ogg"
        audio = 0.1 * rng.standard_normal((3 * 44100, 2)) * np.array([1.0, 0.5])
        sf.write(str(path), audio.astype(np.float32), 44100)
        tracks.append(demo_corpus.Track("drascula-music", path.stem, lambda p=path: str(p),
                                        3.0))
    return tracks


def test_music_only_keeps_the_native_rate_and_channels_in_the_manifest(tmp_path, monkeypatch):
    tracks = _fake_stereo_tracks(tmp_path / "src")

    def find_tracks(packages, report):
        report.sources["drascula-music"] = "/usr/share/doc/drascula-music/copyright"
        return tracks

    monkeypatch.setattr(demo_corpus, "find_tracks", find_tracks)
    out = tmp_path / "c"
    assert demo_corpus.main([str(out), "--minutes", "0.1", "--music-only", "--native"]) == 0
    files = sorted(out.rglob("*.wav"))
    assert files and all(p.relative_to(out).parts[0] == "music" for p in files)
    for path in files:
        info = sf.info(str(path))
        assert (info.samplerate, info.channels) == (44100, 2)
        left, right = sf.read(str(path))[0].T
        assert np.sqrt(np.mean(left ** 2)) > 1.8 * np.sqrt(np.mean(right ** 2))
    marker = json.loads((out / demo_corpus.MARKER).read_text())
    assert marker["music_only"] and marker["native"]
    assert manifest.main([str(out), "-o", str(tmp_path / "m"), "--valid-groups", "0",
                          "--test-groups", "0"]) == 0
    lines = [json.loads(line) for line in (tmp_path / "m" / "train.jsonl").open()]
    assert {(line["sample_rate"], line["channels"]) for line in lines} == {(44100, 2)}
    # Without --native the same music is the 24 kHz mono of the mixed corpus.
    demo_corpus.build(tmp_path / "mono", minutes=0.1, music_only=True, progress=False)
    info = sf.info(str(next((tmp_path / "mono").rglob("*.wav"))))
    assert (info.samplerate, info.channels) == (demo_corpus.SAMPLE_RATE, 1)


def test_corpora_built_before_the_music_options_still_count_as_built(tmp_path):
    out = tmp_path / "c"
    demo_corpus.build(out, minutes=0.1, synthetic_only=True, progress=False)
    marker = json.loads((out / demo_corpus.MARKER).read_text())
    assert "music_only" not in marker and "native" not in marker
    assert demo_corpus.build(out, minutes=0.1, synthetic_only=True, progress=False) is None
    with pytest.raises(CodecError, match="made with"):
        demo_corpus.build(out, minutes=0.1, music_only=True, progress=False)


def test_music_only_without_music_names_the_packages(tmp_path, monkeypatch):
    monkeypatch.setattr(demo_corpus, "find_tracks", lambda packages, report: [])
    with pytest.raises(CodecError, match="drascula-music"):
        demo_corpus.build(tmp_path / "c", minutes=0.1, music_only=True, progress=False)
