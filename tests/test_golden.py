"""Pinned output: ``codec encode`` and ``codec decode`` of a fixed signal with a fixed
small model give exactly these bitstreams and, to within float rounding, these samples.

The values were recorded when ``.qca`` format 2 packed the header (the bytes around the
codes changed, the codes did not; gains became float32, band-level spreads one of the
header's grid values), and a change of module layout, loading or
API must leave them as they are. A change that means to alter coded output (the
bitstream, the gain, chunking, resampling) must say so and record new values here
(``python -m tests.test_golden`` prints them).

The ``.qca`` bitstreams hold integer codes and are pinned byte for byte. The ``.qca``
header records the model path it was encoded with (``model_hint``), which depends on
where the test runs; it is blanked before hashing.

Decoded samples come out of float convolutions, whose last bits differ between CPUs (an
AVX-512 machine and an AVX2 one round differently). So the FLOAT files are pinned by a
fingerprint: their projections onto seeded random signals, scaled so that each moves by
about the RMS of any change to the samples. Float rounding moves them by about 1e-8; a
click, a seam or a gain change of a thousandth moves them by 1e-5 or more. They are
compared to within ``TOLERANCE``. A PCM_16 file turns such a last bit into a whole step
wherever a sample lies near the edge of a step, and the PCM_16 fingerprints of the
post-filter's decoding moved by 2.7e-6 from one machine to another; so each PCM_16
file is checked against the FLOAT file of the same codes instead: the same samples,
each to within about a step.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import replace

import numpy as np
import pytest
import soundfile as sf
import torch
from safetensors.torch import load_file, save_file

from codec import Codec, model_config
from codec.checkpoint import save_checkpoint
from codec.cli import main
from codec.coding import bitstream
from codec.config import CodingConfig, Config, DataConfig
from codec.network.model import compute_model_id
from codec.pretrained import read_metadata

MODEL_ID = "1798d061f47d21aa"
SPECTRAL_ID = "7cb53e54bd88b380"
CASES = {  # name: (model, extra encode options)
    "run": ("run", ["--n-q", "3", "--chunk-seconds", "0.5"]),
    "run_full": ("run", []),
    "export": ("exported.safetensors", ["--kbps", "16"]),
    # A spectral model whose coding sends band levels and decodes through the post-filter.
    "spectral": ("spectral", ["--kbps", "2.4", "--chunk-seconds", "0.7"]),
    "spectral_export": ("spectral.safetensors", ["--kbps", "3"]),
}
SUBTYPES = ("PCM_16", "FLOAT")
PCM_16_STEP = 2.0 ** -15
BITSTREAMS = {
    "run": "06680d403e654dd39683eee6f01869467554a86cdb3903089439a286a48ba001",
    "run_full": "4c1b4dd63b88ada554b8b4101fa64f06324ee84b3f7b4b2c3caee7c1a60c715c",
    "export": "b26d6a87f1f3edd88e68333646474b3d06779aa0ceaa3cf7f5ee0cecfe033f94",
    "spectral": "fc98794a05fabb233c6a06c66bf3caf50aba55e4a6d89317fd47683475e20edd",
    "spectral_export": "c4278b6a4786babf45a50e19a0e19a7c95dff6dbb4c1920d5266d758682c0ebc",
}
FINGERPRINTS = {  # decoded FLOAT file: projections (see fingerprint)
    "run.FLOAT": [0.023079636, -0.011239142, 0.008015199, -0.042708679,
                 0.196239353, 0.072117608, 0.056673546, 0.020694268],
    "run_full.FLOAT": [0.023181471, -0.011027657, 0.008461885, -0.042847979,
                      0.196012818, 0.071725305, 0.056171911, 0.020527231],
    "export.FLOAT": [0.023679809, -0.010949382, 0.007921292, -0.04303661,
                    0.195998418, 0.072191146, 0.055830777, 0.020931931],
    "spectral.FLOAT": [0.074488667, 0.096728702, 0.192691571, 0.073732988,
                      -0.195469129, 0.315019717, -0.069382973, -0.110340389],
    "spectral_export.FLOAT": [0.076284649, 0.094064443, 0.197603553, 0.071061285,
                             -0.193957704, 0.312370318, -0.070326134, -0.110134361],
}
N_PROJECTIONS = 8
TOLERANCE = 1e-6


def test_signal() -> np.ndarray:
    """2 s of two tones per channel (one swelling) and a little seeded noise, 44.1 kHz
    stereo, ``[T, C]``."""
    rate, seconds = 44100, 2.0
    rng = np.random.default_rng(1234)
    t = np.arange(int(rate * seconds)) / rate
    left = 0.2 * np.sin(2 * np.pi * 220 * t) + 0.1 * np.sin(2 * np.pi * 1330 * t)
    right = 0.15 * np.sin(2 * np.pi * 440 * t + 0.3) * (0.6 + 0.4 * np.sin(2 * np.pi * 1.5 * t))
    noise = 0.03 * rng.standard_normal((2, t.size))
    return (np.stack([left, right]) + noise).T.astype(np.float32)


test_signal.__test__ = False  # a helper, not a test


def fingerprint(samples: np.ndarray) -> list[float]:
    """Projections of ``samples`` onto seeded Gaussian signals of the same shape, divided
    by the square root of their size: each is the RMS of the samples times a standard
    normal draw, and a change to the samples moves it by about the change's RMS."""
    flat = samples.astype(np.float64).ravel()
    rng = np.random.default_rng(2024)
    directions = rng.standard_normal((N_PROJECTIONS, flat.size))
    return [round(float(value), 9) for value in directions @ flat / np.sqrt(flat.size)]


