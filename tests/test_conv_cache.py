"""The direct path's weight cache (wsekern.conv): least recently used first out, bounded
in weight arrays, geometries and bytes; a hit only for the same bytes in the same dtype
and shape, so every call still equals the reference."""
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from test_conv import conv_reference

import wsekern
from wsekern import conv as conv_mod


@pytest.fixture
def builds(monkeypatch):
    """Direct path forced, an empty cache, and the offsets builds counted."""
    monkeypatch.setattr(conv_mod, "DIRECT_FIXED", -1e9)
    monkeypatch.setattr(conv_mod, "_OFFSETS_CACHE", [])
    calls = []
    real = conv_mod._filter_offsets

    def counted(*args):
        calls.append(1)
        return real(*args)

    monkeypatch.setattr(conv_mod, "_filter_offsets", counted)
    return calls


def layers(n, shape=(8, 8, 3, 3), density=0.3, seed=0, one_pattern=False):
    """n weight arrays; with ``one_pattern`` all share one zero pattern (so their offsets
    take the same bytes)."""
    rng = np.random.default_rng(seed)
    mask = rng.random(shape) < density
    return [rng.standard_normal(shape) * (mask if one_pattern else rng.random(shape) < density)
            for _ in range(n)]


def check(x, w, padding=1, tol=1e-10):
    assert wsekern.conv2d_path(x, w, padding=padding) == "direct"
    y = wsekern.conv2d(x, w, padding=padding)
    np.testing.assert_allclose(y, conv_reference(x, w, None, 1, padding, 1, 1), rtol=tol,
                               atol=tol)


def kept_bytes():
    return sum(e.w_bytes.nbytes + sum(a.nbytes for o in e.offsets.values() for a in o)
               for e in conv_mod._OFFSETS_CACHE)


def test_six_layers_round_robin_hit_after_the_first_pass(builds):
    """An inference loop over six layers: the first pass builds six offsets, the next
    passes none (a first-in-first-out cache of four missed on every call)."""
    ws = layers(6)
    x = np.random.default_rng(1).standard_normal((2, 8, 7, 6))
    for w in ws:
        check(x, w)
    assert len(builds) == 6
    for _ in range(3):
        for w in ws:
            check(x, w)
    assert len(builds) == 6
    assert len(conv_mod._OFFSETS_CACHE) == 6


def test_a_hit_moves_to_the_front(builds, monkeypatch):
    """Two weights kept: A, B, A again, then C evicts B (the least recently used), not A."""
    monkeypatch.setattr(conv_mod, "_OFFSETS_KEPT", 2)
    a, b, c = layers(3)
    x = np.random.default_rng(2).standard_normal((1, 8, 6, 6))
    for w in (a, b, a, c):
        check(x, w)
    assert len(builds) == 3
    check(x, a)
    assert len(builds) == 3                     # A still cached
    check(x, b)
    assert len(builds) == 4                     # B was evicted
    assert len(conv_mod._OFFSETS_CACHE) == 2


def test_a_weight_changed_in_place_misses(builds):
    """The same array, changed in place (values, then the pattern): a fresh build and the
    reference answer; back to the first bytes, the first entry serves again."""
    (w,) = layers(1)
    first = w.copy()
    x = np.random.default_rng(3).standard_normal((2, 8, 7, 6))
    check(x, w)
    w *= 2                                      # same pattern, new values
    check(x, w)
    assert len(builds) == 2
    w[0, 0, 0, 0] = 0.0 if w[0, 0, 0, 0] else 1.5      # a new pattern
    check(x, w)
    assert len(builds) == 3
    w[...] = first
    check(x, w)
    assert len(builds) == 3
    w.reshape(-1)[-1] = -0.0 if w.reshape(-1)[-1] == 0 else 0.0    # the last byte only
    check(x, w)
    assert len(builds) == 4


