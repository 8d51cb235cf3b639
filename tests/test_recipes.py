import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
from omegaconf import OmegaConf

from codec.coding.bitrate import codebooks_for_kbps, coded_kbps
from codec.config import PRESETS, load_config, model_config, to_dict
from codec.network.model import Codec

ROOT = Path(__file__).parents[1]
RECIPES = ROOT / "recipes"
CONFS = sorted(RECIPES.glob("*/conf/*.yaml"))
SCRIPTS = sorted(RECIPES.glob("*/run.sh"))

# A tiny 24 kHz model and a two-step run, for exercising the recipes' stages.
TINY = ("model.preset=tiny model.strides=[2,4,5] model.widths=[8,16,32,64] model.n_q=2 "
        "model.codebook_size=64 model.kmeans_iters=1 data.segment_seconds=0.1 "
        "data.batch_size=2 data.num_workers=0 data.valid_crops=2 train.steps=2 "
        "train.warmup_steps=1 train.log_every=1 train.valid_every=2 train.checkpoint_every=2 "
        "train.threads=1 train.device=cpu train.valid_audio_clips=1 train.valid_kbps=[7.2]")

# The spectral44k preset made small: mid/side stereo at 16 kHz, hop 80 (200 frames/s),
# 2 codebooks of 64 codes (1.2 kbps each; with the band levels, 4.65 kbps).
TINY_STEREO = ("model.sample_rate=16000 model.strides=[80] model.n_fft=160 "
               "model.widths=[16,16] model.latent_dim=8 model.dilations=[1] "
               + TINY.split(" ", 3)[3] + " train.valid_kbps=[4.65]")

# The live preset made small: its architecture, causal, at a test's size.
TINY_LIVE = ("model.widths=[16,16] model.latent_dim=16 model.dilations=[1] "
             + TINY.split(" ", 3)[3])


def _name(path: Path) -> str:
    return f"{path.parent.parent.name}/{path.stem}"


def _leaves(node: dict, prefix: str = "") -> list[tuple[str, object]]:
    out = []
    for key, value in node.items():
        if isinstance(value, dict):
            out += _leaves(value, f"{prefix}{key}.")
        else:
            out.append((f"{prefix}{key}", value))
    return out


def test_every_recipe_has_a_script_and_configs():
    assert {p.parent.name for p in SCRIPTS} >= {"quickstart", "speech24k", "music24k"}
    assert {_name(p) for p in CONFS} >= {"quickstart/quickstart", "speech24k/default",
                                         "speech24k/no_disc", "music24k/default",
                                         "music24k/no_disc"}


def test_base_yaml_is_the_schema_and_leaves_the_model_shape_to_presets():
    node = OmegaConf.to_container(OmegaConf.load(RECIPES / "base.yaml"))
    preset_keys = set().union(*PRESETS.values())
    assert not preset_keys & set(node["model"]), "base.yaml would override every preset"
    for preset in PRESETS:
        config = load_config([RECIPES / "base.yaml"], [f"model.preset={preset}"])
        assert config.model == model_config(preset)
    assert to_dict(load_config([RECIPES / "base.yaml"])) == to_dict(load_config([]))


@pytest.mark.parametrize("conf", [c for c in CONFS if c.parent.parent.name != "music44k_stereo"],
                         ids=_name)
def test_recipe_codes_24khz_at_6kbps_and_validates_down_to_1_5kbps(conf):
    config = load_config([conf])
    model = Codec(config.model)
    assert config.model.sample_rate == 24000
    assert model.bitrate() == 6000
    assert config.model.quantizer_dropout > 0
    # The codebooks (and band levels) codec encode --kbps sends fill each validated rate.
    coding = config.coding
    assert [coded_kbps(model, coding, codebooks_for_kbps(model, coding, k))
            for k in config.train.valid_kbps] == [1.5, 3.0, 6.0]


@pytest.mark.parametrize("conf", [c for c in CONFS
                                  if c.parent.parent.name in ("speech24k", "music24k")],
                         ids=_name)
def test_with_and_without_discriminators(conf):
    config = load_config([conf])
    assert bool(config.train.disc) == (conf.stem != "no_disc")


@pytest.mark.parametrize("conf", CONFS, ids=_name)
def test_recipe_config_holds_only_differences(conf):
    node = OmegaConf.to_container(OmegaConf.load(conf))
    parent = conf.parent / node.pop("base")
    inherited = to_dict(load_config([parent]))
    preset = node.get("model", {}).get("preset")
    if preset:  # what the preset sets is inherited too
        assert preset != inherited["model"]["preset"]
        node["model"].pop("preset")
        inherited = to_dict(load_config([parent], [f"model.preset={preset}"]))
    for key, value in _leaves(node):
        old = OmegaConf.select(OmegaConf.create(inherited), key)
        assert value != old, f"{conf}: {key} repeats the value it inherits ({value})"


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.parent.name)
def test_run_sh_explains_itself_and_rejects_unknown_options(script):
    shown = subprocess.run(["bash", str(script), "--help"], capture_output=True, text=True)
    assert shown.returncode == 0 and "--stage" in shown.stdout and "Stages" in shown.stdout
    wrong = subprocess.run(["bash", str(script), "--stgae", "1"], capture_output=True,
                           text=True)
    assert wrong.returncode == 2 and "unknown option --stgae" in wrong.stderr


