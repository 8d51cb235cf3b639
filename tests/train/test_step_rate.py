from codec.train import step_rate
from codec.train.step_rate import StepRate


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def run(rate: StepRate, clock: Clock, seconds: float, steps: int) -> list[str]:
    messages = []
    for _ in range(steps):
        clock.now += seconds
        rate.step_done()
        message = rate.warning()
        if message:
            messages.append(message)
    return messages


def test_early_and_current_rates_leave_out_the_first_steps_and_pauses():
    clock = Clock()
    rate = StepRate(clock=clock)
    run(rate, clock, 10.0, 1 + step_rate.SKIP_STEPS)  # warm-up: slow, left out
    run(rate, clock, 0.5, step_rate.EARLY_STEPS)
    assert rate.early == 2.0
    rate.pause()
    clock.now += 1000.0  # validation: not a step
    run(rate, clock, 0.5, 1)
    assert rate.current == 2.0


def test_a_collapse_warns_once_and_again_only_after_recovering():
    clock = Clock()
    rate = StepRate(clock=clock)
    assert run(rate, clock, 0.5, 1 + step_rate.SKIP_STEPS + step_rate.EARLY_STEPS) == []
    slow = run(rate, clock, 5.0, 3 * step_rate.WINDOW_STEPS)
    assert len(slow) == 1 and "from 2.00 steps/s early" in slow[0]
    assert run(rate, clock, 0.5, 2 * step_rate.WINDOW_STEPS) == []
    assert len(run(rate, clock, 5.0, 2 * step_rate.WINDOW_STEPS)) == 1


def test_a_steady_run_never_warns():
    clock = Clock()
    rate = StepRate(clock=clock)
    assert run(rate, clock, 0.5, 500) == []
