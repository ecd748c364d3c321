"""Per-PE SRAM accounting: every buffer a mapping needs is allocated by name."""
import numpy as np

from ..errors import SramOverflowError


class SramLedger:
    """Bytes per PE of a ``rows x cols`` region, one named buffer at a time.

    ``alloc(name, nbytes)`` takes a scalar (every PE) or an array of the region's
    shape; ``check()`` raises :class:`SramOverflowError` naming the fullest PE, the
    bytes it needs, the bytes it has and the breakdown. The code/runtime reserve
    is always the first entry.
    """

    def __init__(self, config, region):
        self.config = config
        self.row0, self.col0, self.rows, self.cols = region
        self.buffers = {"reserve (code/runtime)": np.full((self.rows, self.cols),
                                                          config.reserve_bytes, dtype=np.int64)}

    def alloc(self, name, nbytes):
        arr = np.broadcast_to(np.asarray(nbytes, dtype=np.int64), (self.rows, self.cols))
        if (arr < 0).any():
            raise ValueError(f"buffer {name!r} asks for a negative size")
        if name in self.buffers:
            self.buffers[name] = self.buffers[name] + arr
        else:
            self.buffers[name] = arr.copy()
        return self

    def total(self):
        return sum(self.buffers.values())

    def breakdown(self, r, c):
        """{buffer: bytes} at region-relative PE (r, c)."""
        return {name: int(arr[r, c]) for name, arr in self.buffers.items() if arr[r, c]}

    def check(self, what=""):
        total = self.total()
        r, c = np.unravel_index(int(np.argmax(total)), total.shape)
        need = int(total[r, c])
        cap = self.config.sram_bytes
        if need > cap:
            parts = ", ".join(f"{k} {v:,} B" for k, v in self.breakdown(r, c).items())
            raise SramOverflowError(
                f"{what + ': ' if what else ''}PE ({self.row0 + r}, {self.col0 + c}) needs "
                f"{need:,} B of SRAM but has {cap:,} B ({cap - self.config.reserve_bytes:,} B "
                f"free for data after the {self.config.reserve_bytes:,} B reserve); breakdown: "
                f"{parts}. Use a larger region, region=None to let the placer choose, or "
                f"another mapping.",
                pe=(int(self.row0 + r), int(self.col0 + c)), needed=need, capacity=cap,
                free=cap - self.config.reserve_bytes, breakdown=self.breakdown(r, c))
        return total
