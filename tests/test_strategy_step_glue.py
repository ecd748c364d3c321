"""The step costing's one pass over a layer's float operands (src/_step_glue.pyx, read
through nn/columns.py): each pattern and count is NumPy's (``a != 0``, ``(g != 0) &
(y > 0)``, ``np.count_nonzero``), in the same memory order; an array the pass does not take
is left to NumPy; and a whole training run costed through it gives the figures of the same
run costed with NumPy's patterns (and each step training.step_cost's), whatever changes
mid-run: a weight that becomes zero, a new batch size, a last short batch, a longer
sequence, a NaN in a layer's input (from a NaN bias: fit refuses NaN data)."""
import numpy as np
import pytest
import scipy.sparse as sps
from conftest import run_in_child

import wsekern as wk
from wsekern import nn
from wsekern._step_glue import nonzero_pattern, relu_grad_pattern
from wsekern.nn import columns
from wsekern.nn import layers as L
from wsekern.nn.strategy import LayerPlacement, WaferStrategy
from wsekern.wafer import analytic, training
from wsekern.wafer.placement import WeightStats

SPECIAL = np.array([0.0, -0.0, np.nan, np.inf, -np.inf, 1e-45, -1e-310, 1.0])


def _values(rng, shape, dtype, zeros=0.5):
    """Random values with zeros of both signs, NaN, infinities and subnormals sprinkled."""
    a = rng.standard_normal(shape)
    a[rng.random(shape) < zeros] = 0.0
    flat = a.reshape(-1)
    pick = rng.random(flat.size) < 0.1
    flat[pick] = rng.choice(SPECIAL, int(pick.sum()))
    return a.astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1, 1), (3, 17), (16, 1), (33, 5), (784, 32), (10, 32)])
def test_the_pattern_and_its_count_are_numpys_in_its_memory_order(dtype, shape):
    rng = np.random.default_rng(sum(shape))
    a = _values(rng, shape, dtype)
    for view in (a, np.asfortranarray(a), a.T, np.ascontiguousarray(a.T)):
        nz, count = nonzero_pattern(view)
        want = view != 0
        assert nz.dtype == np.bool_ and nz.shape == want.shape
        assert np.array_equal(nz, want)
        assert nz.strides == want.strides          # the layout the costing reads as NumPy's
        assert type(count) is int and count == np.count_nonzero(want)


def test_arrays_the_pass_does_not_take_are_left_to_numpy():
    rng = np.random.default_rng(1)
    a = _values(rng, (12, 8), np.float32)
    refused = [a[:, ::2], a[::2], a.astype(np.float16), (a > 0).astype(np.int32),
               a.reshape(-1),
               a.reshape(3, 4, 8), np.zeros((0, 4), np.float32), a.astype(">f4"),
               np.ma.masked_array(a), np.asmatrix(a), [[1.0, 0.0]], 3.0]
    for r in refused:
        assert nonzero_pattern(r) is None
        assert relu_grad_pattern(r, r) is None
        # and columns reads each as NumPy does
        if isinstance(r, np.ndarray) and r.ndim == 2:
            nz, count = columns.pattern_nnz(r)        # no count: the caller counts
            assert np.array_equal(nz, r != 0) and count is None
            assert columns.taken(r) is r


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1, 1), (5, 3), (32, 1024), (7, 33)])
def test_a_fused_relus_gradient_pattern_is_numpys(dtype, shape):
    rng = np.random.default_rng(shape[1])
    g, y = _values(rng, shape, dtype), _values(rng, shape, dtype)
    nz, count = relu_grad_pattern(g, y)
    want = (g != 0) & (y > 0)
    assert np.array_equal(nz, want) and nz.flags.c_contiguous
    assert type(count) is int and count == np.count_nonzero(want)
    # SampleMajor with the ReLU's output is SampleMajor with its keep mask, and NumPy's
    # (a float16 output and a Fortran-ordered gradient take NumPy's way)
    y16 = y.astype(np.float16)
    for sm, want, counted in ((columns.SampleMajor(g, relu=y), want, True),
                              (columns.SampleMajor(g, relu=y16), (g != 0) & (y16 > 0), False),
                              (columns.SampleMajor(np.asfortranarray(g), relu=y), want,
                               shape[0] == 1 or shape[1] == 1)):
        assert np.array_equal(columns.SampleMajor(g, keep=want).pattern(), want.T)
        assert sm.shape == shape[::-1]
        assert np.array_equal(sm.pattern(), want.T)
        p, c = sm.pattern_nnz()                       # the count where it came free
        assert np.array_equal(p, want.T)
        assert c == (np.count_nonzero(want) if counted else None)
        assert np.array_equal(sm.row_counts(), np.count_nonzero(want, axis=0))


