"""Training speed when other programs share the cores.

    python -m eval.probes.contention [--config recipes/quickstart/conf/quickstart.yaml]
                              [--steps 10] [--json]

Times the trainer's own ``train_step`` (median seconds per step over ``--steps`` steps
after a warm-up) on the config's batch in four set-ups: 1 thread; 2 threads; 2 threads
whose OpenMP waits sleep instead of spinning (``OMP_WAIT_POLICY=PASSIVE``); and 2
threads under ``codec.train.threads.ThreadTuner``, as training runs by default (timed after
enough steps for the tuner to have chosen). Each runs first on an otherwise idle machine
and then beside a competing CPU-bound job of ``--competitor-threads`` threads (a
matrix-multiply loop). Each measurement runs in its own process, because OpenMP reads
its wait policy once, at start-up.

The ``slowdown`` of a row is its busy time over its idle time: a fair share of 2 cores
between two 2-thread jobs is 2.0.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Optional

# name -> (threads, OMP_WAIT_POLICY or None for OpenMP's default, adaptive)
SETUPS = {
    "1 thread": (1, None, False),
    "2 threads": (2, None, False),
    "2 threads, sleeping waits": (2, "PASSIVE", False),
    "2 threads, adaptive": (2, None, True),
}

_STEP_TIMER = """
import statistics, sys, time, torch
from codec.config import load_config
from codec.train.trainer import build_trainer
from codec.train.step import train_step
from codec.train.threads import TRIAL, WINDOW, ThreadTuner
config_path, threads, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
adaptive = sys.argv[4] == "1"
torch.set_num_threads(threads)
config = load_config([config_path], ["run_dir=unused"])
trainer = build_trainer(config, "cpu")
tuner = ThreadTuner(threads if adaptive else 1)
frames = int(config.data.segment_seconds * config.model.sample_rate)
audio = 0.1 * torch.randn(config.data.batch_size, config.model.channels, frames)
warm_up = 2 * WINDOW + TRIAL + 3 if adaptive else 3
times = []
for step in range(warm_up + steps):
    start = time.perf_counter()
    train_step(trainer, audio)
    times.append(time.perf_counter() - start)
    tuner.observe(times[-1])
print(statistics.median(times[warm_up:]))
"""

_COMPETITOR = """
import sys, torch
torch.set_num_threads(int(sys.argv[1]))
a = torch.randn(512, 512)
while True:
    a = torch.tanh(a @ a * 0.01)
"""


def time_step(config: str, setup: str, steps: int) -> float:
    """Median seconds per training step in a fresh process."""
    threads, policy, adaptive = SETUPS[setup]
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    env.update({"OMP_WAIT_POLICY": policy} if policy else {})
    result = subprocess.run([sys.executable, "-c", _STEP_TIMER, config, str(threads),
                             str(steps), str(int(adaptive))], env=env, capture_output=True,
                            text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"step timer failed: {result.stderr.strip()[-500:]}")
    return float(result.stdout.strip().splitlines()[-1])


def measure(config: str, steps: int, competitor_threads: int) -> list[dict]:
    rows = [dict(setup=setup, idle_s=time_step(config, setup, steps)) for setup in SETUPS]
    competitor = subprocess.Popen([sys.executable, "-c", _COMPETITOR, str(competitor_threads)])
    try:
        time.sleep(1.0)  # let it reach its loop
        for row in rows:
            row["busy_s"] = time_step(config, row["setup"], steps)
            row["slowdown"] = row["busy_s"] / row["idle_s"]
    finally:
        competitor.kill()
        competitor.wait()
    return rows


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eval.probes.contention", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="recipes/quickstart/conf/quickstart.yaml")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--competitor-threads", type=int, default=2)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    rows = measure(args.config, args.steps, args.competitor_threads)
    if args.json:
        print(json.dumps(dict(config=args.config, rows=rows), indent=2))
        return 0
    print(f"{'set-up':<26} {'idle s/step':>12} {'busy s/step':>12} {'slowdown':>9}")
    for row in rows:
        print(f"{row['setup']:<26} {row['idle_s']:>12.3f} {row['busy_s']:>12.3f} "
              f"{row['slowdown']:>8.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
