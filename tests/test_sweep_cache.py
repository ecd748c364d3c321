"""Sweep caches under damage: every resumed sweep equals the uninterrupted one column by
column (wall time aside); damaged or foreign entries are reported and skipped, never misread."""
import os
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

pd = pytest.importorskip("pandas")
pytest.importorskip("pyarrow")

from wsekern import sweeps as sw  # noqa: E402 (after the optional imports are checked)

# ok rows mixed with overflow (rows=1, fp32, m=3000) and invalid (fp8) rows
SPACE = {"rows": [1, 4], "cols": [4], "dtype": ["fp16", "fp32", "fp8"], "m": [64, 3000],
         "k": [64], "n": [4], "mapping": ["weight-stationary"]}
STORES = ["results.csv", "results.parquet"]


@pytest.fixture(scope="module")
def reference():
    frame = sw.sweep(SPACE, "spmm", client=False, base="small")
    assert {"ok", "overflow", "invalid"} <= set(frame["status"])
    return frame


def same(resumed, reference):
    pd.testing.assert_frame_equal(resumed.drop(columns="wall_seconds"),
                                  reference.drop(columns="wall_seconds"))


class Counting:
    """evaluate_point, counting the points it runs."""

    def __init__(self, monkeypatch):
        self.points = []
        real = sw.evaluate_point

        def counted(point, *args):
            self.points.append(point)
            return real(point, *args)
        monkeypatch.setattr(sw, "evaluate_point", counted)


def run(cache, **kw):
    return sw.sweep(SPACE, "spmm", client=False, base="small", cache=cache, **kw)


def csv_lines(path):
    with open(path, "rb") as f:
        return f.read().split(b"\n")


@pytest.mark.parametrize("store", STORES)
def test_resume_with_failed_rows_equals_the_uninterrupted_sweep(tmp_path, store, reference,
                                                                monkeypatch):
    """Failed rows once had another column order (CSV) or all-null columns (Parquet)."""
    cache = tmp_path / store
    same(run(cache), reference)
    keys = list(reference["key"])
    if store.endswith(".csv"):                      # interrupted after 5 rows
        lines = csv_lines(cache)
        cache.write_bytes(b"\n".join(lines[:6]) + b"\n")
    else:
        for key in keys[5:]:
            os.remove(cache / f"part-{key}.parquet")
    counter = Counting(monkeypatch)
    same(run(cache), reference)
    assert len(counter.points) == len(keys) - 5
    counter.points.clear()
    same(run(cache), reference)                    # all cached now: nothing runs
    assert counter.points == []
    if store.endswith(".parquet"):                 # and pandas reads the directory whole
        assert len(pd.read_parquet(cache)) == len(keys)


def test_a_truncated_csv_row_is_reported_and_run_again(tmp_path, reference, monkeypatch):
    cache = tmp_path / "results.csv"
    run(cache)
    data = cache.read_bytes()
    cache.write_bytes(data[:-9])                   # a killed writer cut the last row
    counter = Counting(monkeypatch)
    with pytest.warns(sw.CacheWarning, match="damaged line"):
        same(run(cache), reference)
    assert len(counter.points) == 1
    # the cut text is kept aside, the cache is sound again: no warning, nothing runs
    last_line = data[data.rindex(b"\n", 0, -1) + 1:]
    assert (tmp_path / "results.csv.damaged").read_bytes() == last_line[:-9] + b"\n"
    counter.points.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error", sw.CacheWarning)
        same(run(cache), reference)
    assert counter.points == []


def test_a_cut_row_followed_by_later_rows(tmp_path, reference, monkeypatch):
    """A killed writer's cut line, ended by the next writer, with rows after it: those
    rows are read, the cut one is not glued to them."""
    cache = tmp_path / "results.csv"
    run(cache)
    lines = csv_lines(cache)
    lines[4] = lines[4][:-15]
    cache.write_bytes(b"\n".join(lines))
    counter = Counting(monkeypatch)
    with pytest.warns(sw.CacheWarning, match="line \\[5\\]"):
        same(run(cache), reference)
    assert len(counter.points) == 1


def test_a_value_cut_short_is_not_misread(tmp_path, reference):
    """A line cut inside its last number still has every cell: the row's CRC refuses it."""
    cache = tmp_path / "results.csv"
    run(cache)
    lines = csv_lines(cache)
    body, _, crc = lines[3].rpartition(b",")
    lines[3] = body[:-2] + b"," + crc          # two digits lost, same number of cells
    cache.write_bytes(b"\n".join(lines))
    with pytest.warns(sw.CacheWarning, match="line \\[4\\]"):
        same(run(cache), reference)


