"""Hostile and careless input, end to end: odd sample rates within bounded memory, batches
that survive bad files, training data that is damaged, damaged or foreign checkpoints.

Unit-level checks of the same defences live beside their modules (test_resample.py,
test_bitstream.py's fuzzing of the container).
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Peak memory allowed for coding 2 s of audio at a rate that shares little with the
# model's: the resampling filter once grew with the rates' reduced ratio (9.6 GB here).
MAX_PEAK_MB = 1500

PEAK_MEMORY_SCRIPT = """
import dataclasses, json, resource, struct, sys, zlib
import torch
from codec import Codec, PretrainedModel, bitstream, compress, model_config

torch.manual_seed(0)
model = PretrainedModel.from_network(Codec(model_config("tiny")))
for rate in (11999, 44099):
    t = torch.arange(2 * rate) / rate
    data = compress.encode(model, 0.1 * torch.sin(2 * torch.pi * 440 * t)[None], rate)
    audio, got_rate = compress.decode(model, data)
    assert audio.shape == (1, 2 * rate) and got_rate == rate

# A tiny file whose header claims 11999 Hz (consistent, with a valid checksum).
header, payload = bitstream.parse(compress.encode(model, torch.full((1, 2400), 0.01), 24000))
length = next(n for n in range(1, 10 ** 5) if bitstream.frame_count(
    n, 11999, 24000, header.hop_length) == header.frames)
text = json.dumps(dataclasses.asdict(header) | {"source_rate": 11999, "length": length}).encode()
body = struct.pack("<4sBI", bitstream.MAGIC, bitstream.VERSION, len(text)) + text + payload
audio, _ = compress.decode(model, body + struct.pack("<I", zlib.crc32(body)))
assert audio.shape == (1, length)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
"""


def run_python(code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=600)


@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss is in KiB on Linux")
def test_odd_sample_rates_code_in_bounded_memory():
    result = run_python(PEAK_MEMORY_SCRIPT)
    assert result.returncode == 0, result.stderr[-2000:]
    peak_mb = int(result.stdout.split()[-1])
    assert peak_mb < MAX_PEAK_MB, f"peak RSS {peak_mb} MB"
