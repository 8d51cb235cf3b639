"""Folder coding in worker processes (``codec encode/decode --jobs N``).

Each worker is a fresh Python ('spawn': none of the parent's threads, locks or CUDA
state), runs torch on one thread so that N workers use N cores, and codes one file at a
time exactly as the command does in one process (the same chunked, bounded-memory
coding, the same bytes), loading its model on its first file. A worker sends back the
lines to print, or the one line of a failure, and the parent prints them as they come.

Ctrl-C is the parent's alone: the workers ignore it, and the parent stops them with
SIGTERM, on which each unwinds like an exception, so that the file it was writing
leaves no temporary file (``codec.compress`` writes under a temporary name and renames).
A worker that dies (killed, out of memory) fails the file it was on and is replaced.
"""
from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.context
import signal
import threading
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Callable, Iterator

from codec.cli.batch import failure_line

# A line to print: (to stderr, text).
Message = tuple[bool, str]
# What a worker does to one (source, target) pair: the lines to print; raises on failure.
Work = Callable[[Path, Path], list[Message]]
# Seconds a stopped worker has to remove its temporary file before it is killed.
STOP_SECONDS = 60


def _stop_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def _work_loop(connection: Connection, work: Work) -> None:
    """A worker: codes each (source, target) pair the parent sends until None, and sends
    back ``(lines to print, failure line or None)`` for each."""
    import torch

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    torch.set_num_threads(1)
    with contextlib.suppress(EOFError):  # the parent has gone: nothing more to do
        for source, target in iter(connection.recv, None):
            try:
                outcome = (work(source, target), None)
            except Exception as error:  # any failure, even a bug, is one file's
                outcome = ([], failure_line(source, error))
            connection.send(outcome)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # nothing left to clean up


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    """SIGINT ignored meanwhile (in the main thread), so that a process started now
    begins with it ignored: Ctrl-C while it imports must not make it print a traceback."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class _Worker:
    """A worker process, the pipe to it, and the index of the pair it is coding."""

    def __init__(self, context: multiprocessing.context.BaseContext, work: Work):
        self.connection, theirs = context.Pipe()
        self.process = context.Process(target=_work_loop, args=(theirs, work), daemon=True)
        with _sigint_ignored():
            self.process.start()
        theirs.close()  # so that the worker's end closing shows here as EOF
        self.task: int | None = None


class _Pool:
    """Worker processes handed one pair at a time: each gets the next when it is done."""

    def __init__(self, pairs: list[tuple[Path, Path]], work: Work, count: int):
        self.context = multiprocessing.get_context("spawn")
        self.pairs, self.work = pairs, work
        self.waiting = list(reversed(range(len(pairs))))  # popped from the end
        self.workers = [_Worker(self.context, work) for _ in range(count)]
        for worker in self.workers:
            self._hand_on(worker)

    def _hand_on(self, worker: _Worker) -> None:
        """Give ``worker`` the next pair, or None (stop) when none is left."""
        worker.task = self.waiting.pop() if self.waiting else None
        pair = None if worker.task is None else self.pairs[worker.task]
        try:
            worker.connection.send(pair)
        except (BrokenPipeError, ConnectionResetError):
            pass  # it has died: the next wait sees it, and fails this pair

    def outcomes(self) -> Iterator[tuple[list[Message], str | None]]:
        """``(lines to print, failure line or None)`` of each pair, as they are done."""
        while any(worker.task is not None for worker in self.workers):
            busy = [worker for worker in self.workers if worker.task is not None]
            ready = set(wait([w.connection for w in busy] + [w.process.sentinel for w in busy]))
            for number, worker in enumerate(self.workers):
                if worker in busy and {worker.connection, worker.process.sentinel} & ready:
                    yield self._collect(number)

    def _collect(self, number: int) -> tuple[list[Message], str | None]:
        """The outcome worker ``number`` sent, or a failure if it died; then its next pair
        (to a new worker in its place, if it died)."""
        worker = self.workers[number]
        try:
            outcome = worker.connection.recv()
        except (EOFError, OSError):
            worker.process.join()
            source = self.pairs[worker.task][0]
            outcome = ([], f"{source}: the worker process coding it ended unexpectedly "
                           f"(exit code {worker.process.exitcode})")
        if not worker.process.is_alive():  # died, or died after sending
            worker.task = None
            worker.connection.close()
            if not self.waiting:
                return outcome
            worker = self.workers[number] = _Worker(self.context, self.work)
        self._hand_on(worker)
        return outcome

    def stop(self, finished: bool) -> None:
        """Every worker ended: when ``finished``, those idle exit by themselves; else
        those still coding are stopped (SIGTERM). Each is waited for."""
        for worker in self.workers:
            if not finished and worker.process.is_alive():
                worker.process.terminate()
        for worker in self.workers:
            worker.process.join(STOP_SECONDS)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
            worker.connection.close()


def in_workers(pairs: list[tuple[Path, Path]], work: Work,
               jobs: int) -> Iterator[tuple[list[Message], str | None]]:
    """``(lines to print, failure line or None)`` for each pair, as ``jobs`` worker
    processes finish them. Closing the generator (or an exception, Ctrl-C included,
    while it waits) stops the workers."""
    pool = _Pool(pairs, work, min(jobs, len(pairs)))
    finished = False
    try:
        yield from pool.outcomes()
        finished = True
    finally:
        pool.stop(finished)
