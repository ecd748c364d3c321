"""Design-space sweeps: Dask against serial, failures as rows, the cache across crashes."""
import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

pd = pytest.importorskip("pandas")
distributed = pytest.importorskip("distributed")

from wsekern import sweeps as sw  # noqa: E402 (after the optional imports are checked)

SPACE = {"rows": [8, 16], "cols": [8, 16, 32], "sparsity": [0.5, 0.9], "dtype": ["fp16", "fp32"],
         "m": [256], "k": [256], "n": [8]}                                         # 24 points


@pytest.fixture(scope="module")
def cluster():
    with sw.local_cluster(2, host="127.0.0.1") as c:
        with distributed.Client(c) as client:
            yield client


def test_dask_and_serial_give_the_same_frame(cluster):
    serial = sw.sweep(SPACE, "spmm", client=False, base="small")
    parallel = sw.sweep(SPACE, "spmm", client=cluster, base="small")
    assert len(serial) == 24 and (serial["status"] == "ok").all()
    pd.testing.assert_frame_equal(serial.drop(columns="wall_seconds"),
                                  parallel.drop(columns="wall_seconds"))
    assert {"cycles", "seconds", "energy_joules", "utilization", "bottleneck", "sram_peak_bytes",
            "status", "reason", "wall_seconds"} <= set(serial.columns)
    assert serial["cycles"].nunique() > 5


def test_a_scheduler_address_works_too(cluster):
    frame = sw.sweep({"m": [64, 128], "k": [64], "n": [4]}, "matmul",
                     client=cluster.scheduler.address, base="small")
    assert list(frame["status"]) == ["ok", "ok"]


def test_failures_become_rows_with_their_reason():
    space = {"rows": [1, 0], "cols": [1], "sram_bytes": [49152, 8192],
             "mapping": ["weight-stationary"], "m": [2000], "k": [2000], "n": [4]}
    frame = sw.sweep(space, "spmm", client=False, base="small")
    by = {(r.rows, r.sram_bytes): r for r in frame.itertuples()}
    assert by[(1, 49152)].status == "overflow" and "needs" in by[(1, 49152)].reason
    assert by[(0, 49152)].status == "invalid" and "rows" in by[(0, 49152)].reason
    assert by[(1, 8192)].status in ("overflow", "invalid")
    bad = sw.sweep({"colour": [1]}, "spmm", client=False)
    assert bad.loc[0, "status"] == "invalid"
    assert "neither a WaferConfig field" in bad.loc[0, "reason"]
    # a point too large to draw is refused with its estimate and recorded (it ended the
    # sweep with a raw MemoryError)
    huge = sw.sweep({"m": [10**6], "k": [10**6], "n": [8]}, "spmm", client=False)
    assert huge.loc[0, "status"] == "invalid" and "GiB" in huge.loc[0, "reason"]


def test_a_killed_worker_loses_no_point(cluster, tmp_path):
    marker = tmp_path / "killed-once"

    def flaky(units):
        # The first evaluation of units=48 takes its worker process down with it.
        if units == 48 and not marker.exists():
            marker.write_text("x")
            os._exit(1)
        from wsekern import nn
        return nn.Sequential([nn.layers.Dense(units, activation="relu", input_shape=(16,)),
                              nn.layers.Dense(4, activation="softmax")])

    cache = tmp_path / "results.csv"
    frame = sw.sweep({"units": [16, 32, 48, 64], "batch": [8], "rows": [8], "cols": [8]}, flaky,
                     client=cluster, cache=cache, base="small")
    assert marker.exists()                                   # a worker really died
    assert list(frame["status"]) == ["ok"] * 4
    assert len(pd.read_csv(cache)) == 4
    again = sw.sweep({"units": [16, 32, 48, 64], "batch": [8], "rows": [8], "cols": [8]}, flaky,
                     client=False, cache=cache, base="small")
    assert len(pd.read_csv(cache)) == 4                      # nothing ran twice
    np.testing.assert_allclose(again["cycles"], frame["cycles"])


@pytest.mark.parametrize("store", ["results.csv", "results.parquet"])
def test_an_interrupted_sweep_resumes_from_its_cache(tmp_path, store):
    """Kill the sweep's process mid-way; the rerun keeps every finished row and runs the rest."""
    cache = tmp_path / store
    counter = tmp_path / "evaluations"
    counter.mkdir()
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent(f"""
        import os, sys, time, uuid
        from wsekern import sweeps as sw
        def slow(units):
            open(os.path.join({str(counter)!r}, uuid.uuid4().hex), "w").close()
            time.sleep(0.3)
            from wsekern import nn
            return nn.Sequential([nn.layers.Dense(units, input_shape=(8,)), nn.layers.Dense(3)])
        sw.sweep({{"units": list(range(4, 16)), "batch": [4], "rows": [4], "cols": [4]}}, slow,
                 client=False, cache={str(cache)!r}, base="small")
    """))
    proc = subprocess.Popen([sys.executable, str(script)], cwd=tmp_path)
    deadline = time.time() + 60
    while time.time() < deadline and len(os.listdir(counter)) < 5:
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    finished_before = _read(cache)
    assert 1 <= len(finished_before) < 12
    subprocess.run([sys.executable, str(script)], cwd=tmp_path, check=True)
    final = _read(cache)
    assert sorted(final["units"]) == list(range(4, 16))
    assert set(finished_before["key"]) <= set(final["key"])
    # Every point ran once, except at most the one in flight when the process died.
    assert len(os.listdir(counter)) <= 12 + 1


def _read(cache):
    """The cache as a user reads it with pandas."""
    return pd.read_csv(cache) if str(cache).endswith(".csv") else pd.read_parquet(cache)


def test_pareto_front_matches_brute_force():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"cycles": rng.random(60), "energy_joules": rng.random(60),
                          "status": ["ok"] * 59 + ["overflow"]})
    mask = sw.pareto_front(frame)
    ok = frame[frame.status == "ok"]
    for i, row in frame.iterrows():
        dominated = ((ok.cycles <= row.cycles) & (ok.energy_joules <= row.energy_joules)
                     & ((ok.cycles < row.cycles) | (ok.energy_joules < row.energy_joules))).any()
        assert mask[i] == (row.status == "ok" and not dominated)


def test_sweep_command(tmp_path, capsys):
    from wsekern.cli import main
    spec = tmp_path / "spec.toml"
    spec.write_text('workload = "conv2d"\nbase = "small"\n[space]\nrows = [8, 16]\n'
                    'sparsity = [0.0, 0.9]\nbatch = [1]\nchannels = [8]\nout_channels = [8]\n'
                    'size = [8]\n')
    out = tmp_path / "res.parquet"
    assert main(["sweep", str(spec), "--serial", "--out", str(out), "--plot",
                 str(tmp_path / "pareto.png")]) == 0
    text = capsys.readouterr().out
    assert "4 points: 4 ok" in text
    assert len(pd.read_parquet(out)) == 4 and (tmp_path / "pareto.png").exists()
