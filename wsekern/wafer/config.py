"""The simulated machine's parameters: ``WaferConfig`` and its presets.

Source tags on the constants: [P] primary source, [S] secondary, [M] the independent
WSE-3 measurement study, [A] an assumption of ours (no public number).
"""
import math
from dataclasses import asdict, dataclass, field, fields, replace

import numpy as np

DTYPES = ("fp16", "fp32")
PRESETS = ("wse2", "wse3", "small")     # the names WaferConfig.preset resolves

# A wafer-scale die is at most the ~215 mm square a 300 mm wafer holds (46,225 mm^2 on
# WSE-1..3); at their ~0.2 mm PE pitch that is 750 x 994 usable PEs. 2048 a side leaves
# room for a PE half as wide and keeps a report's per-PE maps (48 B a PE) near 200 MB.
MAX_SIDE = 2048
MAX_LATENCY = 1e4      # cycles; the slowest measured step (a turn) is ~20 [M]

# field -> (kind, low, high, unit): the closed range of values a physical machine can
# have ("int", "real", or "cycles": a real that is a whole number; finite always: NaN and
# inf are refused). Rates and clocks have a positive floor: they divide. A new field adds
# a row here.
# "cycles": the latencies and task costs the event simulation times wavelets and tasks
# with. The fabric and its cores are clocked (PE-to-PE latency one cycle [P]; 2.000 cycles
# a hop [M]), so each is a whole number of cycles, as in every preset; the event engine
# runs at whole cycles and would round a fraction up silently (a hop of 0.5 costs 1),
# while the analytic model's bounds took it as given (and then did not hold).
LIMITS = {
    "rows": ("int", 1, MAX_SIDE, "PEs"),
    "cols": ("int", 1, MAX_SIDE, "PEs"),
    "sram_bytes": ("int", 1, 1 << 24, "bytes"),          # 16 MiB a PE: 300x any wafer built
    "reserve_bytes": ("int", 0, (1 << 24) - 1, "bytes"),
    "queue_depth": ("int", 1, 1024, "wavelets"),
    "colors": ("int", 1, 32, "colours"),                  # the wavelet's colour field: 5 bits [P]
    "clock_hz": ("real", 1e6, 1e11, "Hz"),
    "hop_cycles": ("cycles", 0.0, MAX_LATENCY, "cycles"),
    "ramp_cycles": ("cycles", 0.0, MAX_LATENCY, "cycles"),
    "turn_cycles": ("cycles", 0.0, MAX_LATENCY, "cycles"),
    "stage_cycles": ("cycles", 0.0, MAX_LATENCY, "cycles"),
    "task_cycles": ("cycles", 0.0, MAX_LATENCY, "cycles"),
    "setup_cycles": ("cycles", 0.0, MAX_LATENCY, "cycles"),
    "scalar_cycles_per_element": ("cycles", 0.0, MAX_LATENCY, "cycles"),
    # at most 1e4 cycles a wavelet, at most 64 wavelets a cycle on one link
    "link_wavelets_per_cycle": ("real", 1e-4, 64.0, "wavelets per cycle"),
    "external_bytes_per_s": ("real", 1e6, 1e16, "bytes/s"),
    "pj_per_sram_byte": ("real", 0.0, 1e6, "pJ"),
    "pj_per_wavelet_hop": ("real", 0.0, 1e6, "pJ"),
    "static_pj_per_pe_cycle": ("real", 0.0, 1e6, "pJ"),
    "dsd_issue_cycles": ("real", 0.0, MAX_LATENCY, "cycles"),
    "task_switch_cycles": ("real", 0.0, MAX_LATENCY, "cycles"),
    "stream_stage_cycles": ("real", 0.0, MAX_LATENCY, "cycles"),
    "fabric_elem_cycles": ("real", 0.0, MAX_LATENCY, "cycles"),
    "launch_cycles": ("real", 0.0, MAX_LATENCY, "cycles"),
    "routing_paths_per_pe": ("int", 1, 1024, "paths"),
}
# dict fields: per dtype, a number in [low, high]
TABLE_LIMITS = {
    "fmac_per_cycle": (1 / 64, 1024.0, "FMAC per cycle"),
    "pj_per_fmac": (0.0, 1e6, "pJ"),
    "dsd_lanes": (1 / 64, 1024.0, "elements per cycle"),
}


