"""The benchmark table's timing loop (wsekern.bench_spmm.interleaved_medians): every
contender runs once per round, and over len(contenders) rounds each one runs in every
position once, so none always follows the same one (whose caches it would inherit)."""
from wsekern.bench_spmm import interleaved_medians


def test_each_contender_takes_every_position_in_turn():
    calls = []
    fns = {name: (lambda name=name: calls.append(name)) for name in "abc"}
    result = interleaved_medians(fns, repeat=6)
    rounds = [calls[3 + 3 * r:6 + 3 * r] for r in range(6)]      # after the warm-up
    assert calls[:3] == ["a", "b", "c"]
    assert all(sorted(r) == ["a", "b", "c"] for r in rounds)
    for name in "abc":
        assert sorted(r.index(name) for r in rounds[:3]) == [0, 1, 2]
        assert sorted(r.index(name) for r in rounds[3:]) == [0, 1, 2]
    assert set(result) == {"a", "b", "c", "a_wall", "b_wall", "c_wall"}
    assert all(v >= 0 for v in result.values())


def test_a_single_contender_runs_once_per_round_after_its_warm_up():
    calls = []
    assert set(interleaved_medians({"x": lambda: calls.append(1)}, repeat=3)) == {"x", "x_wall"}
    assert len(calls) == 4