def without_hint(path) -> bytes:
    header, payload = bitstream.read_file(path)
    return bitstream.to_bytes(replace(header, model_hint=None), payload)


def spectral_model(work) -> None:
    """A seeded tiny spectral model with 8 band levels and post-filter 1.5, saved as a run
    in ``work/spectral`` in the layout of files written before coding had a config
    section of its own (so an old checkpoint must code as it did), and exported beside
    it by today's ``codec export``."""
    torch.manual_seed(4321)
    config = model_config("spectral", sample_rate=16000, strides=(160,), n_fft=320,
                          widths=(32, 32), latent_dim=16, dilations=(1,), n_q=4,
                          codebook_size=64)
    coding = CodingConfig(postfilter=1.5, band_levels=8, band_level_kbps=0.5)
    model = Codec(config)
    assert compute_model_id(model) == SPECTRAL_ID
    best = save_checkpoint(work / "spectral" / "best", model_state=model.state_dict(),
                           config=Config(model=config, coding=coding), step=0,
                           model_id=SPECTRAL_ID)
    written_before_coding_config(best)
    assert main(["export", str(work / "spectral"), "-o",
                 str(work / "spectral.safetensors")]) == 0


def written_before_coding_config(directory) -> None:
    """Rewrite a checkpoint as one from before the coding section: the coding settings
    inside the model config of its header and meta.json, no coding config of their own."""
    weights = directory / "model.safetensors"
    header = read_metadata(weights)
    model = {**json.loads(header.pop("model_config")), **json.loads(header.pop("coding_config"))}
    save_file(load_file(weights), weights, metadata={**header, "model_config": json.dumps(model)})
    meta = json.loads((directory / "meta.json").read_text())
    meta["config"]["model"] |= meta["config"].pop("coding")
    meta["files"]["model.safetensors"] = {
        "bytes": weights.stat().st_size,
        "sha256": hashlib.sha256(weights.read_bytes()).hexdigest()}
    (directory / "meta.json").write_text(json.dumps(meta))