def test_odd_buffers_are_left_to_numpy_without_a_crash():
    """Misaligned, read-only and large arrays, in a child process."""
    done = run_in_child("""
        import numpy as np
        from wsekern._step_glue import nonzero_pattern, relu_grad_pattern
        buf = bytearray(4 * 64 + 1)
        odd = np.frombuffer(buf, np.float32, 64, offset=1).reshape(8, 8)
        assert not odd.flags.aligned and odd.flags.c_contiguous
        assert nonzero_pattern(odd) is None and relu_grad_pattern(odd, odd) is None
        ro = np.arange(48, dtype=np.float64).reshape(6, 8)
        ro.setflags(write=False)
        nz, c = nonzero_pattern(ro)
        assert np.array_equal(nz, ro != 0) and c == 47
        big = np.zeros((3, 1 << 20), np.float32)
        big[2, -1] = -0.0
        big[1, 7] = np.nan
        nz, c = nonzero_pattern(big)
        assert c == 1 and nz[1, 7]
        nz, c = relu_grad_pattern(big, np.ones_like(big))
        assert c == 1 and nz[1, 7]
        print("ok")
    """)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_a_fused_relus_gradient_pattern_refuses_what_does_not_match():
    g = np.ones((4, 6), np.float32)
    for y in (np.ones((4, 5), np.float32), np.ones((4, 6), np.float64),
              np.ones((6, 4), np.float32).T, np.ones((4, 12), np.float32)[:, ::2]):
        assert relu_grad_pattern(g, y) is None
    assert relu_grad_pattern(np.asfortranarray(np.ones((4, 6), np.float32)),
                             np.ones((4, 6), np.float32)) is None


def test_an_operand_taken_when_handed_over_reads_as_the_array():
    rng = np.random.default_rng(2)
    a = _values(rng, (40, 9), np.float32).T                # K x N, a batch seen transposed
    t = columns.taken(a)
    assert isinstance(t, columns.Nonzeros) and t.shape == a.shape
    assert np.array_equal(columns.pattern(t), a != 0)
    assert np.array_equal(columns.row_counts(t), columns.row_counts(a))
    assert columns.pattern_nnz(t)[1] == np.count_nonzero(a)
    cc = columns.ConvColumns(np.ones((1, 3, 3, 1), np.float32), ((0, 0), (0, 0)), (2, 2),
                             (1, 1), (1, 1))
    assert columns.taken(cc) is cc


def test_the_dense_screen_given_the_count_gives_its_own_figures():
    cfg = wk.WaferConfig.small(8, 8)
    W = sps.csr_array(np.ones((6, 30)))
    plan = analytic.dense_screen(WeightStats(W), cfg, (0, 0, 3, 4))
    rng = np.random.default_rng(5)
    for x_nz in (rng.random((30, 7)) < 0.4, np.ones((30, 7), bool), np.ones((30, 7), bool)):
        want = analytic.dense_screen_cycles(dict(plan), x_nz, cfg)
        assert analytic.dense_screen_cycles(plan, x_nz, cfg, int(x_nz.sum())) == want


