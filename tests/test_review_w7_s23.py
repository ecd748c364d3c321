"""review_w7: review of wafer23 (the send queue in the fused step chain; weight-stationary's
ramp floor).

The ramp floor adds (n - 1) * L to each column's int64 running sum of wavelets
(src/wsk_stream.h's WSK_SAMPLES_ROW). check_wpv bounds that sum alone (255 K N wpv + N <=
INT64_MAX) and ramp_floor_L bounded (N - 1) * L alone (<= 2**52): with both at their
limits the sum wrapped (signed overflow, undefined in C), and dense_stream's ``last`` came
out negative and its chain's completion wrong, silently. Now the pair is refused, naming
the floor, wpv and X's shape.
"""
from conftest import assert_refused_in_child, run_in_child

_HOSTILE = """
from wsekern._screen import DenseStep, dense_stream
from wsekern._step_cost import WsStep, ws_step_columns

K, N = 1, 3
x = np.full((K, N), 255, np.uint8)            # a column's bytes at 255: its sums at most
k_b = np.array([0, 0, 1], np.int_)            # two columns: the second takes the floor
wpv = (2**63 - 1 - N) // (255 * K * N)        # the largest check_wpv takes
L = np.array([2**40], np.int_)                # (N - 1) * L far below 2**52
dpipe = (L, 1.0, 1.0, 1.0, 1.0, 1.0, 4.0, -1, {shared})
wpipe = (L, 1.0, 1.0, 1.0, 1.0, 4.0, 0.0, -1, {shared})
args = (k_b, np.array([0, 1], np.int64), np.array([0], np.int32), np.array([1], np.int32),
        np.array([1.0]), np.zeros(2, np.int8), np.full(2, 100, np.int64),
        np.full(2, 100, np.int64))
cases = [lambda: dense_stream(x, k_b, 1.0, 1.0, wpv, 1.0, 0.0, dpipe),
         lambda: DenseStep(K, k_b, 1.0, 1.0, wpv, 1.0, 0.0, dpipe).run(x),
         lambda: ws_step_columns(x, *args, 1.0, 1.0, 1.0, wpv, 1.0, pipeline=wpipe),
         lambda: WsStep(K, *args, 1.0, 1.0, 1.0, wpv, 1.0, pipeline=wpipe).run(x)]
"""


def test_a_ramp_floor_whose_sums_pass_int64_is_refused_naming_it():
    """Each of the four step kernels refuses (in a child process) a wpv and L whose floored
    sums pass int64; on a9d9a2c dense_stream returned a negative ``last`` (wrapped)."""
    assert_refused_in_child(_HOSTILE.format(shared=True), 4,
                            needles=("ramp floor's sums", "pass int64"))


def test_the_same_figures_without_the_floor_are_taken():
    """The refusal is the floor's alone: shared False (no floor) runs those figures, and
    dense_stream's ``last`` is then the plain running sum, increasing."""
    proc = run_in_child(_HOSTILE.format(shared=False) + """
for case in cases:
    case()
last = dense_stream(x, k_b, 1.0, 1.0, wpv, 1.0, 0.0, dpipe)[2][:, 1]
print(bool((np.diff(last) > 0).all() and last[0] > 0))
""")
    assert proc.returncode == 0 and proc.stdout.split() == ["True"], proc.stderr[-2000:]
