"""``wsekern bench --peers-isa``: the peers held to a forced path's ISA in a child process,
what each read back named in the header, a switch that did not take reported."""
import json
import os
import platform
import subprocess

import pytest
from conftest import run_in_child

from wsekern import bench_peers, bench_spmm, cli

x86 = pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"),
                         reason="the peers' ISA switches are x86-64's")


def test_held_env_replaces_the_peer_switches_and_marks_the_child():
    base = {"OPENBLAS_CORETYPE": "Haswell", "OPENBLAS_L2_SIZE": "512", "DNNL_MAX_CPU_ISA": "AVX2",
            "HOME": "/h", "PYTHONPATH": "/elsewhere"}
    env = bench_peers.held_env("baseline", base)
    assert env["OPENBLAS_CORETYPE"] == "Nehalem" and "OPENBLAS_L2_SIZE" not in env
    assert "DNNL_MAX_CPU_ISA" not in env and env["ONEDNN_MAX_CPU_ISA"] == "SSE41"
    assert env["ATEN_CPU_CAPABILITY"] == "default" and env["MKL_ENABLE_INSTRUCTIONS"] == "SSE4_2"
    assert env["HOME"] == "/h" and env[bench_peers.HELD_MARK] == "baseline"
    assert env["PYTHONPATH"].split(os.pathsep)[1] == "/elsewhere"
    # the CPU's best path: the peers' native kernels, the environment's switches cleared
    best = bench_peers.held_env("avx512", base)
    assert not set(bench_peers.PEER_SWITCHES) & set(best)
    assert best[bench_peers.HELD_MARK] == "avx512"


def test_a_switch_that_did_not_take_is_named_with_what_runs():
    got = {"openblas": "SkylakeX", "aten": "AVX2", "onednn": "Intel AVX2", "mkl": None}
    env = {"OPENBLAS_CORETYPE": "Haswell"}
    assert bench_peers.not_taken("avx2", got, env) == [
        ("openblas", "OPENBLAS_CORETYPE", "Haswell", "SkylakeX")]
    lines = bench_peers.peers_lines(got, "avx2", env)
    assert lines[0].startswith("peers held to the avx2 path's ISA")
    assert "NumPy's OpenBLAS SkylakeX" in lines[0] and "torch ATen AVX2" in lines[0]
    warned = [line for line in lines if line.startswith("warning:")]
    assert warned == ["warning: OPENBLAS_CORETYPE=Haswell did not take: openblas runs SkylakeX; "
                      "its numbers are not those of a CPU with only the avx2 path's ISA"]
    # a peer not installed (None) has nothing to hold; case does not matter
    assert bench_peers.not_taken("baseline", {"openblas": "NEHALEM", "aten": None}) == []
    native = bench_peers.peers_lines(got, None, {"OPENBLAS_CORETYPE": "Haswell"})
    assert native == ["peers ran at (native, read back): NumPy's OpenBLAS SkylakeX; torch ATen "
                      "AVX2; oneDNN Intel AVX2; set in the environment: OPENBLAS_CORETYPE=Haswell"]


