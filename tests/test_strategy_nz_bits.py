"""A handed-over operand's pattern kept as bits until its step is costed (src/_nz_bits.pyx,
read through nn/columns.py): the bits are np.packbits' (little bit order) of NumPy's
pattern (``a != 0``, a fused ReLU's ``(g != 0) & (y > 0)``), on every SIMD path, with
NumPy's count; read back, each operand gives NumPy's bool pattern in its memory order, a
fresh array each time, whatever was taken or read after it."""
import numpy as np
import pytest
from conftest import run_in_child

from wsekern import _nz_bits
from wsekern.nn import columns

SPECIAL = np.array([0.0, -0.0, np.nan, np.inf, -np.inf, 1e-45, -1e-310, 1.0])
PATHS = ["avx512", "baseline"]


@pytest.fixture(params=PATHS)
def path(request):
    before = _nz_bits.use_simd_path("avx512")
    _nz_bits.use_simd_path(request.param)
    yield request.param
    _nz_bits.use_simd_path(before)


def _values(rng, shape, dtype, zeros=0.5):
    a = rng.standard_normal(shape)
    a[rng.random(shape) < zeros] = 0.0
    flat = a.reshape(-1)
    pick = rng.random(flat.size) < 0.1
    flat[pick] = rng.choice(SPECIAL, int(pick.sum()))
    return a.astype(dtype)


def _packed(nz):
    """NumPy's reference: the pattern in memory order, 8 elements a byte, little bit order,
    zero-padded to whole 64-bit words."""
    flat = np.ravel(nz, order="K")
    b = np.packbits(flat, bitorder="little")
    return np.concatenate([b, np.zeros(-len(b) % 8, np.uint8)])


SHAPES = [(1, 1), (1, 63), (1, 64), (1, 65), (3, 43), (16, 8), (784, 32), (10, 32)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES)
def test_the_bits_are_numpys_pattern_packed_and_counted(path, dtype, shape):
    rng = np.random.default_rng(sum(shape))
    a = _values(rng, shape, dtype)
    for view in (a, a.T, np.asfortranarray(a)):
        bits, count = _nz_bits.nonzero_bits(view)
        assert bits.dtype == np.uint64 and np.array_equal(bits.view(np.uint8),
                                                          _packed(view != 0))
        assert type(count) is int and count == np.count_nonzero(view)
        assert np.array_equal(_nz_bits.unpack(bits, view.size),
                              np.ravel(view != 0, order="K"))
    y = _values(rng, shape, dtype)
    bits, count = _nz_bits.relu_grad_bits(a, y)
    want = (a != 0) & (y > 0)                  # a NaN output is not > 0; a NaN g is nonzero
    assert np.array_equal(bits.view(np.uint8), _packed(want))
    assert count == np.count_nonzero(want)


def test_what_the_passes_do_not_take_is_left_to_numpy():
    a = np.ones((6, 8), np.float32)
    for r in (a[:, ::2], a.astype(np.float16), a.reshape(-1), np.zeros((0, 4), np.float32),
              a.astype(">f4"), np.asmatrix(a), [[1.0]], 2.0):
        assert _nz_bits.nonzero_bits(r) is None
        assert _nz_bits.relu_grad_bits(r, r) is None
    for y in (np.ones((6, 7), np.float32), a.astype(np.float64), np.asfortranarray(a)):
        assert _nz_bits.relu_grad_bits(a, y) is None
    bits = _nz_bits.nonzero_bits(a)[0]
    for n in (-1, 65):
        with pytest.raises(ValueError, match="n must lie within 0..64"):
            _nz_bits.unpack(bits, n)
    assert _nz_bits.unpack(bits, 0).shape == (0,)


def test_odd_buffers_and_large_arrays_without_a_crash():
    """Misaligned, read-only and large arrays, in a child process."""
    done = run_in_child("""
        import numpy as np
        from wsekern import _nz_bits
        buf = bytearray(4 * 64 + 1)
        odd = np.frombuffer(buf, np.float32, 64, offset=1).reshape(8, 8)
        assert _nz_bits.nonzero_bits(odd) is None and _nz_bits.relu_grad_bits(odd, odd) is None
        ro = np.arange(48, dtype=np.float64).reshape(6, 8)
        ro.setflags(write=False)
        bits, c = _nz_bits.nonzero_bits(ro)
        assert c == 47 and np.array_equal(_nz_bits.unpack(bits, 48), (ro != 0).ravel())
        big = np.zeros((3, (1 << 20) + 5), np.float32)
        big[2, -1], big[1, 7] = np.nan, -0.0
        bits, c = _nz_bits.nonzero_bits(big)
        assert c == 1 and _nz_bits.unpack(bits, big.size)[-1]
        try:
            _nz_bits.unpack(np.zeros(2, np.uint32), 3)       # not the passes' words
        except ValueError:
            print("ok")
    """)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


@pytest.mark.parametrize("order", ["C", "F"])
def test_a_taken_operand_reads_as_numpys_pattern_in_its_memory_order(path, order):
    rng = np.random.default_rng(4)
    a = np.asarray(_values(rng, (37, 9), np.float32), order=order)
    t = columns.taken(a)
    assert isinstance(t, columns.Nonzeros) and t.shape == a.shape
    assert t.nbytes == 8 * -(-a.size // 64)                 # bits, not a bool per element
    want = a != 0
    p, nnz = columns.pattern_nnz(t)
    assert p.dtype == np.bool_ and np.array_equal(p, want) and p.strides == want.strides
    assert nnz == np.count_nonzero(want)
    assert np.array_equal(columns.row_counts(t), np.count_nonzero(want, axis=1))


def test_a_fused_relus_gradient_reads_as_numpys(path):
    rng = np.random.default_rng(5)
    g, y = _values(rng, (32, 70), np.float32), _values(rng, (32, 70), np.float32)
    sm = columns.SampleMajor(g, relu=y)
    want = ((g != 0) & (y > 0)).T
    assert sm.shape == want.shape and sm.nbytes == 8 * -(-g.size // 64)
    p, nnz = sm.pattern_nnz()
    assert np.array_equal(p, want) and p.strides == want.strides
    assert nnz == np.count_nonzero(want)
    assert np.array_equal(sm.row_counts(), want.sum(axis=1))
    g[:] = 0.0                                   # the step's gradient memory reused: kept
    assert np.array_equal(sm.pattern(), want)


def test_each_operand_reads_its_own_pattern_whatever_was_read_after_it(path):
    """A queued step is costed after later steps handed theirs over: each read is a fresh
    array, and one read (or written to) later does not change an earlier one."""
    rng = np.random.default_rng(6)
    arrays = [_values(rng, (48, 16), np.float32, zeros=z) for z in (0.2, 0.5, 0.9)]
    arrays.append(arrays[0].T)                   # the same shape's transpose, F order
    g, y = _values(rng, (16, 48), np.float32), _values(rng, (16, 48), np.float32)
    taken = [columns.taken(a) for a in arrays] + [columns.SampleMajor(g, relu=y)]
    wants = [a != 0 for a in arrays] + [((g != 0) & (y > 0)).T]
    first = [t.pattern() for t in taken]
    later = [t.pattern_nnz()[0] for t in reversed(taken)][::-1]
    for a, b, want in zip(first, later, wants):
        assert a is not b and np.array_equal(a, want) and np.array_equal(b, want)
    for p in later:
        p[...] = True                            # a costing that wrote to what it read
    for t, a, want in zip(taken, first, wants):
        assert np.array_equal(a, want) and np.array_equal(t.pattern(), want)
