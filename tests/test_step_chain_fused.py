"""A kept step's chain run round by round inside its samples' pass (src/wsk_step_chain.h:
``WsStep.run``, ``DenseStep.run``) against the recurrence written out in Python (the
max-plus chain of src/_chain.pxd's chain_rounds, one IEEE operation at a time, Python's
floats being doubles): the same float on each SIMD path, over the recurrence's branches
(one position, no sums, a cushion that holds every round and one that holds none, links
slower and faster than a wavelet a cycle, the exact scan of whole numbers and the general
one)."""
import numpy as np
import pytest
from test_step_blocks_simd import _case, _same
from test_strategy_step_plan import _by_columns

from wsekern._screen import DenseStep, dense_stream
from wsekern._step_cost import WsStep, ws_step_columns


def _mx(a, b):
    return a if a > b else b


def _chain(work, first, last, shifted, f, Lg, hop, ramp, lat, launch, task, cushion, dt):
    """The completion of one chain of P positions over N rounds (work, first, last N x P;
    plus f on first and last when shifted), 0.0 when there is no round."""
    N, P = work.shape
    if N == 0 or P == 0:
        return 0.0
    delta = hop + 2 * ramp + lat
    sp = dt if dt > 1.0 else 1.0
    Ls = float(Lg) if sp == 1.0 else float(Lg - 1) * sp + 1.0
    E, free1, free2, hist, done = [0.0] * P, [0.0] * P, [0.0] * P, [], 0.0
    for n in range(N):
        G, free = [0.0] * P, [0.0] * P
        for c in range(P):
            a, b = float(first[n, c]), float(last[n, c])
            if shifted:
                a, b = a + f, b + f
            start = _mx(_mx(E[c], free2[c]), a)
            E[c] = _mx(start + float(work[n, c]), b + task)
            G[c] = _mx(E[c], free1[c])
            free[c] = _mx(G[c], b + dt) + lat + ramp      # a receiver's arrival
        hist.append(G)
        if P == 1 or Lg == 0:
            free = list(G)
            D = G[P - 1] + task
        else:
            h = G[0] + launch + ramp
            tl = h + Ls - 1
            free[0] = tl
            for c in range(1, P - 1):
                h = _mx(h + delta, free[c])
                tl = _mx(tl + delta, h + Ls - 1)
                free[c] = tl
            hold = float(last[n, P - 1]) + f if shifted else float(last[n, P - 1])
            D = _mx(_mx(tl + hop + ramp, G[P - 1] + Lg - 1), (hold + dt) + Ls - 1) + 1 + task
            ahead = n * Lg + Lg - 1 - int(cushion)
            for c in range(P - 1):
                free[c] = free[c] - ramp - lat + 1
                if ahead >= 0:       # a sender's last push waits for its receiver
                    free[c] = _mx(free[c], hist[ahead // Lg][c + 1] + (ahead % Lg) * sp + 1)
        free[P - 1] = D
        free2, free1 = free1, free
        done = _mx(done, D)
    return done


# (L, hop, ramp, lat, launch, cushion or task): no sums (L 0), one wavelet, several; a
# cushion of none, a fraction, a few, more than any round sends
CHAINS = [(0, 1.0, 7.0, 16.0, 5.0), (1, 1.5, 0.25, 3.0, 4.5), (3, 1.0, 7.0, 16.0, 5.0),
          (5, 2.0, 1.0, 0.5, 3.0)]
CUSHIONS = [0.0, 0.5, 3.0, 1000.0]


@pytest.mark.parametrize("C", [1, 2, 3, 9, 17])
def test_a_ws_steps_chain_is_the_recurrence(paths, C):
    rng = np.random.default_rng(C)
    R = 5
    for trial in range(4):
        x_nz, k_b, S, choice, comp, dense, t_dense, tail = _case(rng, R, C, 3, ())
        tail = tail[:4] + ((1.0, 0.5, 2.0, 1.5)[trial],)          # the links' dt
        cols = _by_columns(None, R, C, k_b, S, choice, comp, dense)
        K = x_nz.shape[0]
        args = (k_b, *cols[:3], t_dense, *cols[3:], *tail, True)
        for L, hop, ramp, lat, launch in CHAINS:
            for cushion in CUSHIONS:
                fill = float(rng.choice([0.0, 9.0, 2.5]))
                pipe = (np.array([L], np.int_), hop, ramp, lat, launch, cushion, fill)
                for path in ("avx512", "baseline"):
                    paths(path)
                    step = WsStep(K, *args, pipe)
                    for N in (1, 2, 7, 33):
                        x = (rng.random((K, N)) < rng.choice([0.1, 0.5])).view(np.uint8)
                        work, first, last = ws_step_columns(x, *args)[:3]
                        want = _chain(work, first, last, True, fill, L, hop, ramp, lat,
                                      launch, tail[0], cushion, tail[4])
                        got = step.run(x)[3]
                        assert _same(got, want), (trial, L, cushion, path, N, got, want)


@pytest.mark.parametrize("C", [1, 2, 3, 9, 17])
def test_a_dense_steps_chain_is_the_recurrence(paths, C):
    rng = np.random.default_rng(100 + C)
    K = 40
    for trial in range(4):
        k_b = np.concatenate([[0], np.sort(rng.integers(0, K + 1, C))]).astype(np.int_)
        # whole numbers (the exact scan) and not; dt 1, 2 and 0.5
        tmax, eos, wpv, dt, fill = ((7.0, 4.0, 2, 1.0, 9.0), (2.5, 1.0, 2, 1.5, 0.5),
                                    (3.0, 2.0, 1, 2.0, 0.0), (1.0, 1.0, 3, 0.5, 4.0))[trial]
        for L, hop, ramp, lat, launch in CHAINS:
            for cushion in CUSHIONS:
                task = float(rng.choice([4.0, 1.5]))
                pipe = (np.array([L], np.int_), hop, ramp, lat, launch, task, cushion)
                for path in ("avx512", "baseline"):
                    paths(path)
                    step = DenseStep(K, k_b, tmax, eos, wpv, dt, fill, pipe)
                    for N in (1, 2, 7, 33):
                        x = (rng.random((K, N)) < rng.choice([0.0, 0.3, 1.0])).view(np.uint8)
                        work, first, last = dense_stream(x, k_b, tmax, eos, wpv, dt, fill)[:3]
                        want = _chain(work, first, last, False, 0.0, L, hop, ramp, lat,
                                      launch, task, cushion, dt)
                        got = step.run(x)[2]
                        # the exact scan may give 0.0 for -0.0 (src/wsk_chain.h): never here,
                        # where every completion is at least 1 + task
                        assert _same(got, want), (trial, L, cushion, path, N, got, want)


# Two samples' rounds at a time (src/wsk_chain.h's wsk_chain_next2: the second round's
# serial scan WSK_CHAIN_SKEW = 32 positions behind the first's, block by block): chains of
# C - 1 = 1, 31, 32, 33, 64 and 99 scanned positions (one block, short of one, exactly
# one, one and a bit, two, a short last), N odd and even (an odd N's last round alone),
# cushions that read back the round itself (below L), the round before, several, none
@pytest.mark.parametrize("C", [2, 32, 33, 34, 65, 100])
def test_paired_rounds_are_the_recurrence(paths, C):
    rng = np.random.default_rng(1000 + C)
    R = 4
    for trial in range(2):
        x_nz, k_b, S, choice, comp, dense, t_dense, tail = _case(rng, R, C, 3, ())
        tail = tail[:4] + ((1.0, 1.5)[trial],)
        cols = _by_columns(None, R, C, k_b, S, choice, comp, dense)
        K = x_nz.shape[0]
        args = (k_b, *cols[:3], t_dense, *cols[3:], *tail, True)
        for L, hop, ramp, lat, launch in CHAINS[1:]:
            cushion = float(rng.choice([0.0, L - 0.5, L + 1.0, 3.0 * L, 1000.0]))
            fill = float(rng.choice([0.0, 2.5]))
            pipe = (np.array([L], np.int_), hop, ramp, lat, launch, cushion, fill)
            N = int(rng.choice([2, 3, 4, 9, 32]))
            x = (rng.random((K, N)) < rng.choice([0.1, 0.5])).view(np.uint8)
            work, first, last = ws_step_columns(x, *args)[:3]
            want = _chain(work, first, last, True, fill, L, hop, ramp, lat, launch,
                          tail[0], cushion, tail[4])
            for path in ("avx512", "baseline"):
                paths(path)
                got = WsStep(K, *args, pipe).run(x)[3]
                assert _same(got, want), (trial, L, cushion, path, N, got, want)


@pytest.mark.parametrize("C", [2, 33, 34, 100])
def test_paired_dense_rounds_are_the_recurrence(paths, C):
    # figures that are not whole numbers (the general scan, so the paired rounds)
    rng = np.random.default_rng(2000 + C)
    K = 3 * C
    k_b = np.concatenate([[0], np.sort(rng.integers(0, K + 1, C))]).astype(np.int_)
    for tmax, eos, wpv, dt, fill in ((2.5, 1.0, 2, 1.5, 0.5), (1.0, 1.25, 3, 0.5, 4.0)):
        for L, hop, ramp, lat, launch in CHAINS[1:]:
            cushion = float(rng.choice([0.0, L - 0.5, L + 1.0, 3.0 * L, 1000.0]))
            task = float(rng.choice([4.0, 1.5]))
            pipe = (np.array([L], np.int_), hop, ramp, lat, launch, task, cushion)
            N = int(rng.choice([2, 5, 8, 31]))
            x = (rng.random((K, N)) < rng.choice([0.3, 1.0])).view(np.uint8)
            work, first, last = dense_stream(x, k_b, tmax, eos, wpv, dt, fill)[:3]
            want = _chain(work, first, last, False, 0.0, L, hop, ramp, lat, launch, task,
                          cushion, dt)
            for path in ("avx512", "baseline"):
                paths(path)
                got = DenseStep(K, k_b, tmax, eos, wpv, dt, fill, pipe).run(x)[2]
                assert _same(got, want), (L, cushion, path, N, got, want)