def test_a_links_kept_figures_are_its_step_of_the_config_and_regions():
    for cfg in (wk.WaferConfig.wse2(), wk.WaferConfig.small(9, 9, dtype="fp16")):
        for src, dst in (((0, 0, 4, 5), (0, 5, 3, 2)), ((0, 0, 1, 1), (6, 7, 2, 2))):
            plan = training.link_plan(cfg, src, dst)
            for args in ((100, 40, 100, True), (333, 0, 333, False), (7, 7, 0, True)):
                got = training.link_step(cfg, src, dst, *args, plan)
                nonzeros = round(args[0] * args[1] / max(args[2], 1))
                dense = -(-args[0] // cfg.values_per_dense_wavelet)
                forward = min(dense, nonzeros * cfg.wavelets_per_sparse_value)
                back = dense if args[3] else 0
                hops = training.link_hops(src, dst) * cfg.hop_cycles + 2 * cfg.ramp_cycles
                lanes = max(1, min(src[2], dst[2])) * cfg.link_wavelets_per_cycle
                assert got == training.link_step(cfg, src, dst, *args)
                assert got == (forward, back, (forward + back) / lanes + hops, hops)



def test_a_link_costs_again_when_a_region_or_the_config_changes():
    # FabricLink keeps training.link_plan keyed by the config and both regions (by
    # identity): a region given anew (another placement) or another config is planned again
    import dataclasses
    from types import SimpleNamespace

    from wsekern.nn.strategy import FabricLink
    src = SimpleNamespace(region=(0, 0, 4, 5), last_output_size=100)
    dst = SimpleNamespace(region=(0, 5, 4, 2), last_input_nnz=40, last_input_size=100,
                          needs_input_grad=True)
    link = FabricLink(src, dst)
    wse2 = wk.WaferConfig.wse2()
    cfgs = (wse2, dataclasses.replace(wse2, hop_cycles=4.0, ramp_cycles=3.0))
    steps = ((cfgs[0], (0, 0, 4, 5), (0, 5, 4, 2)), (cfgs[0], (0, 0, 1, 1), (6, 7, 2, 2)),
             (cfgs[0], (0, 0, 1, 1), (0, 1, 3, 3)), (cfgs[1], (0, 0, 1, 1), (0, 1, 3, 3)))
    for cfg, a, b in steps:
        src.region, dst.region = a, b
        before = link.totals["cycles"]
        link.cost_step(cfg)
        want = training.link_step(cfg, a, b, 100, 40, 100, True)
        assert (link.last_latency, link.totals["cycles"] - before) == (want[3], want[2])


# -- a run costed through the pass is the run costed with NumPy's patterns --------------
def _numpy_only(monkeypatch):
    """Every pattern and count through NumPy's way, as before the pass."""
    monkeypatch.setattr(columns, "nonzero_pattern", lambda a: None)
    monkeypatch.setattr(columns, "relu_grad_pattern", lambda g, y: None)


def _model(strategy, inputs=(20,)):
    nn.utils.set_random_seed(0)
    with strategy.scope():
        model = nn.Sequential([nn.Input(inputs),
                               L.Dense(48, activation="relu", name="a", sparsity=0.6),
                               L.Dense(24, activation="relu", name="b"),
                               L.Dense(4, name="c")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


def _run(mode, steps_seen, sequence=False):
    """A short training run with every change the costing's fast path keys on; returns
    the figures a reader sees and each step's (layer, x pattern, g pattern, parts)."""
    strategy = WaferStrategy(wk.WaferConfig.small(24, 24), mode=mode)
    rng = np.random.default_rng(11)
    if sequence:
        model = _model(strategy, inputs=(None, 20))
        for T in (3, 3, 5, 2):                     # a longer sequence, then shorter
            x = np.maximum(rng.standard_normal((4, T, 20)), 0).astype(np.float32)
            model.train_on_batch(x, rng.integers(0, 4, (4, T)))
    else:
        model = _model(strategy)

        def batch(n):
            return (np.maximum(rng.standard_normal((n, 20)), 0).astype(np.float32),
                    rng.integers(0, 4, n))
        for _ in range(2):
            model.train_on_batch(*batch(8))
        x, y = batch(8)
        x[:, :7] = 0.0                                # inputs with many zeros
        model.train_on_batch(x, y)
        w = model.layers[1].get_weights()
        w[0][:, :3] = 0.0                             # a dense layer's weights become zero
        model.layers[1].set_weights(w)
        model.train_on_batch(*batch(8))
        model.train_on_batch(*batch(5))               # a new batch size
        x, y = batch(21)
        model.fit(x, y, batch_size=8, epochs=1, verbose=0)   # its last batch short (5)
        w = model.layers[1].get_weights()
        w[1][2] = np.nan                  # a NaN in the next layer's input: nonzero there
        model.layers[1].set_weights(w)
        model.train_on_batch(*batch(8))
    report = model.wafer_report().to_dict()
    report.pop("cpu_samples_per_s")
    per_layer = [(p.layer.name, dict(p.totals), p.sram_peak, p.activation_zeros,
                  p.last_input_nnz, p.columns_max) for p in strategy.placements]
    edges = [dict(e.totals) for e in strategy.edges]
    return report, list(strategy.step_cycles), per_layer, edges, steps_seen


@pytest.fixture
def recorded(monkeypatch):
    steps = []
    original = LayerPlacement.cost_step

    def cost_step(self, cfg, mode):
        x_nz = columns.pattern(self.last_input).copy()
        g_nz = columns.pattern(self.last_grad).copy()
        before = dict(self.totals)
        out = original(self, cfg, mode)
        parts = {k: self.totals[k] - before[k] for k in before}
        W = sps.csr_array(self.weight_matrix().astype(np.float64))
        steps.append((self.layer.name, cfg, mode, self.region, W, x_nz, g_nz,
                      self.needs_input_grad, parts))
        return out
    monkeypatch.setattr(LayerPlacement, "cost_step", cost_step)
    return steps


@pytest.mark.parametrize("mode,sequence", [("layer-pipelined", False),
                                           ("weight-streaming", False),
                                           ("layer-pipelined", True)])
def test_a_run_costed_through_the_pass_is_the_run_costed_by_numpy(monkeypatch, recorded,
                                                                  mode, sequence):
    fast = _run(mode, list(recorded), sequence)
    fast_steps = list(recorded)
    recorded.clear()
    _numpy_only(monkeypatch)
    slow = _run(mode, list(recorded), sequence)
    slow_steps = list(recorded)
    assert fast[:4] == slow[:4]                      # every figure, exactly
    assert len(fast_steps) == len(slow_steps) > 0
    if not sequence:                    # the last step's NaN feature reached layer c
        last_c = [f for f in fast_steps if f[0] == "c"][-1]
        assert last_c[5][2].all()
    for f, s in zip(fast_steps, slow_steps):
        assert f[0] == s[0] and f[8] == s[8]
        assert np.array_equal(f[5], s[5]) and np.array_equal(f[6], s[6])
        assert f[5].strides == s[5].strides
    # and each step is the full costing of its NumPy patterns on the weights it had
    for name, cfg, mode_, region, W, x_nz, g_nz, needs, parts in slow_steps:
        want, _, _ = training.step_cost(cfg, mode_, region, W, WeightStats(W),
                                        WeightStats(sps.csr_array(W.T)), x_nz, g_nz, needs)
        for k in want:
            assert parts[k] == pytest.approx(want[k], rel=1e-12, abs=0.0), (name, k)
