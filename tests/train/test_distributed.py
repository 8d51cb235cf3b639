"""Processes and precision: ``torchrun --nproc_per_node 2`` on CPU (gloo) ends both
processes with the same model; ``train.precision`` trains in bf16 where it pays."""
import json
import math
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from train_corpus import make_corpus, tiny_overrides

from codec.config import load_config
from codec.errors import CodecError
from codec.train import distributed
from codec.train.inputs import build_datasets
from codec.train.step import train_step
from codec.train.trainer import build_trainer

# Each process trains, then writes its own copy of the model for comparison.
DRIVER = """
import os, sys
import torch
from safetensors.torch import save_file
from codec.config import load_config
from codec.train.loop import fit

torch.set_num_threads(1)
result = fit(load_config([], sys.argv[2:]))
state = {k: v.contiguous() for k, v in result.model.state_dict().items()}
save_file(state, os.path.join(sys.argv[1], f"rank{os.environ['RANK']}.safetensors"))
"""


def _run_group(command: list[str], env: dict, timeout: float) -> tuple[int, str]:
    """Run ``command`` in its own process group; on timeout kill the whole group, so
    that no worker of torchrun outlives the test."""
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        return -1, output
    return process.returncode, output


TORCHRUN = shutil.which("torchrun", path=os.path.dirname(sys.executable))


@pytest.mark.skipif(TORCHRUN is None, reason="torchrun not installed beside this python")
def test_two_processes_end_with_identical_weights_and_codebooks(tmp_path):
    manifests = make_corpus(tmp_path)
    (tmp_path / "driver.py").write_text(DRIVER)
    # The discriminator and the balancer make the hardest case: two models, and a
    # backward pass that runs through the balancer.
    overrides = tiny_overrides(tmp_path, manifests, **{
        "train.steps": 3, "train.disc": "[mpd]", "train.balancer": "true"})
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(Path(__file__).parents[2])}
    returncode, output = _run_group(
        [TORCHRUN, "--standalone", "--nproc_per_node", "2", str(tmp_path / "driver.py"),
         str(tmp_path), *overrides], env, timeout=180)
    assert returncode == 0, output[-3000:]
    ranks = [load_file(tmp_path / f"rank{r}.safetensors") for r in (0, 1)]
    assert ranks[0].keys() == ranks[1].keys()
    for name in ranks[0]:
        assert torch.equal(ranks[0][name], ranks[1][name]), name
    codebook = "quantizer.layers.0.embed"
    assert bool(ranks[0]["quantizer.layers.0.initialized"])
    assert not torch.equal(ranks[0][codebook], torch.zeros_like(ranks[0][codebook]))
    # Only rank 0 saved: one set of checkpoints and one TensorBoard event file.
    assert (tmp_path / "run" / "checkpoints" / "step-000003").is_dir()
    assert len(list((tmp_path / "run" / "tb").iterdir())) == 1


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _two_agents(tmp_path: Path, overrides: list[str], env: dict) -> list[tuple[int, str]]:
    """Two torchrun agents, as two machines would start them, meeting at one c10d
    rendezvous on this machine; each runs one training process."""
    endpoint = f"127.0.0.1:{_free_port()}"
    agents = [subprocess.Popen(
        [TORCHRUN, "--nnodes", "2", "--nproc_per_node", "1", "--rdzv_backend", "c10d",
         "--rdzv_endpoint", endpoint, "--rdzv_id", "two-nodes", "--max_restarts", "0",
         str(tmp_path / "driver.py"), str(tmp_path), *overrides],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True) for _ in range(2)]
    results = []
    for agent in agents:
        try:
            output, _ = agent.communicate(timeout=240)
        except subprocess.TimeoutExpired:
            for each in agents:
                os.killpg(each.pid, signal.SIGKILL)
            output, _ = agent.communicate()
        results.append((agent.returncode, output))
    return results


@pytest.mark.skipif(TORCHRUN is None, reason="torchrun not installed beside this python")
def test_two_nodes_meet_at_a_rendezvous_train_and_resume(tmp_path):
    manifests = make_corpus(tmp_path)
    (tmp_path / "driver.py").write_text(DRIVER)
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(Path(__file__).parents[2])}
    for steps in (3, 6):  # the second launch resumes the first's run
        overrides = tiny_overrides(tmp_path, manifests, **{"train.steps": steps})
        for returncode, output in _two_agents(tmp_path, overrides, env):
            assert returncode == 0, output[-3000:]
        ranks = [load_file(tmp_path / f"rank{r}.safetensors") for r in (0, 1)]
        for name in ranks[0]:
            assert torch.equal(ranks[0][name], ranks[1][name]), name
    checkpoints = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    assert checkpoints == ["step-000003", "step-000006"]
    meta = json.loads((tmp_path / "run" / "checkpoints" / "step-000006" / "meta.json")
                      .read_text())
    assert len(meta["provenance"]) == 2  # one run, trained by two launches


@pytest.mark.parametrize("amx, expected", [(True, torch.bfloat16), (False, None)])
def test_auto_precision_trains_in_bf16_on_a_cpu_only_with_amx(monkeypatch, amx, expected):
    monkeypatch.setattr(distributed, "cpu_has_amx", lambda: amx)
    cpu = torch.device("cpu")
    assert distributed.resolve_precision("auto", cpu) is expected
    assert distributed.resolve_precision("fp32", cpu) is None
    assert distributed.resolve_precision("bf16", cpu) is torch.bfloat16
    with pytest.raises(CodecError, match="train.precision must be auto, fp32 or bf16"):
        distributed.resolve_precision("fp16", cpu)


def test_a_bf16_step_on_a_cpu_trains_and_scores_in_float32(tmp_path):
    manifests = make_corpus(tmp_path)
    config = load_config([], tiny_overrides(tmp_path, manifests, **{
        "train.precision": "bf16"}))
    t = build_trainer(config)
    assert t.autocast_dtype is torch.bfloat16
    train_set, _ = build_datasets(config)
    audio = torch.stack([train_set[i] for i in range(config.data.batch_size)])
    before = [p.detach().clone() for p in t.codec.parameters()]
    logs = train_step(t, audio)
    assert logs["skipped"] == 0 and math.isfinite(logs["loss/total"])
    assert all(p.dtype == torch.float32 for p in t.codec.parameters())
    assert any(not torch.equal(b, p) for b, p in zip(before, t.codec.parameters(), strict=True))