def _checked(name, value, kind, low, high, unit):
    """``value`` as a Python int or float if it lies in the field's range; else ValueError
    naming the field, the value and the range."""
    what = {"int": "an int", "real": "a finite number",
            "cycles": "a whole number of cycles"}[kind]
    span = f"[{low:g}, {high:g}] {unit}"
    types = (int, np.integer) if kind == "int" else (int, float, np.integer, np.floating)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, types):
        raise ValueError(f"WaferConfig.{name} must be {what} in {span}; received {value!r} "
                         f"({type(value).__name__})")
    value = int(value) if kind == "int" else float(value)
    if not low <= value <= high:          # False for NaN
        raise ValueError(f"WaferConfig.{name} must be {what} in {span}; received {value!r}")
    if kind == "cycles" and not value.is_integer():
        raise ValueError(f"WaferConfig.{name} must be {what} in {span} (the fabric and its "
                         f"cores are clocked: the event simulation times wavelets and tasks "
                         f"at whole cycles); received {value!r}: take {math.floor(value):g} "
                         f"or {math.ceil(value):g}")
    return value


def _fmac_wse2():
    # fp16: "up to eight operations per clock" = 4 FMAC/cycle [P: white paper];
    # fp32: 1 FMAC/cycle nominal [S].
    return {"fp16": 4.0, "fp32": 1.0}


def _dsd_lanes():
    # Elements per cycle of a short vector FMAC once issued: fp16 SIMD lanes 0-7 on WSE-3
    # [S: csl-skills; M: lanes observed on FMACH]; fp32 FMA 0.5/cycle on silicon [M].
    return {"fp16": 8.0, "fp32": 0.5}


def _fmac_pj():
    # [A] ~1 pJ per fp16 FMAC at 7 nm (Horowitz-style scaling of a 45 nm 1.5 pJ fp16 FMA);
    # fp32 about 3x. Consistent with the 30 mW / 1.1 GHz = 27 pJ per core-cycle budget [S: HC34].
    return {"fp16": 1.0, "fp32": 3.0}