def test_the_same_bytes_under_another_shape_or_dtype_miss(builds):
    """(8, 4, 3, 3) and (4, 8, 3, 3) weights with the same bytes, and the same bytes read
    as float32 (1.0, 2.0 and -0.5 in float64 are pairs of benign float32 values):
    separate entries, each as the reference."""
    rng = np.random.default_rng(4)
    w = rng.choice([0.0, 0.0, 0.0, 1.0, 2.0, -0.5], size=(8, 4, 3, 3))
    check(rng.standard_normal((1, 4, 6, 6)), w)
    check(rng.standard_normal((1, 8, 6, 6)), w.reshape(4, 8, 3, 3))
    assert len(builds) == 2
    w32 = w.view(np.float32).reshape(8, 8, 3, 3)
    assert np.isfinite(w32).all() and np.count_nonzero(w32)
    check(rng.standard_normal((1, 8, 6, 6)).astype(np.float32), w32, tol=1e-5)
    assert len(builds) == 3
    assert len(conv_mod._OFFSETS_CACHE) == 3
    check(rng.standard_normal((1, 4, 6, 6)), w)
    assert len(builds) == 3


def test_the_byte_budget_evicts_the_least_recently_used(builds, monkeypatch):
    """A budget for two weights (copies and offsets): the third evicts the oldest, the
    bytes kept stay within the budget, and each call is the reference."""
    ws = layers(3, shape=(16, 16, 3, 3), one_pattern=True)
    x = np.random.default_rng(5).standard_normal((1, 16, 6, 6))
    check(x, ws[0])
    one = kept_bytes()
    monkeypatch.setattr(conv_mod, "_OFFSETS_BUDGET", 2 * one + one // 2)
    for w in ws[1:]:
        check(x, w)
        assert kept_bytes() <= conv_mod._OFFSETS_BUDGET
    assert len(conv_mod._OFFSETS_CACHE) == 2
    assert len(builds) == 3
    for w in ws[1:]:
        check(x, w)
    assert len(builds) == 3                     # the two most recent stayed
    check(x, ws[0])
    assert len(builds) == 4
    assert [e.nbytes for e in conv_mod._OFFSETS_CACHE] == [one, one]


def test_a_weight_over_the_budget_is_not_kept(builds, monkeypatch):
    """A weight whose copy and offsets alone exceed the budget is computed, not kept, and
    the weights already kept stay."""
    small = layers(1, shape=(4, 8, 3, 3))[0]
    (big,) = layers(1, shape=(32, 8, 3, 3), density=0.9, seed=1)
    x = np.random.default_rng(6).standard_normal((1, 8, 6, 6))
    check(x, small)
    monkeypatch.setattr(conv_mod, "_OFFSETS_BUDGET", big.nbytes)
    for _ in range(2):
        check(x, big)
    assert len(builds) == 5                     # each of 4 calls built (check makes 2)
    assert len(conv_mod._OFFSETS_CACHE) == 1 and conv_mod._OFFSETS_CACHE[0].key[1] == (4, 72)
    check(x, small)
    assert len(builds) == 5


def test_the_count_bound(builds, monkeypatch):
    monkeypatch.setattr(conv_mod, "_OFFSETS_KEPT", 3)
    ws = layers(5)
    x = np.random.default_rng(7).standard_normal((1, 8, 5, 5))
    for w in ws:
        check(x, w)
    assert len(conv_mod._OFFSETS_CACHE) == 3
    for w in ws[2:]:
        check(x, w)
    assert len(builds) == 5


def test_geometries_are_least_recently_used_too(builds, monkeypatch):
    """One weight on five image sizes with four geometries kept: reusing the first size
    keeps it, so the fifth evicts the second; a budget too small for all of one weight's
    geometries trims its oldest ones, never the one just built."""
    (w,) = layers(1)
    rng = np.random.default_rng(8)
    xs = [rng.standard_normal((1, 8, n, n)) for n in (5, 6, 7, 8, 9)]
    for i in (0, 1, 2, 3, 0, 4):
        check(xs[i], w)
    assert len(builds) == 5
    (entry,) = conv_mod._OFFSETS_CACHE
    assert len(entry.offsets) == conv_mod._GEOMETRIES_KEPT
    check(xs[0], w)
    assert len(builds) == 5
    check(xs[1], w)
    assert len(builds) == 6
    # kept now, oldest first: sizes 8, 9, 5, 6 (each geometry's offsets take the same bytes)
    monkeypatch.setattr(conv_mod, "_OFFSETS_BUDGET", entry.nbytes - 1)
    check(xs[2], w)                               # a new geometry: 8 and 9 go
    assert len(builds) == 7
    assert len(entry.offsets) == 3
    assert kept_bytes() <= conv_mod._OFFSETS_BUDGET
    assert entry.nbytes == kept_bytes()
    for i in (0, 1, 2):
        check(xs[i], w)
    assert len(builds) == 7
    check(xs[4], w)
    assert len(builds) == 8


def test_threads_share_the_cache(builds, monkeypatch):
    """Four threads, six weights, a cache too small for them all: every result is the
    reference, and nothing raises (eviction and moves to the front under a lock)."""
    monkeypatch.setattr(conv_mod, "_OFFSETS_KEPT", 3)
    ws = layers(6)
    rng = np.random.default_rng(9)
    x = rng.standard_normal((1, 8, 6, 6))
    want = [conv_reference(x, w, None, 1, 1, 1, 1) for w in ws]

    def loop(seed):
        for i in np.random.default_rng(seed).integers(0, 6, 40):
            np.testing.assert_allclose(wsekern.conv2d(x, ws[i], padding=1, n_threads=1),
                                       want[i], rtol=1e-10, atol=1e-10)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(loop, range(4)))            # re-raises what a thread raised
    assert len(conv_mod._OFFSETS_CACHE) <= 3


