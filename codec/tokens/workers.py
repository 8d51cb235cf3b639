"""Shards coded in this process or in worker processes, each file reported as it is done.

Every process that codes runs torch on one thread, so that ``--workers N`` uses N cores
and the codes never depend on how many threads summed a convolution: the shards are the
same bytes for any number of workers. Workers are fresh Pythons ('spawn': none of the
parent's threads, locks or CUDA state), each loading the model once and taking whole
shards from a queue, one at a time. They ignore Ctrl-C, which is the parent's: it stops
them with SIGTERM, on which each unwinds like an exception and removes the shard it was
writing under a temporary name. A worker that fails or dies ends the run; the shards
already written stay, and a rerun codes only the others.
"""
from __future__ import annotations

import multiprocessing
import queue
import signal
import traceback
from multiprocessing.process import BaseProcess

import torch

from codec.errors import CodecError
from codec.pretrained import PretrainedModel, load
from codec.tokens.tokenize import Report, TokenJob, code_shard

# Seconds a stopped worker has to remove its temporary file before it is killed.
STOP_SECONDS = 30


def _stop_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def _work(job: TokenJob, tasks: multiprocessing.Queue, events: multiprocessing.Queue) -> None:
    """A worker: codes each shard number it is given until None, sending every event;
    a failure is sent as an ("error", exception) event and ends the worker."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    torch.set_num_threads(1)
    try:
        model = load(job.model_path, device=job.device)
        for index in iter(tasks.get, None):
            code_shard(model, job, index, events.put)
    except CodecError as error:
        events.put(("error", error))
    except Exception:  # a bug: its traceback, as text (any exception pickles as that)
        events.put(("error", RuntimeError(traceback.format_exc())))


def code_shards(job: TokenJob, shards: list[int], workers: int, report: Report,
                model: PretrainedModel | None = None) -> None:
    """Code ``shards`` in ``workers`` processes (1: in this one, with ``model`` if given),
    calling ``report`` here with each event. The first error ends them all."""
    if workers <= 1 or len(shards) <= 1:
        torch.set_num_threads(1)
        model = model or load(job.model_path, device=job.device)
        for index in shards:
            code_shard(model, job, index, report)
        return
    context = multiprocessing.get_context("spawn")
    tasks, events = context.Queue(), context.Queue()
    for index in shards:
        tasks.put(index)
    count = min(workers, len(shards))
    for _ in range(count):
        tasks.put(None)
    processes = [context.Process(target=_work, args=(job, tasks, events), daemon=True)
                 for _ in range(count)]
    finished = False
    try:
        for process in processes:
            process.start()
        _follow(events, processes, len(shards), report)
        finished = True
    finally:
        _stop(processes, finished)


def _follow(events: multiprocessing.Queue, processes: list[BaseProcess], shards: int,
            report: Report) -> None:
    """Report the workers' events until ``shards`` shards are written; raise the first
    error a worker sends, or a CodecError as soon as one dies."""
    written, started = 0, set()
    while written < shards:
        dead = [process for process in processes if process.exitcode not in (None, 0)]
        if dead:
            coding = ", ".join(map(str, sorted(started))) or "none"
            raise CodecError(f"a worker process ended unexpectedly (exit code "
                             f"{dead[0].exitcode}; shards being coded: {coding}); the shards "
                             f"written are kept: rerun to code the rest")
        try:
            kind, value = events.get(timeout=0.5)
        except queue.Empty:
            continue
        if kind == "error":
            raise value
        if kind == "start":
            started.add(value)
        elif kind == "shard":
            written += 1
            started.discard(value)
        report((kind, value))


def _stop(processes: list[BaseProcess], finished: bool) -> None:
    """Every worker ended: when ``finished``, each exits by itself (it has been told
    there is nothing left); else those still coding are stopped. Each is waited for."""
    for process in processes:
        if not finished and process.is_alive():
            process.terminate()
    for process in processes:
        process.join(STOP_SECONDS)
        if process.is_alive():
            process.kill()
            process.join()