@x86
def test_conv_held_child_reads_back_each_switch_and_reports_one_that_did_not_take():
    """``bench conv --peers-isa same`` on the forced baseline path: the child runs with the
    switches (read back by the libraries themselves), and an OpenBLAS core it cannot take is
    reported with what runs instead."""
    pytest.importorskip("torch")
    pytest.importorskip("threadpoolctl")
    code = """
        import wsekern.bench_peers as b
        from wsekern import cli
        b.PEER_ISA_ENV["baseline"]["OPENBLAS_CORETYPE"] = "NoSuchCore"
        raise SystemExit(cli.main(["bench", "conv", "--size", "1", "4", "6", "--threads", "1",
                                   "--repeat", "1", "--peers-isa", "same"]))
    """
    env = {**os.environ, "WSEKERN_SIMD": "baseline"}
    env.pop(bench_peers.HELD_MARK, None)
    done = run_in_child(code, env=env, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    held = [line for line in lines if line.startswith("peers held to the baseline path's ISA")]
    assert len(held) == 1, done.stdout
    for asked in ("MKL_ENABLE_INSTRUCTIONS=SSE4_2", "ONEDNN_MAX_CPU_ISA=SSE41",
                  "ATEN_CPU_CAPABILITY=default"):
        assert asked in held[0]
    assert "torch ATen DEFAULT" in held[0] and "oneDNN Intel SSE4.1" in held[0]
    assert "oneDNN probe conv jit:sse41" in held[0]
    warned = [line for line in lines if line.startswith("warning:")]
    assert len(warned) == 1 and warned[0].startswith(
        "warning: OPENBLAS_CORETYPE=NoSuchCore did not take: openblas runs "), done.stdout
    # the held child's torch is held already: no second torch@isa child, no column for it
    assert not any(line.startswith("torch@isa") for line in lines)
    assert sum(line.strip().startswith(("0.00", "0.80", "0.90")) for line in lines) == 6


def test_default_output_runs_here_with_the_peers_native(monkeypatch, capsys):
    """Without --peers-isa nothing is re-run and no switch is set: the header names what the
    peers run at, then the table as before."""
    def no_child(*args, **kwargs):
        raise AssertionError("the default bench must not start a child")
    monkeypatch.setattr(bench_peers, "rerun_held", no_child)
    monkeypatch.delenv(bench_peers.HELD_MARK, raising=False)
    monkeypatch.delenv("WSEKERN_SIMD", raising=False)
    assert cli.main(["bench", "conv", "--size", "1", "4", "6", "--threads", "1",
                     "--repeat", "1"]) == 0
    out = capsys.readouterr().out.splitlines()
    header = [i for i, line in enumerate(out) if line.startswith("CPU ")]
    assert len(header) == 1
    assert out[header[0] + 1].startswith("peers ran at (native, read back): ")
    assert not any("peers held" in line or line.startswith("warning:") for line in out)
    assert any(line.split()[:3] == ["w", "zeros", "x"] for line in out)


def test_peers_isa_same_is_refused_where_it_holds_nothing(capsys):
    assert cli.main(["bench", "train", "--peers-isa", "same"]) == 2
    err = capsys.readouterr().err
    assert "--peers-isa same holds the peers of bench spmm and bench conv" in err
    assert "received bench train" in err


@x86
def test_table_children_receive_the_switches_of_their_path(monkeypatch):
    """bench spmm --table --peers-isa same: each forced path's child gets that path's
    switches; the default path's child gets none of the environment's."""
    seen = []

    def fake_run(cmd, env, **kwargs):
        seen.append(env)
        res = {"simd": env.get("WSEKERN_SIMD", "best"), "cost_table": "-", "spmm": [],
               "dead_rows": [], "sddmm": [], "peers": {}, "peers_held": None}
        return subprocess.CompletedProcess(cmd, 0, json.dumps(res), "")
    monkeypatch.setattr(bench_spmm.subprocess, "run", fake_run)
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    lines = []
    bench_spmm.bench_table(quick=True, repeat=1, out=lines.append, peers_isa="same")
    forced = {env["WSEKERN_SIMD"]: env for env in seen if "WSEKERN_SIMD" in env}
    for path, switches in bench_peers.PEER_ISA_ENV.items():
        if path in forced:
            assert {k: forced[path][k] for k in switches} == switches
            assert forced[path][bench_peers.HELD_MARK] == path
    default = [env for env in seen if "WSEKERN_SIMD" not in env]
    assert len(default) == 1 and "OPENBLAS_CORETYPE" not in default[0]
    # native: the children inherit the environment as before
    seen.clear()
    bench_spmm.bench_table(quick=True, repeat=1, out=lines.append)
    assert all(env.get("OPENBLAS_CORETYPE") == "Haswell" and bench_peers.HELD_MARK not in env
               for env in seen)
