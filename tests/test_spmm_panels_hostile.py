"""Hostile arrays given to the panel path's native functions (_spmm.build_row_panels,
_spmm.panel_spmm_live) directly: each is refused with a ValueError, never read or written
out of bounds. Run in a child process (a crash fails the test, not the run).

Both functions trust arrays their only caller (PackedSparse.row_panels) made, so these
inputs do not reach them from the public API; they are guarded as the panel functions'
other inconsistent arrays are (test_spmm_panels)."""
from conftest import assert_refused_in_child

_POINTERS = """
import numpy as np
from wsekern import _spmm
pdata, prows = np.ones(2, np.float32), np.zeros(2, np.int32)
X, alive = np.ones((2, 3), np.float32), np.ones(2, np.uint8)
def live(pindptr):
    # 2 panels of 2 rows, K = 2: 5 pointers, the last one within the 2 entries
    _spmm.panel_spmm_live(pdata, prows, np.array(pindptr, np.int32), 2, 4, X, alive,
                          np.zeros((4, 3), np.float32), 1)
cases = [lambda: live([0, 2, 1, 2, 2]),          # decreasing: column 1 of panel 0 ends first
         lambda: live([0, 1 << 20, 1 << 20, 2, 2]),   # past the entries
         lambda: live([0, 0, 0, 3, 2]),          # past the entries, then back
         lambda: live([-5, 0, 0, 1, 2])]         # before the entries
"""


def test_panel_spmm_live_refuses_pointers_outside_its_entries():
    """panel_spmm_live reads pdata and prows from pindptr[b * K + k] to the next pointer of
    each live column of each panel: a pointer below 0, past the entries or below the one
    before is refused (a check per live column and panel, in the loop it already runs)."""
    assert_refused_in_child(_POINTERS, 4, needles=("panel",))


_INDICES = """
import numpy as np
from wsekern import _spmm
ptr = np.array([0, 2, 3], np.int32)
def build(bad):
    ind = np.array([0, bad, 1], np.int32)
    _spmm.build_row_panels(ind, ptr, 3, 64, np.zeros(4, np.int32), np.zeros(3, np.int32),
                           np.zeros(3, np.int32))
cases = [lambda: build(3), lambda: build(5000000), lambda: build(-1), lambda: build(-2**31),
         lambda: _spmm.build_row_panels(np.array([0, 1, 1], np.int32),      # indptr falls
                                        np.array([0, 4, 3], np.int32), 3, 64,
                                        np.zeros(4, np.int32), np.zeros(3, np.int32),
                                        np.zeros(3, np.int32))]
"""


def test_build_row_panels_refuses_column_indices_out_of_range():
    """build_row_panels adds one to the pointer of each stored weight's column: a column
    index outside [0, K), or an indptr that does not rise from 0, is refused before anything
    is written."""
    assert_refused_in_child(_INDICES, 5, needles=("column", "index", "indices"))
