"""The benchmark table's timing loop (wsekern.bench_spmm.interleaved_medians): every
contender runs once per round, and over a cycle of rounds each one runs right after each
other one equally often, so none always inherits the caches of the same predecessor
(a plain rotation of one order fails this: in (a, b, c), (b, c, a), (c, a, b) c always
follows b)."""
from collections import Counter

import pytest

from wsekern.bench_spmm import balanced_orders, interleaved_medians


def _followers(rounds):
    """Counts of (before, after) pairs adjacent within a round."""
    return Counter((r[i], r[i + 1]) for r in rounds for i in range(len(r) - 1))


@pytest.mark.parametrize("k", [2, 3, 4, 5, 6, 7])
def test_each_contender_follows_each_other_equally_often(k):
    orders = balanced_orders(k)
    assert len(orders) == (k if k % 2 == 0 else 2 * k)
    assert all(sorted(o) == list(range(k)) for o in orders)
    pairs = _followers(orders)
    # every ordered pair of distinct contenders, the same number of times
    assert set(pairs) == {(a, b) for a in range(k) for b in range(k) if a != b}
    assert len(set(pairs.values())) == 1
    # and each contender takes every position equally often
    for c in range(k):
        positions = Counter(o.index(c) for o in orders)
        assert set(positions) == set(range(k)) and len(set(positions.values())) == 1


def test_the_timing_loop_runs_the_balanced_orders():
    calls = []
    fns = {name: (lambda name=name: calls.append(name)) for name in "abc"}
    result = interleaved_medians(fns, repeat=6)
    assert calls[:3] == ["a", "b", "c"]                        # the warm-up
    rounds = [calls[3 + 3 * r:6 + 3 * r] for r in range(6)]
    assert all(sorted(r) == ["a", "b", "c"] for r in rounds)
    pairs = _followers(rounds)
    assert len(pairs) == 6 and set(pairs.values()) == {2}       # c follows b only twice in 6
    assert set(result) == {"a", "b", "c", "a_wall", "b_wall", "c_wall"}
    assert all(v >= 0 for v in result.values())


def test_zero_one_and_two_contenders():
    assert balanced_orders(0) == [[]] and balanced_orders(1) == [[0]]
    assert balanced_orders(2) == [[0, 1], [1, 0]]
    calls = []
    assert set(interleaved_medians({"x": lambda: calls.append(1)}, repeat=3)) == {"x", "x_wall"}
    assert len(calls) == 4
    assert interleaved_medians({}, repeat=3) == {}