def test_a_forked_child_can_use_the_cache():
    """A process forked while another thread held the cache's lock (a multiprocessing or
    DataLoader worker started mid-call): the child's calls do not wait forever on a lock
    no thread of the child will release. Run in a child; the grandchild gives up after
    30 s (SIGALRM), which fails the test."""
    from conftest import run_in_child
    proc = run_in_child("""
        import os, signal
        import numpy as np
        import wsekern
        from wsekern import conv as conv_mod
        conv_mod.DIRECT_FIXED = -1e9                 # the direct path, which keeps offsets
        rng = np.random.default_rng(0)
        w = rng.standard_normal((8, 8, 3, 3)) * (rng.random((8, 8, 3, 3)) < 0.3)
        x = rng.standard_normal((1, 8, 6, 6))
        conv_mod._OFFSETS_LOCK.acquire()             # as a thread inside _keep_offsets
        pid = os.fork()
        if pid == 0:
            signal.alarm(30)
            y = wsekern.conv2d(x, w, padding=1)
            os._exit(0 if wsekern.conv2d_path(x, w, padding=1) == "direct"
                     and np.isfinite(y).all() else 3)
        conv_mod._OFFSETS_LOCK.release()
        _, status = os.waitpid(pid, 0)
        print(os.waitstatus_to_exitcode(status))
    """, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["0"], proc.stdout + proc.stderr[-2000:]


def test_a_weight_written_during_its_build_is_not_cached_as_the_new_bytes(monkeypatch):
    """Another thread writes the weights (an optimizer step) while a call builds their
    offsets: that call's answer is the race's, but the cache must not keep the offsets of
    the old values under the new bytes, or every later call with the new weights (the
    same bytes) is silently wrong. Simulated by a write inside the build."""
    monkeypatch.setattr(conv_mod, "DIRECT_FIXED", -1e9)
    monkeypatch.setattr(conv_mod, "_OFFSETS_CACHE", [])
    (w,) = layers(1)
    x = np.random.default_rng(10).standard_normal((2, 8, 7, 6))
    real = conv_mod._filter_offsets
    writes = []

    def build_then_written(*args):
        result = real(*args)
        if not writes:      # once: the last filter's values and pattern change (past
            w[-1] = np.where(w[-1] == 0, 1.0, 2 * w[-1])     # the first 64 bytes)
            writes.append(1)
        return result

    monkeypatch.setattr(conv_mod, "_filter_offsets", build_then_written)
    wsekern.conv2d(x, w, padding=1)                  # the racy call
    assert writes
    check(x, w)                                      # the new weights: the reference
    check(np.random.default_rng(11).standard_normal((1, 8, 5, 5)), w)   # a new geometry