def code_all(work) -> tuple[dict[str, str], dict[str, np.ndarray], dict[str, dict]]:
    """Encode and decode every case in ``work``: the bitstreams' hashes, the decoded
    samples, and the decoded files' formats."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(1234)
    config = model_config("tiny", sample_rate=16000, strides=(4, 4), widths=(16, 32, 64),
                          latent_dim=32, n_q=4, codebook_size=256)
    model = Codec(config)
    assert compute_model_id(model) == MODEL_ID  # the same random model as when recorded
    save_checkpoint(work / "run" / "best", model_state=model.state_dict(),
                    config=Config(model=config, data=DataConfig(target_lufs=-20.0)), step=0,
                    model_id=MODEL_ID)
    sf.write(work / "in.wav", test_signal(), 44100, subtype="PCM_16")
    hashes, decoded, formats = {}, {}, {}
    try:
        assert main(["export", str(work / "run"), "-o", str(work / "exported.safetensors")]) == 0
        spectral_model(work)
        for name, (model_path, options) in CASES.items():
            qca = work / f"{name}.qca"
            assert main(["encode", str(work / "in.wav"), "-o", str(qca),
                         "--model", str(work / model_path), *options]) == 0
            hashes[name] = hashlib.sha256(without_hint(qca)).hexdigest()
            levels = bitstream.read_file(qca)[0].band_levels
            assert (levels is not None) == name.startswith("spectral")
            for subtype in SUBTYPES:
                wav = work / f"{name}.{subtype}.wav"
                assert main(["decode", str(qca), "-o", str(wav), "--subtype", subtype]) == 0
                info = sf.info(wav)
                formats[f"{name}.{subtype}"] = dict(
                    rate=info.samplerate, channels=info.channels, frames=info.frames,
                    subtype=info.subtype)
                decoded[f"{name}.{subtype}"], _ = sf.read(wav, dtype="float32")
    finally:
        torch.set_num_threads(threads)
    return hashes, decoded, formats


@pytest.fixture(scope="module")
def coded(tmp_path_factory):
    return code_all(tmp_path_factory.mktemp("golden"))


@pytest.mark.parametrize("name", sorted(CASES))
def test_bitstream_is_unchanged(coded, name):
    hashes, _, _ = coded
    assert hashes[name] == BITSTREAMS[name]


@pytest.mark.parametrize("key", sorted(f"{n}.{s}" for n in CASES for s in SUBTYPES))
def test_decoded_files_have_the_input_format(coded, key):
    _, _, formats = coded
    assert formats[key] == dict(rate=44100, channels=2, frames=88200,
                                subtype=key.split(".")[1])


@pytest.mark.parametrize("name", sorted(CASES))
def test_decoded_audio_is_unchanged(coded, name):
    _, decoded, _ = coded
    np.testing.assert_allclose(fingerprint(decoded[f"{name}.FLOAT"]),
                               FINGERPRINTS[f"{name}.FLOAT"], rtol=0, atol=TOLERANCE)


@pytest.mark.parametrize("name", sorted(CASES))
def test_pcm_16_file_is_the_float_file_to_within_a_step(coded, name):
    """libsndfile writes a float sample as the step below it (up to a step lower), with
    a scale of 32767 for writing and 32768 for reading (``|x|`` of a step more). A change
    of gain, a clip or a seam in the PCM_16 path exceeds that."""
    _, decoded, _ = coded
    pcm, full = decoded[f"{name}.PCM_16"], decoded[f"{name}.FLOAT"]
    peak = np.abs(full).max()
    assert peak < 1.0
    assert np.abs(pcm - full).max() <= (1 + peak) * PCM_16_STEP
    assert not np.array_equal(pcm, full)  # the file is 16-bit, not the float samples


def test_fingerprint_sees_a_small_change_and_not_rounding():
    """The fingerprint's scale: float32 rounding stays far inside the tolerance, a
    thousandth of gain or a short click far outside it."""
    signal = test_signal()
    base = np.array(fingerprint(signal))
    signs = np.sign(np.random.default_rng(0).standard_normal(signal.shape))
    rounded = signal + (4 * signs * np.spacing(signal)).astype(np.float32)  # 4 last bits
    assert np.abs(np.array(fingerprint(rounded)) - base).max() < TOLERANCE / 10
    louder = signal * np.float32(1.001)
    assert np.abs(np.array(fingerprint(louder)) - base).max() > 10 * TOLERANCE
    clicked = signal.copy()
    clicked[44100:44110] += 0.01
    assert np.abs(np.array(fingerprint(clicked)) - base).max() > 10 * TOLERANCE


if __name__ == "__main__":  # print the values to record after a deliberate change
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as folder:
        found_hashes, found_audio, _ = code_all(Path(folder))
    print("BITSTREAMS =", found_hashes)
    print("FINGERPRINTS =", {f"{name}.FLOAT": fingerprint(found_audio[f"{name}.FLOAT"])
                             for name in CASES})