@dataclass(frozen=True)
class WaferConfig:
    """A wafer-scale dataflow engine: a grid of PEs with capped SRAM on a 2-D mesh.

    Every field has a WSE-2-like default, its source tagged beside it (the table of them:
    docs/simulator.md); ``wse2()``, ``wse3()`` and ``small(rows, cols)`` are presets, each
    taking keyword overrides, and ``preset(name, **overrides)`` resolves one by name. Each
    field must lie in the physical range of ``wsekern.wafer.config.LIMITS``; a value outside
    it is refused with a ``ValueError`` naming the field, the value and the range.

    Parameters
    ----------
    rows, cols : int
        The grid of PEs a program gets (750 x 994 on a WSE-2).
    sram_bytes : int
        SRAM per PE (48 KiB).
    reserve_bytes : int
        SRAM kept by the code and runtime; the rest holds data.
    clock_hz : float
        The clock (850 MHz).
    dtype : {"fp16", "fp32"}
        The on-fabric element type (separate from the CPU arrays' dtype).
    fmac_per_cycle, dsd_lanes, pj_per_fmac : dict
        Per dtype: multiply-adds per cycle, vector lanes, energy per multiply-add.
    hop_cycles, ramp_cycles, turn_cycles, stage_cycles : float
        Fabric latencies: a hop, the core-router ramp, a change of direction, a relay
        stage. Whole numbers of cycles (the fabric is clocked).
    task_cycles, setup_cycles, scalar_cycles_per_element : float
        A task's start, a vector op's set-up, a scalar-code element (compressed operands).
        Whole numbers of cycles (the cores are clocked).
    link_wavelets_per_cycle : float
        Link bandwidth.
    queue_depth, colors : int
        Router queue depth in wavelets; routable colours (virtual channels).
    external_bytes_per_s : float
        Bandwidth of the weight-streaming memory.
    pj_per_sram_byte, pj_per_wavelet_hop, static_pj_per_pe_cycle : float
        Energy per event.
    dsd_issue_cycles, task_switch_cycles, stream_stage_cycles, fabric_elem_cycles, \
launch_cycles : float
        Instruction-level costs fitted to WSE-3 measurements.
    routing_paths_per_pe : int
        Routing paths a PE can hold (caps MeshGEMV's groups).

    Examples
    --------
    >>> from wsekern import WaferConfig
    >>> WaferConfig.wse3(rows=16, cols=16, dtype="fp32").hop_cycles
    2.0
    """
    rows: int = 750                       # usable program rectangle 750 x 994 [P: sdk-examples]
    cols: int = 994
    sram_bytes: int = 49_152              # 48 KiB per PE; link limit exactly 49,152 B [P, M]
    reserve_bytes: int = 4_176            # minimal kernel code/runtime, leaves 44,976 B [M]
    clock_hz: float = 850e6               # the SDK benchmark scripts' clock [P]
    dtype: str = "fp16"                   # on-fabric element type (ML use) [P]
    fmac_per_cycle: dict = field(default_factory=_fmac_wse2)
    hop_cycles: float = 1.0               # PE-to-PE latency 1 cycle [P: white paper; HPDC'24]
    ramp_cycles: float = 2.0              # core <-> router, T_R ~ 2 [P: HPDC'24]
    turn_cycles: float = 0.0              # WSE-2: not measured; [A] no extra cost
    stage_cycles: float = 5.0             # store-and-forward stage 2*T_R + 1 [P: HPDC'24 model]
    task_cycles: float = 4.0              # wavelet-triggered task activation [A]
    setup_cycles: float = 15.0            # DSD vector-op setup, 8-17 measured [M]
    scalar_cycles_per_element: float = 22.0   # scalar loop per element, 22-25 [M]
    link_wavelets_per_cycle: float = 1.0  # one 32-bit wavelet/cycle/direction [P]
    queue_depth: int = 4                  # router queue per colour [A] ("small" [P: topic-09])
    colors: int = 24                      # routable colours on WSE-2 [S, M]
    external_bytes_per_s: float = 150e9   # MemoryX, 12 x 100 GbE [?: unconfirmed]
    pj_per_fmac: dict = field(default_factory=_fmac_pj)
    pj_per_sram_byte: float = 0.25        # [A] 8-bank single-cycle SRAM, ~2 pJ per 64-bit access
    pj_per_wavelet_hop: float = 1.0       # [A] 32 bits over ~0.2 mm of wire plus a router
    static_pj_per_pe_cycle: float = 2.0   # [A] leakage and clock tree of an idle PE
    # Instruction-level costs of the mesh programs (MeshGEMV, MeshGEMM): fitted to WSE-3 cycles
    # measured on hardware (wsekern/wafer/data/wse3_*.csv) by wsekern/wafer/calibrate.py, which
    # prints the fit; used on WSE-2 too, where they are an extrapolation [A].
    dsd_lanes: dict = field(default_factory=_dsd_lanes)
    dsd_issue_cycles: float = 4.9         # a vector instruction issued from a @map loop (fit:
                                          # GEMM 8x8x8 at P=16 against the 1x1x1 rows)
    task_switch_cycles: float = 27.5      # a local task activated/unblocked and run (fit: the
                                          # GEMM 1x1x1 slope; 4 per Cannon step, 1 per shift)
    stream_stage_cycles: float = 9.1      # a core relaying a stream it adds into (fabric in ->
                                          # faddh -> fabric out), cut-through (fit: GEMV slope
                                          # and group_num sweep)
    fabric_elem_cycles: float = 0.88      # per element of a DSD op on a fabric operand (fit:
                                          # GEMV Nt=8 vs Nt=1; 1.125 per wavelet in [M])
    launch_cycles: float = 80.0           # a program iteration's entry (calls, branches, DSR
                                          # loads) besides its DSD ops (fit: the intercepts)
    routing_paths_per_pe: int = 32        # 5-bit colour: at most 2^5 paths per PE [P]; caps
                                          # MeshGEMV's group_num (one phase-2 path per group)

    def __setstate__(self, state):
        # an unpickled config (or a copy) is checked as a new one is: a pickle written
        # before a range narrowed (whole-cycle latencies, session 20) is refused, not run
        for name, value in state.items():
            object.__setattr__(self, name, value)
        self.__post_init__()

    def __post_init__(self):
        for name, (kind, low, high, unit) in LIMITS.items():
            object.__setattr__(self, name, _checked(name, getattr(self, name), kind, low, high,
                                                    unit))
        if not self.reserve_bytes < self.sram_bytes:
            raise ValueError(f"WaferConfig.reserve_bytes must be an int in [0, "
                             f"{self.sram_bytes - 1}] bytes (below sram_bytes="
                             f"{self.sram_bytes}); received {self.reserve_bytes}")
        if self.dtype not in DTYPES:
            raise ValueError(f"WaferConfig.dtype must be one of {DTYPES}; received {self.dtype!r}")
        for name, (low, high, unit) in TABLE_LIMITS.items():
            table = getattr(self, name)
            if not isinstance(table, dict) or self.dtype not in table:
                raise ValueError(f"WaferConfig.{name} must be a dict mapping {self.dtype!r} (the "
                                 f"dtype) to a number in [{low:g}, {high:g}] {unit}; received "
                                 f"{table!r}")
            object.__setattr__(self, name, {key: _checked(f"{name}[{key!r}]", v, "real", low,
                                                          high, unit)
                                            for key, v in table.items()})

    # -- presets ------------------------------------------------------------
    @classmethod
    def preset(cls, name, **overrides):
        """The preset called ``name`` (one of ``PRESETS``) with ``overrides`` applied:
        the one place a machine's name (the CLI's ``--wafer``, a sweep's base) is resolved.
        """
        if name not in PRESETS:
            raise ValueError(f"unknown wafer preset {name!r}; choose one of {PRESETS}")
        return getattr(cls, name)(**overrides)

    @classmethod
    def wse2(cls, **overrides):
        """WSE-2 (CS-2): 1-cycle hops, HPDC'24 stage model, 850 MHz."""
        return cls(**overrides)

    @classmethod
    def wse3(cls, **overrides):
        """WSE-3 (CS-3) as measured: 2-cycle hops, ~20-cycle turns, 16-cycle relay stages."""
        base = dict(hop_cycles=2.0,            # 2.000 cycles/hop on silicon [M]
                    turn_cycles=20.0,          # ~20 cycles per change of dimension [M]
                    stage_cycles=14.0,         # relay fit 1.001 N B + 16.1 N + 16.5 [M]:
                                               # 16.1 per leg = 2-cycle hop + 14-cycle stage
                    setup_cycles=16.0,         # DSD setup, fp16 FMA 16 cycles [M]
                    fmac_per_cycle={"fp16": 4.0, "fp32": 0.5},   # simulator fp16, silicon fp32 [M]
                    colors=8)                  # 8 input queues per core [P: topic-15]
        base.update(overrides)
        return cls(**base)

    @classmethod
    def small(cls, rows=8, cols=8, **overrides):
        """A WSE-2-like grid of ``rows`` x ``cols`` PEs, for tests and examples."""
        return cls(rows=rows, cols=cols, **overrides)

    # -- derived ------------------------------------------------------------
    @property
    def fmacs(self):
        """FMACs per cycle for the on-fabric dtype."""
        return self.fmac_per_cycle[self.dtype]

    @property
    def lanes(self):
        """Elements per cycle of an issued short vector FMAC for the on-fabric dtype."""
        return self.dsd_lanes[self.dtype]

    @property
    def elem_bytes(self):
        return 2 if self.dtype == "fp16" else 4

    @property
    def values_per_dense_wavelet(self):
        """A 32-bit wavelet carries two fp16 values or one fp32 [P]."""
        return 2 if self.dtype == "fp16" else 1

    @property
    def wavelets_per_sparse_value(self):
        """fp16: 16-bit index + 16-bit value in one wavelet [P]; fp32: value + index wavelet."""
        return 1 if self.dtype == "fp16" else 2

    @property
    def data_bytes(self):
        """SRAM a PE has for data once the code/runtime reserve is taken."""
        return self.sram_bytes - self.reserve_bytes

    def with_(self, **changes):
        return replace(self, **changes)

    def to_dict(self):
        return asdict(self)

    @classmethod
    def field_names(cls):
        return [f.name for f in fields(cls)]
