"""What every cost model reports the same way: per-PE maps on the wafer's grid, energy.

Shared by the analytic models (analytic.py, mesh.py) and the event engine (event.py),
so a number means the same thing in every SimReport.
"""
import numpy as np


def wafer_array(config, region, values, extra=(), full=True):
    """``values`` placed on a wafer-sized grid (or, with ``full=False``, on the region only:
    the training loop's per-step costing needs the numbers, not the maps)."""
    r0, c0, R, C = region
    if not full:
        return np.broadcast_to(np.asarray(values, dtype=np.float64), (R, C) + tuple(extra))
    out = np.zeros((config.rows, config.cols) + tuple(extra), dtype=np.float64)
    out[r0:r0 + R, c0:c0 + C] = values
    return out


def energy(config, macs_performed, sram_access_bytes, hops, pes, cycles):
    """Joules: dynamic (FMACs, SRAM bytes, wavelet hops) plus static (PE-cycles)."""
    pj = (config.pj_per_fmac[config.dtype] * macs_performed
          + config.pj_per_sram_byte * sram_access_bytes
          + config.pj_per_wavelet_hop * hops
          + config.static_pj_per_pe_cycle * pes * cycles)
    return pj * 1e-12
