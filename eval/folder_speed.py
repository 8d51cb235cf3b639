"""Files per second coding a folder of short clips: ``codec encode/decode DIR --jobs N``
for each N asked, and ``codec.encode_batch``/``decode_batch`` against ``codec.encode``/
``decode`` called clip by clip.

    python -m eval.bench --preset spectral --folder 50 --jobs 1 2

The clips (seeded tones in noise, 1 to 5 s long, at the model's rate) and the model (the
bench's, saved as a run) go in a temporary folder. The command runs in this process, as
``codec`` would: ``--jobs 1`` on ``--threads`` torch threads, more jobs on one thread
each, whose time includes starting the workers (each imports torch and loads the model).
The report also says whether every setting wrote the same bytes (decoding on several
threads can round a few samples the other way from decoding on one: the .wav bytes then
differ by a step of the last bit there, the .qca bytes do not), and how far the batch
API's decoded audio is from clip-by-clip decoding (a last-bit difference, see
``codec.batch_coding``).
"""
from __future__ import annotations

import contextlib
import io
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any, Callable

import numpy as np
import soundfile as sf
import torch

from codec.network.model import Codec

SHORTEST_SECONDS, LONGEST_SECONDS = 1.0, 5.0


def write_clips(folder: Path, count: int, rate: int, seed: int) -> list[torch.Tensor]:
    """``count`` clips of 1 to 5 s written to ``folder`` as 16-bit WAV; their audio."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    clips = []
    for index in range(count):
        t = np.arange(int(rate * rng.uniform(SHORTEST_SECONDS, LONGEST_SECONDS))) / rate
        tones = sum(np.sin(2 * np.pi * rng.uniform(100, 2000) * t + rng.uniform(0, 6))
                    for _ in range(3))
        audio = 0.05 * tones + 0.01 * rng.standard_normal(len(t))
        sf.write(folder / f"clip{index:03d}.wav", audio, rate, subtype="PCM_16")
        clips.append(torch.from_numpy(sf.read(folder / f"clip{index:03d}.wav",
                                              dtype="float32")[0])[None])
    return clips


def save_run(network: Codec, folder: Path) -> Path:
    """``network`` saved as a run's best checkpoint, as training leaves one."""
    from codec.checkpoint import save_checkpoint
    from codec.config import Config
    from codec.network.model import compute_model_id

    save_checkpoint(folder / "best", model_state=network.state_dict(),
                    config=Config(model=network.config), step=0,
                    model_id=compute_model_id(network))
    return folder


def _seconds(call: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = call()
    return time.perf_counter() - started, result


def _contents(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def command_speed(run: Path, wavs: Path, work: Path, jobs: list[int]) -> dict:
    """Files per second of ``codec encode`` and ``codec decode`` of the folder, per jobs."""
    from codec.cli import main

    count, results = len(list(wavs.iterdir())), {}
    for n in jobs:
        codes, decoded = work / f"qca_jobs{n}", work / f"wav_jobs{n}"
        options = ["--model", str(run), "--jobs", str(n)]
        with contextlib.redirect_stdout(io.StringIO()):  # a line per file
            encoding, status = _seconds(partial(main, ["encode", str(wavs), "-o", str(codes),
                                                       *options]))
            decoding, status_back = _seconds(partial(main, ["decode", str(codes), "-o",
                                                            str(decoded), *options]))
        if status or status_back:
            raise RuntimeError(f"codec encode/decode --jobs {n} failed")
        results[f"jobs_{n}"] = {"encode_files_per_s": count / encoding,
                                "decode_files_per_s": count / decoding,
                                "encode_s": encoding, "decode_s": decoding}
    for kind, key in (("qca", "same_qca_bytes"), ("wav", "same_wav_bytes")):
        results[key] = all(_contents(work / f"{kind}_jobs{n}")
                           == _contents(work / f"{kind}_jobs{jobs[0]}") for n in jobs)
    return results


def api_speed(run: Path, clips: list[torch.Tensor], rate: int, batch_size: int) -> dict:
    """Files per second of the batch API against encode and decode clip by clip."""
    import codec

    model = codec.load(str(run))
    codec.decode(model, codec.encode(model, clips[0], rate))  # imports and first calls
    one_by_one, data = _seconds(lambda: [codec.encode(model, clip, rate) for clip in clips])
    batched, batch_data = _seconds(lambda: codec.encode_batch(model, clips, rate,
                                                              batch_size=batch_size))
    decoding, audio = _seconds(lambda: [codec.decode(model, item)[0] for item in data])
    batch_decoding, batch_audio = _seconds(lambda: codec.decode_batch(model, data,
                                                                      batch_size=batch_size))
    return {"batch_size": batch_size,
            "encode_files_per_s": len(clips) / one_by_one,
            "encode_batch_files_per_s": len(clips) / batched,
            "decode_files_per_s": len(clips) / decoding,
            "decode_batch_files_per_s": len(clips) / batch_decoding,
            "same_bytes": batch_data == data,
            "decode_max_abs_difference": max(float((a - b).abs().max()) for a, (b, _)
                                             in zip(audio, batch_audio, strict=True))}


def folder_report(name: str, network: Codec, *, clips: int, jobs: list[int], threads: int,
                  seed: int, batch_size: int = 8) -> dict:
    """The folder benchmark of ``network`` (named ``name``) on ``clips`` clips."""
    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory(prefix="codec-folder-bench-") as folder:
        work = Path(folder)
        run = save_run(network.eval(), work / "run")
        audio = write_clips(work / "wavs", clips, network.sample_rate, seed)
        seconds = sum(clip.shape[-1] for clip in audio) / network.sample_rate
        return {"settings": {"model": name, "clips": clips, "audio_seconds": seconds,
                             "threads": threads, "jobs": jobs},
                "command": command_speed(run, work / "wavs", work, jobs),
                "api": api_speed(run, audio, network.sample_rate, batch_size)}


def format_folder_report(report: dict) -> str:
    s, command, api = report["settings"], report["command"], report["api"]
    lines = [f"codec bench --folder: {s['model']}; {s['clips']} clips, "
             f"{s['audio_seconds']:.0f} s of audio; --jobs 1 on {s['threads']} thread(s)",
             f"{'':36s}{'encode':>10s}{'decode':>10s}  (files per second)"]
    for n in s["jobs"]:
        row = command[f"jobs_{n}"]
        lines.append(f"{f'codec encode/decode --jobs {n}':36s}"
                     f"{row['encode_files_per_s']:10.2f}{row['decode_files_per_s']:10.2f}")
    lines += [f"{'codec.encode/decode, clip by clip':36s}"
              f"{api['encode_files_per_s']:10.2f}{api['decode_files_per_s']:10.2f}",
              f"{'encode_batch/decode_batch, ' + str(api['batch_size']) + ' at once':36s}"
              f"{api['encode_batch_files_per_s']:10.2f}{api['decode_batch_files_per_s']:10.2f}",
              f"every --jobs wrote the same .qca bytes: {command['same_qca_bytes']}, "
              f"the same .wav bytes: {command['same_wav_bytes']}",
              f"batch API: the same bytes {api['same_bytes']}, decoded audio within "
              f"{api['decode_max_abs_difference']:.1e}"]
    return "\n".join(lines)