def _env() -> dict:
    # The recipes call `python` from PATH: make it this interpreter.
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    return {**os.environ, "PATH": path, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


def _speakers(root: Path) -> Path:
    """Four speaker folders of two short 16 kHz files each (resampled by the crops)."""
    for speaker in range(4):
        folder = root / "audio" / f"spk{speaker}"
        folder.mkdir(parents=True)
        for utterance in range(2):
            t = np.arange(32000) / 16000
            wave = 0.2 * np.sin(2 * np.pi * (150 + 40 * speaker + 10 * utterance) * t)
            soundfile.write(folder / f"u{utterance}.wav", wave.astype(np.float32), 16000)
    return root / "audio"


def test_speech_recipe_prepares_trains_and_resumes(tmp_path):
    audio = _speakers(tmp_path)
    command = ["bash", str(RECIPES / "speech24k" / "run.sh"), str(audio), "--stop-stage", "1",
               "--conf", "no_disc", "--manifests", str(tmp_path / "m"),
               "--exp", str(tmp_path / "exp"), "--overrides", TINY]
    first = subprocess.run(command, capture_output=True, text=True, env=_env(), timeout=300)
    assert first.returncode == 0, first.stderr[-3000:]
    assert (tmp_path / "m" / "test.jsonl").is_file()
    assert (tmp_path / "exp" / "checkpoints" / "step-000002" / "model.safetensors").is_file()
    again = subprocess.run(command, capture_output=True, text=True, env=_env(), timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "already trained to step 2" in again.stdout


def test_quickstart_trains_and_codes_a_test_clip(tmp_path):
    audio = _speakers(tmp_path)
    data = tmp_path / "data"
    prepared = subprocess.run([sys.executable, "-m", "data_prep.manifest", str(audio), "-o",
                               str(data)], capture_output=True, text=True, env=_env())
    assert prepared.returncode == 0, prepared.stderr[-3000:]
    done = subprocess.run(
        ["bash", str(RECIPES / "quickstart" / "run.sh"), "--stage", "1", "--data", str(data),
         "--exp", str(tmp_path / "exp" / "quickstart"), "--overrides", TINY],
        capture_output=True, text=True, env=_env(), timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "SNR" in done.stdout and "RMS ratio" in done.stdout
    assert (tmp_path / "exp" / "quickstart" / ".done").is_file()
    assert "tensorboard --logdir" in done.stdout


def _two_domains(root: Path) -> Path:
    """Music and speech folders of four groups each (one goes to valid, one to test)."""
    for kind, base in (("music", 220), ("speech", 150)):
        for group in range(4):
            folder = root / "audio" / kind / f"{kind}{group}"
            folder.mkdir(parents=True)
            t = np.arange(24000) / 16000
            wave = 0.2 * np.sin(2 * np.pi * (base + 30 * group) * t)
            soundfile.write(folder / "a.wav", wave.astype(np.float32), 16000)
    return root / "audio"


def test_finetune_recipe_compares_before_finetuned_and_scratch(tmp_path):
    audio, data, source = _two_domains(tmp_path), tmp_path / "data", tmp_path / "source"
    steps = [[sys.executable, "-m", "data_prep.manifest", str(audio), "-o", str(data)],
             [sys.executable, "-m", "codec.train",
              str(RECIPES / "quickstart" / "conf" / "quickstart.yaml"), f"run_dir={source}",
              f"data.train=[{data}/train.jsonl]", f"data.valid={data}/valid.jsonl",
              *TINY.split()]]
    for command in steps:
        done = subprocess.run(command, capture_output=True, text=True, env=_env(), timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
    exp = tmp_path / "exp"
    done = subprocess.run(
        ["bash", str(RECIPES / "finetune" / "run.sh"), "--data", str(data), "--source",
         str(source), "--group", "music", "--minutes", "0.05", "--exp", str(exp),
         "--kbps", "7.2", "--overrides", TINY],
        capture_output=True, text=True, env=_env(), timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    test_files = [json.loads(line)["path"] for line in (exp / "data" / "test.jsonl").open()]
    assert test_files and all("/music/" in path for path in test_files)
    meta = json.loads((exp / "finetuned" / "best" / "meta.json").read_text())
    assert meta["init_from"]["path"].startswith(str(source))
    assert json.loads((exp / "scratch" / "best" / "meta.json").read_text())["init_from"] is None
    table = done.stdout[done.stdout.index("model  "):]
    assert all(name in table for name in ("before", "finetuned", "scratch", "SNR"))


def test_causal_cpu_hour_recipe_trains_a_causal_model(tmp_path):
    audio = _speakers(tmp_path)
    exp = tmp_path / "exp"
    done = subprocess.run(
        ["bash", str(RECIPES / "cpu_hour_causal" / "run.sh"), str(audio), "--stop-stage", "1",
         "--minutes", "0.5", "--manifests", str(tmp_path / "m"), "--exp", str(exp),
         "--overrides", TINY_LIVE], capture_output=True, text=True, env=_env(), timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "m" / "test.jsonl").is_file() and (exp / ".done").is_file()
    trained = load_config([exp / "config.yaml"])
    assert trained.model.preset == "live" and trained.model.causal  # the live model
    assert trained.train.late_loss  # cpu_hour's training

    # cpu_hour's stage 3 scores a run on the validation split and on held-out voices
    # (here the validation files again, standing in for the wide-band voices already
    # built; no telephone-band voice), at each rate, with or without Opus.
    voices = tmp_path / "voices"
    voices.mkdir()
    (voices / "wideband.jsonl").write_text((tmp_path / "m" / "valid.jsonl").read_text())
    scored = subprocess.run(
        ["bash", str(RECIPES / "cpu_hour" / "run.sh"), "--stage", "3", "--stop-stage", "3",
         "--manifests", str(tmp_path / "m"), "--exp", str(exp), "--voices", str(voices),
         "--install-audio", "false"],
        capture_output=True, text=True, env=_env(), timeout=300)
    assert scored.returncode == 0, scored.stderr[-3000:]
    assert "stage 3" in scored.stdout and "stage 2" not in scored.stdout
    assert f"no {voices / 'telephone.jsonl'}: skipped" in scored.stdout
    for split in ("valid", "wideband"):
        summary = json.loads((exp / f"eval_{split}" / "summary.json").read_text())
        assert all(s["files"] >= 1 for s in summary["systems"])


def test_stereo_recipe_codes_44khz_stereo_jointly_at_6_and_12kbps():
    config = load_config([RECIPES / "music44k_stereo" / "conf" / "music44k_stereo.yaml"])
    model = Codec(config.model)
    assert (config.model.sample_rate, config.model.channels) == (44100, 2)
    assert config.model.stereo == "ms" and model.frame_rate == 75
    assert model.bitrate() == 12000
    coding = config.coding
    assert [coded_kbps(model, coding, codebooks_for_kbps(model, coding, k))
            for k in config.train.valid_kbps] == [6.0, 12.0]
    # 48 kHz by config, as its comments say: the same frame rate and bitrates.
    config = load_config([RECIPES / "music44k_stereo" / "conf" / "music44k_stereo.yaml"],
                         ["model.sample_rate=48000", "model.strides=[640]",
                          "model.n_fft=1280"])
    model = Codec(config.model)
    assert model.frame_rate == 75 and model.bitrate() == 12000


def _stereo_tracks(root: Path) -> Path:
    """Four track folders of one short 16 kHz stereo file each, panned apart."""
    for track in range(4):
        folder = root / "audio" / "music" / f"track{track}"
        folder.mkdir(parents=True)
        t = np.arange(16000) / 16000
        wave = 0.2 * np.sin(2 * np.pi * (220 + 30 * track) * t)
        soundfile.write(folder / "a.wav", np.stack([wave, 0.5 * wave], axis=1)
                        .astype(np.float32), 16000)
    return root / "audio"


def test_stereo_recipe_trains_and_evaluates_against_opus_at_twice_the_rate(tmp_path):
    audio, exp = _stereo_tracks(tmp_path), tmp_path / "exp"
    done = subprocess.run(
        ["bash", str(RECIPES / "music44k_stereo" / "run.sh"), str(audio), "--minutes", "0.5",
         "--manifests", str(tmp_path / "m"), "--exp", str(exp), "--kbps", "4.65",
         "--install-audio", "false", "--overrides", TINY_STEREO],
        capture_output=True, text=True, env=_env(), timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    line = json.loads((tmp_path / "m" / "train.jsonl").read_text().splitlines()[0])
    assert (line["sample_rate"], line["channels"]) == (16000, 2)
    trained = load_config([exp / "config.yaml"])
    assert trained.model.preset == "spectral44k" and trained.model.channels == 2
    assert "ILD error dB" in done.stdout and "RMS ratio L" in done.stdout
    summary = json.loads((exp / "eval" / "summary.json").read_text())
    keys = [s["key"] for s in summary["systems"]]
    if shutil.which("opusenc"):
        assert {"opus-4.65kbps", "opus-9.3kbps"} <= set(keys)
