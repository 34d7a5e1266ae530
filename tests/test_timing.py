"""pyinfer.timing: what the bench scripts' ratios rest on.  ``interleaved``
calls every contender warmup + rounds * number times, rotates which goes first
each round, and reports each contender's median per call from its own calls."""
from pyinfer.timing import interleaved, samples


class FakeClock:
    """A clock that moves only when a contender 'runs' (by its cost)."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_interleaved_counts_rotates_and_takes_each_contenders_median():
    clock = FakeClock()
    calls, order = {"a": 0, "b": 0, "c": 0}, []
    cost = {"a": 1.0, "b": 2.0, "c": 5.0}

    def contender(name):
        def run():
            calls[name] += 1
            order.append(name)
            clock.now += cost[name]
        return run

    med = interleaved({k: contender(k) for k in cost}, rounds=4, number=3, warmup=2,
                      clock=clock)
    assert med == cost  # seconds per call, each from its own timed calls
    assert calls == {"a": 2 + 4 * 3, "b": 2 + 4 * 3, "c": 2 + 4 * 3}
    timed = order[3 * 2:]                      # after the warm-up calls
    firsts = [timed[r * 9] for r in range(4)]  # 3 contenders x 3 calls a round
    assert firsts == ["a", "b", "c", "a"]


def test_samples_times_each_call_after_warmup():
    clock_calls = []

    def fn():
        clock_calls.append(1)

    out = samples(fn, repeat=5, warmup=3)
    assert len(out) == 5 and len(clock_calls) == 8 and (out >= 0).all()
