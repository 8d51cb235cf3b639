from codec.train import threads
from codec.train.threads import ThreadTuner


class Machine:
    """Step times by thread count, as a shared or a free machine gives them."""

    def __init__(self, seconds: dict[int, float]) -> None:
        self.seconds = seconds
        self.threads_now = 2
        self.calls: list[int] = []

    def set_threads(self, count: int) -> None:
        self.threads_now = count
        self.calls.append(count)

    def run(self, tuner: ThreadTuner, steps: int) -> list[str]:
        messages = []
        for _ in range(steps):
            message = tuner.observe(self.seconds[self.threads_now])
            if message:
                messages.append(message)
        return messages


def test_a_free_machine_tries_one_thread_once_and_keeps_the_configured_count():
    machine = Machine({2: 0.5, 1: 0.8})
    tuner = ThreadTuner(2, set_threads=machine.set_threads)
    assert machine.run(tuner, 1000) == []
    assert machine.calls == [1, 2] and tuner.current == 2


def test_a_machine_busy_from_the_start_runs_on_one_thread():
    machine = Machine({2: 2.5, 1: 1.2})
    tuner = ThreadTuner(2, set_threads=machine.set_threads)
    messages = machine.run(tuner, threads.WINDOW + threads.TRIAL + 1)
    assert tuner.current == 1 and machine.threads_now == 1 and len(messages) == 1


def test_a_shared_machine_drops_to_one_thread_and_comes_back_when_free():
    machine = Machine({2: 0.5, 1: 0.8})
    tuner = ThreadTuner(2, set_threads=machine.set_threads)
    machine.run(tuner, threads.RECHECK_STEPS + 50)
    machine.seconds = {2: 2.5, 1: 1.2}  # another program takes the cores
    dropped = machine.run(tuner, threads.WINDOW + threads.TRIAL + 1)
    assert tuner.current == 1 and machine.threads_now == 1
    assert len(dropped) == 1 and "threads 2 -> 1" in dropped[0]
    # Still shared at the next check: a trial of 2 threads, which loses, so 1 stays.
    assert machine.run(tuner, threads.RECHECK_STEPS + threads.TRIAL + 1) == []
    assert tuner.current == 1 and machine.threads_now == 1 and 2 in machine.calls
    machine.seconds = {2: 0.5, 1: 0.8}  # the other program is done
    back = machine.run(tuner, threads.RECHECK_STEPS + threads.TRIAL + 1)
    assert tuner.current == 2 and machine.threads_now == 2
    assert len(back) == 1 and "threads 1 -> 2" in back[0]


def test_a_slowdown_that_one_thread_does_not_help_keeps_the_threads():
    machine = Machine({2: 0.5, 1: 0.8})
    tuner = ThreadTuner(2, set_threads=machine.set_threads)
    machine.run(tuner, threads.RECHECK_STEPS + 50)
    machine.seconds = {2: 1.0, 1: 1.6}  # slower for everyone, e.g. a slow disk
    assert machine.run(tuner, 3 * threads.RECHECK_STEPS) == []
    assert tuner.current == 2 and machine.threads_now == 2


def test_one_configured_thread_is_left_alone():
    machine = Machine({1: 0.8})
    machine.threads_now = 1
    tuner = ThreadTuner(1, set_threads=machine.set_threads)
    machine.seconds = {1: 5.0}
    assert machine.run(tuner, 500) == [] and machine.calls == []
