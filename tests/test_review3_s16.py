"""Review of session 16's costing change (acct16): dense_stream's exact scan past float64's
exact integers, and ws_step_columns' ``sram_bound`` of a wrong kind."""
import numpy as np
import pytest
from test_step_blocks_simd import _case, _chain_reference, _same
from test_step_stream import _dense_reference
from test_strategy_step_plan import _by_columns

from wsekern._screen import dense_stream
from wsekern._step_cost import ws_step_columns

PATHS = ("avx512", "baseline")


def _exact_scan_reference(work, first, last, Lg, hop, ramp, lat, launch, task, cushion):
    """_chain_reference with src/wsk_chain.h's exact scan (one running maximum of
    a_c - c * delta): the same value only where every sum is exact."""
    def dmax(a, b):
        return a if a > b else b
    N, P = work.shape
    delta = hop + 2 * ramp + lat
    E, free1, free2, hist, done = [0.0] * P, [0.0] * P, [0.0] * P, [], 0.0
    for n in range(N):
        G = []
        for c in range(P):
            start = dmax(dmax(E[c], free2[c]), float(first[n, c]))
            E[c] = dmax(start + float(work[n, c]), float(last[n, c]) + task)
            G.append(dmax(E[c], free1[c]))
        hist.append(G)
        free = list(G)
        h = G[0] + launch + ramp
        tl = h + Lg - 1
        free[0] = tl - ramp - lat + 1
        m = h
        for c in range(1, P - 1):
            m = dmax(m, (G[c] + lat + ramp) - float(c) * delta)
            tl = ((m + float(c) * delta) + Lg) - 1
            free[c] = tl - ramp - lat + 1
        D = dmax(tl + hop + ramp, G[P - 1] + Lg - 1) + 1 + task
        ahead = n * Lg + Lg - 1 - int(cushion)
        if ahead >= 0:
            nb, back = divmod(ahead, Lg)
            for c in range(P - 1):
                free[c] = dmax(free[c], hist[nb][c + 1] + back + 1)
        free[P - 1] = D
        free2, free1 = free1, free
        done = dmax(done, D)
    return done


def test_dense_streams_chain_past_exact_integers_keeps_the_serial_scan(paths):
    """Whole tmax, eos, dt, fill and constants, but X's bytes (up to 255: a sums bytes)
    times tmax 2**49 + 1000 carry the chain past 2**53, where the exact scan's running
    maximum rounds otherwise than the serial recurrence (checked here on the very case):
    dense_stream must keep the serial scan, so the plain-Python recurrence's float on
    both paths. A guard on the bound (the old code passes it as well): it fails with
    the bound dropped (dense_stream's ``inputs`` 0 whenever the inputs are whole)."""
    x = np.array([[248], [237], [171]], np.uint8)
    k_b = np.linspace(0, 3, 6).astype(np.int_)
    tmax, eos, wpv, dt, fill = 562949953422183.0, 1.0, 1, 1.0, 0.0
    hop, ramp, lat, launch, task, Lg = 0.0, 0.0, 3.0, 0.0, 3.0, 3
    work, first, last, _, _ = _dense_reference(x, k_b, tmax, eos, wpv, dt, fill)
    ref = _chain_reference(work, first, last, Lg, hop, ramp, lat, launch, task, 0.0, 0.0)
    assert _exact_scan_reference(work, first, last, Lg, hop, ramp, lat, launch, task,
                                 0.0) != ref      # the case is one the exact scan gets wrong
    pipe = (np.array([Lg], np.int_), hop, ramp, lat, launch, task, 0.0)
    for path in PATHS:
        paths(path)
        got = dense_stream(x, k_b, tmax, eos, wpv, dt, fill, pipe)
        assert _same(got[5], ref), (path, got[5], ref)


def test_a_sram_bound_of_a_wrong_kind_is_refused_by_name():
    """ws_step_columns' sram_bound other than a C-contiguous 1-D int64 array: a TypeError
    that names sram_bound, what it must be and what was received (it was Cython's bare
    'Buffer dtype mismatch' or 'a bytes-like object is required', naming no argument);
    the right kind is taken, and gives ws_step_columns' own peak."""
    rng = np.random.default_rng(3)
    R, C, N = 5, 4, 6
    x_nz, k_b, S, choice, comp_total, dense_total, t_dense, tail = _case(rng, R, C, N, ())
    cols = _by_columns(None, R, C, k_b, S, choice, comp_total, dense_total)
    args = (x_nz.view(np.uint8), k_b, *cols[:3], t_dense, *cols[3:], *tail)
    want = ws_step_columns(*args)
    bound = np.maximum(cols[4].reshape(C, R), cols[5].reshape(C, R)).max(axis=1)
    bound = bound.astype(np.int64)
    assert ws_step_columns(*args, sram_bound=bound)[5] == want[5]
    wide = np.repeat(bound, 2)
    for bad, seen in ((bound.astype(np.float64), "float64 array of shape (4,)"),
                      (bound.astype(np.int32), "int32 array of shape (4,)"),
                      (bound.tolist(), "a list"), ("abcd", "a str"),
                      (np.stack([bound, bound]), "shape (2, 4)"),
                      (wide[::2], "not C-contiguous")):
        with pytest.raises(TypeError) as err:
            ws_step_columns(*args, sram_bound=bad)
        text = str(err.value)
        assert "sram_bound must be a C-contiguous 1-D int64 array" in text, text
        assert "(one entry per PE column: 4)" in text and seen in text, text