def test_a_foreign_csv_is_refused_with_a_way_out(tmp_path):
    cache = tmp_path / "results.csv"
    pd.DataFrame({"rows": [4], "cols": [4], "key": ["abc"], "status": ["ok"],
                  "cycles": [1.0]}).to_csv(cache, index=False)
    before = cache.read_bytes()
    with pytest.raises(ValueError, match="not written by this sweep.*move .* aside"):
        run(cache)
    assert cache.read_bytes() == before            # nothing touched


def test_rows_of_another_sweep_are_not_taken(tmp_path, reference, monkeypatch):
    """Same columns, another seed: its rows are skipped, every point of this one runs."""
    cache = tmp_path / "results.csv"
    run(cache, seed=1)
    counter = Counting(monkeypatch)
    same(run(cache), reference)
    assert len(counter.points) == len(reference)


def test_parquet_leftovers_of_a_killed_writer(tmp_path, reference, monkeypatch):
    cache = tmp_path / "results.parquet"
    run(cache)
    keys = list(reference["key"])
    # a temporary file of the old naming, a hidden one, and a part cut in half
    (cache / f"part-{keys[0]}.parquet.tmp").write_bytes(b"PAR1 half written")
    (cache / f".part-{keys[1]}.123.abc.tmp").write_bytes(b"PAR1")
    cut = cache / f"part-{keys[2]}.parquet"
    cut.write_bytes(cut.read_bytes()[:100])
    counter = Counting(monkeypatch)
    with pytest.warns(sw.CacheWarning, match="_damaged"):
        same(run(cache), reference)
    assert [sw.point_key(p, "spmm", "small", 0) for p in counter.points] == [keys[2]]
    assert sorted(os.listdir(cache / "_damaged")) == sorted(
        [f"part-{keys[0]}.parquet.tmp", f"part-{keys[2]}.parquet"])
    assert len(pd.read_parquet(cache)) == len(keys)


@pytest.mark.parametrize("store", STORES)
def test_two_concurrent_writers(tmp_path, store, reference, monkeypatch):
    """Two processes run the same sweep on one cache at once: every line sound (no rows
    interleaved, one header), and a resume runs nothing and equals the reference."""
    cache = tmp_path / store
    script = tmp_path / "writer.py"
    script.write_text(textwrap.dedent(f"""
        import random, sys
        from wsekern import sweeps as sw
        space = {SPACE!r}
        random.seed(int(sys.argv[1]))
        for _ in range(3):
            sw.sweep(space, "spmm", client=False, base="small", cache={str(cache)!r})
    """))
    procs = [subprocess.Popen([sys.executable, str(script), str(i)]) for i in range(2)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    if store.endswith(".csv"):
        lines = csv_lines(cache)
        assert lines[-1] == b""
        assert sum(line.startswith(b"rows,cols,") for line in lines) == 1
        assert not (tmp_path / "results.csv.damaged").exists()
    counter = Counting(monkeypatch)
    with warnings.catch_warnings():
        warnings.simplefilter("error", sw.CacheWarning)
        same(run(cache), reference)
    assert counter.points == []


def test_reason_text_with_line_breaks_round_trips(tmp_path):
    row = {"status": "invalid", "reason": "a\nb\\n,\"c\"\r", "cycles": None}
    points = {"k1": {"x": "multi\nline"}}
    cache = sw.ResultCache(tmp_path / "r.csv", ["x"], points)
    cache.append("k1", sw._canonical(row))
    got = cache.load()["k1"]
    assert got["reason"] == row["reason"] and np.isnan(got["cycles"])
    assert len(csv_lines(tmp_path / "r.csv")) == 3      # header, one row, the final newline


def test_space_names_that_clash_with_result_columns_are_refused():
    with pytest.raises(ValueError, match="result columns"):
        sw.sweep({"cycles": [1]}, lambda cycles: None, client=False)


def test_bytes_that_are_not_text_are_kept_aside_as_they_were(tmp_path, reference):
    cache = tmp_path / "results.csv"
    run(cache)
    lines = csv_lines(cache)
    lines[2] = lines[2][:10] + b"\xff\xfe" + lines[2][12:]
    cache.write_bytes(b"\n".join(lines))
    with pytest.warns(sw.CacheWarning, match="line \\[3\\]"):
        same(run(cache), reference)
    assert (tmp_path / "results.csv.damaged").read_bytes() == lines[2] + b"\n"
