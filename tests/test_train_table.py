"""``wsekern bench train`` runs its table (tiny scale) and refuses absurd knobs."""
import pytest

from wsekern.bench_train import CASES, bench_train


def test_bench_train_rows_at_a_tiny_scale():
    lines = []
    cases = [c for c in CASES if "digits" in c.name or "tiny" in c.name]
    rows = bench_train(threads=1, scale=0.05, repeat=1, cases=cases, out=lines.append)
    assert [r["case"] for r in rows] == [c.name for c in cases]
    for r in rows:
        assert r["wsekern"] > 0 and r["peak"] > 0 and r["steps"] >= 1
        assert r["torch"] is None or r["torch"] > 0
    assert lines[0].startswith("CPU") and len(lines) == 3 + len(cases)


@pytest.mark.parametrize("kwargs", [dict(scale=0), dict(scale=-1.0), dict(repeat=0)])
def test_bench_train_refuses_absurd_knobs(kwargs):
    with pytest.raises(ValueError, match="scale must be > 0"):
        bench_train(**kwargs, cases=())


def test_bench_train_only_filters_rows_and_names_them_when_none_match(monkeypatch):
    import wsekern.bench_train as bt
    measured = []
    monkeypatch.setattr(bt, "measure", lambda case, *a: measured.append(case.name) or
                        {"case": case.name, "wsekern": 1.0, "torch": None, "peak": 0,
                         "steps": 1, "samples": 1})
    bench_train(only="90% SPARSE", out=lambda line: None)
    assert measured and all("90% sparse" in name for name in measured)
    with pytest.raises(ValueError, match="matches no training case; the cases are: MLP"):
        bench_train(only="no such row", out=lambda line: None)


def test_only_selects_rows_by_name_and_refuses_a_name_that_matches_none():
    from wsekern.bench_train import select_cases
    assert [c.name for c in select_cases(["char gpt 2x d128, batch"])] == \
        ["char GPT 2x d128, batch 32 (30 steps)"]
    assert len(select_cases(["GPT", "digits"])) == 3
    assert select_cases(None) == tuple(CASES)
    with pytest.raises(ValueError, match="matches no training case; the cases are: MLP"):
        select_cases(["resnet"])
    with pytest.raises(ValueError, match="'resnet'"):
        bench_train(cases=CASES, only=["resnet"], out=lambda s: None)
