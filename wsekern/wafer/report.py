"""``SimReport``: what one simulated op (or a sequence of them) cost on the wafer.

Besides the numbers, a report says what it was a report of (``problem``: the op, operand
shapes and zero fractions, dtypes, the machine and the mapping asked for) and what its
figures mean (the bounds, the bottleneck, which operand's zeros the mapping skips), in its
text and in ``to_dict()``, so a saved JSON can be traced to its inputs and read alone.
"""
import base64
import json
import math
import os
import re
import stat
import zlib
from dataclasses import dataclass, field, fields

import numpy as np
import scipy.sparse as sps

BOTTLENECKS = ("compute", "fabric", "reduction", "latency", "scalar", "weight-streaming",
               "overhead", "none")

# What is busy and what waits, for each bottleneck the models name.
BOTTLENECK_NOTES = {
    "compute": "the PEs' own work sets the time: each arriving value starts a task (task "
               "start, vector set-up, multiply-adds) and the busiest PE finishes last; the "
               "links and the reduction wait for it",
    "scalar": "the busiest PE walks a compressed (values + indices) weight column with scalar "
              "code, ~20 cycles an element, while the others wait",
    "fabric": "a link is the limit: the busiest stream moves at most one wavelet a cycle and "
              "the PEs downstream wait for data",
    "reduction": "the partial sums are the limit: each sample's sums pass PE to PE to the "
                 "root while the multiply-adds are done",
    "latency": "the run is too short to fill the pipeline: hop, ramp and launch latencies "
               "outweigh the work",
    "weight-streaming": "the weights arrive from external memory (MemoryX) at "
                        "external_bytes_per_s; the PEs wait for them",
    "overhead": "no multiply-add is done (no nonzero weight meets a nonzero activation where "
                "the mapping multiplies): the busiest PE's time goes to the fixed work of "
                "what still arrives (task starts, vector set-up, end-of-stream markers)",
    "none": "nothing runs: an operand is empty, so no PE works and nothing is sent",
}


def named_bottleneck(name, macs_performed, cycles):
    """The bottleneck a report names: ``name`` (the largest of a model's terms), except
    that a run of no cycles is bound by nothing ("none") and one whose PEs do no
    multiply-add is not bound by compute or scalar code ("overhead")."""
    if cycles == 0:
        return "none"
    if macs_performed == 0 and name in ("compute", "scalar"):
        return "overhead"
    return name

# (lower, upper): what the two bounds on the cycles are, per mapping.
BOUND_NOTES = {
    "weight-stationary": (
        "the slowest single resource alone (the busiest PE's work, the busiest input "
        "stream at the link rate, the reduction root, or the busiest core's ramp: its "
        "column's stream and the sums from the west at the link rate), everything else "
        "hidden behind it",
        "nothing overlaps: each sample (or stage) runs alone, one after another"),
    "activation-stationary": (
        "the slowest single resource alone (the busiest PE's AXPYs, the weight stream on "
        "the links or from external memory, the reduction, or the busiest core's ramp: "
        "its PE row's weights and the sums from the north at the link rate)",
        "those stages added up, nothing overlapping"),
    "summa": ("every step at the slower of its compute and its broadcast (perfect overlap)",
              "every step paying compute, broadcast and task switches one after another"),
}
EXACT_NOTE = ("exact for this mapping: its model is a fixed program schedule (resident, "
              "MeshGEMV, MeshGEMM) or a measured event run, not a range")

# Which operand's zeros a mapping skips, and which it multiplies.
SKIP_NOTES = {
    "weight-stationary": "X's zeros are never sent (skipped); W's zeros are skipped only in "
                         "blocks stored compressed, multiplied in dense-stored blocks",
    "activation-stationary": "W's zeros are never sent (skipped); X is stored dense on the "
                             "PEs, its zeros are multiplied",
    "meshgemv": "dense GEMV: W is stored dense and x sent dense; no zero is skipped",
    "meshgemm": "dense GEMM (Cannon): no zero is skipped",
    "summa": "dense matmul: no zero is skipped",
    "resident": "one PE holds both operands dense: no zero is skipped",
}
# An SDDMM runs weight-stationary on the pattern, but streams B's rows whole.
SDDMM_SKIP_NOTE = ("only the pattern's stored positions are computed (its zeros skipped); A "
                   "and B are sent and held as dense rows, their zeros multiplied")


def zero_fraction(a):
    """The fraction of ``a``'s entries that are zero (a dense array or a SciPy sparse one;
    a sparse array's stored zeros count as zeros)."""
    if sps.issparse(a):
        size = a.shape[0] * a.shape[1]
        return 1.0 - int(np.count_nonzero(a.data)) / size if size else 0.0
    a = np.asarray(a)
    return 1.0 - int(np.count_nonzero(a)) / a.size if a.size else 0.0


def config_name(config):
    """The preset ``config`` is (``'wse2'``, ``'wse3'``, ``'wse2 (rows, cols changed)'``...)
    or ``'custom'``: compared field by field with the presets at its grid and dtype."""
    preset = getattr(config, "preset", None)           # a config that knows its own name
    if isinstance(preset, str):
        return preset
    from .config import WaferConfig
    mine = config.to_dict()
    for name in ("wse2", "wse3"):
        ref = getattr(WaferConfig, name)(dtype=config.dtype).to_dict()
        changed = sorted(k for k in mine if mine[k] != ref[k])
        if not changed:
            return name
        if set(changed) <= {"rows", "cols"}:
            return f"{name} ({', '.join(changed)} changed)"
    return "custom"


def problem_of(op, config, operands, **settings):
    """What a report is a report of: ``op``, each operand's shape, dtype and zero fraction
    (``operands``: name -> array), the machine (preset, grid, on-fabric dtype) and
    ``settings`` (mapping and region asked for, mode, ...), as JSON-ready values."""
    ops = {}
    for name, a in operands.items():
        if a is None:
            continue
        a = a if hasattr(a, "dtype") and hasattr(a, "shape") else np.asarray(a)
        ops[name] = {"shape": [int(v) for v in a.shape], "dtype": str(a.dtype),
                     "zero_fraction": round(zero_fraction(a), 6)}
    plain = {k: _plain(v) for k, v in settings.items()}
    return {"op": op, "operands": ops,
            "config": {"preset": config_name(config), "rows": config.rows, "cols": config.cols,
                       "dtype": config.dtype, "sram_bytes": config.sram_bytes,
                       "clock_hz": config.clock_hz},
            **plain}


def _plain(value):
    """A setting as a JSON value: numbers as Python numbers, sequences as lists."""
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_plain(v) for v in value]
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return value if value is None or isinstance(value, (str, int, float, bool)) else repr(value)


def describe_problem(problem):
    """One line: 'spmm: W 1024x1024 float32 90.0% zeros, X ...; wse2 750x994 PEs, fp16; ...'.
    A problem not in :func:`problem_of`'s form (made by hand, or a loaded file's: it is
    free-form) is shown as it is rather than failing ``str(report)``."""
    try:
        return _describe_problem(problem)
    except (KeyError, TypeError, AttributeError, ValueError, IndexError):
        return f"as recorded: {problem!r:.300}"


def _describe_problem(problem):
    if not problem:
        return "not recorded (a report made outside Wafer's methods)"
    if "sequence" in problem:
        return " then ".join(p.get("op", "?") for p in problem["sequence"])
    ops = ", ".join(f"{n} {'x'.join(map(str, o['shape']))} {o['dtype']} "
                    f"{o['zero_fraction']:.1%} zeros" for n, o in problem["operands"].items())
    c = problem["config"]
    rest = ", ".join(f"{k} {v if v is not None else 'any'}" for k, v in problem.items()
                     if k not in ("op", "operands", "config"))
    return (f"{problem['op']}: {ops}; {c['preset']} {c['rows']}x{c['cols']} PEs, "
            f"{c['dtype']}" + (f"; {rest}" if rest else ""))


@dataclass
class SimReport:
    """Cycles, work, traffic, memory and energy of a simulated run.

    Per-PE arrays (``busy_cycles``, ``sram_bytes``, ``link_wavelets``) cover the whole
    wafer grid; ``link_wavelets[r, c, d]`` counts wavelets PE (r, c) sent out in
    direction d of N, E, S, W. MAC counts: ``macs_performed + macs_skipped_weight +
    macs_skipped_activation == macs_dense`` and ``macs_useful <= macs_performed``.

    Reports come from :class:`~wsekern.Wafer`'s methods; ``a + b`` is the report of a then
    b. ``str(report)`` is a readable summary, ``report.to_dict()`` the same as JSON-ready
    values, ``report.plot(path)`` a PNG of the per-PE maps.

    Attributes
    ----------
    cycles : float
        The run's cycles; ``cycles_lower`` and ``cycles_upper`` bound them (see
        :meth:`explanation` for what each bound is).
    clock_hz : float
        The clock; ``seconds`` is ``cycles / clock_hz``.
    macs_dense, macs_useful, macs_performed : int
        Multiply-adds of the dense product, those with both operands nonzero, those done.
    macs_skipped_weight, macs_skipped_activation : int
        Multiply-adds skipped for a zero weight, for a zero activation.
    busy_cycles, sram_bytes, link_wavelets : ndarray
        Per PE: busy cycles, SRAM high-water in bytes, wavelets sent per direction.
    wavelets_sent : int
        Wavelets injected into the fabric.
    energy_joules : float
        The energy estimate.
    bottleneck : str
        One of ``BOTTLENECKS``; see ``BOTTLENECK_NOTES`` for what each means.
    region : tuple
        (row0, col0, rows, cols) of the PEs used.
    mapping : str
        The mapping run.
    dtype : str
        The on-fabric element type.
    fmac_per_cycle : float
        Multiply-adds per PE per cycle at the peak rate.
    details : dict
        Mapping-specific figures (for an event run: stalls, events, the analytic estimate).
    problem : dict
        What was simulated: see :func:`problem_of`.
    """
    cycles: float
    cycles_lower: float
    cycles_upper: float
    clock_hz: float
    macs_dense: int
    macs_useful: int
    macs_performed: int
    macs_skipped_weight: int
    macs_skipped_activation: int
    busy_cycles: np.ndarray
    sram_bytes: np.ndarray
    link_wavelets: np.ndarray
    wavelets_sent: int
    energy_joules: float
    bottleneck: str
    region: tuple
    mapping: str
    dtype: str
    fmac_per_cycle: float
    pe_cycle_capacity: float = field(default=None, repr=False)   # sum over ops of PEs * cycles
    details: dict = field(default_factory=dict, repr=False)
    problem: dict = field(default_factory=dict, repr=False)     # see problem_of()

    def __post_init__(self):
        if self.bottleneck not in BOTTLENECKS:
            raise ValueError(f"bottleneck must be one of {BOTTLENECKS}; received "
                             f"{self.bottleneck!r}")
        # every model names its largest term; with nothing multiplied that word would lie
        self.bottleneck = named_bottleneck(self.bottleneck, self.macs_performed, self.cycles)
        if self.pe_cycle_capacity is None:
            self.pe_cycle_capacity = float(self.pes * self.cycles)

    # -- derived figures ------------------------------------------------------
    @property
    def pes(self):
        return int(self.region[2] * self.region[3]) if self.region else int(self.busy_cycles.size)

    @property
    def seconds(self):
        return self.cycles / self.clock_hz

    @property
    def utilization(self):
        """macs_useful / (PEs in the region * cycles * FMAC per cycle)."""
        cap = self.pe_cycle_capacity * self.fmac_per_cycle
        return self.macs_useful / cap if cap > 0 else 0.0

    @property
    def sram_peak_bytes(self):
        return int(self.sram_bytes.max()) if self.sram_bytes.size else 0

    @property
    def wavelet_hops(self):
        return int(self.link_wavelets.sum())

    def _busy_in_region(self):
        r0, c0, R, C = self.region
        return self.busy_cycles[r0:r0 + R, c0:c0 + C]

    def utilization_factors(self):
        """Why utilisation is what it is: four fractions whose product is ``utilization``
        (for one op on one region; ``{}`` for a sum of reports or an empty run).

        ``useful_of_performed``: MACs with two nonzero operands among those done;
        ``mac_share_of_busy``: busy PE cycles spent on multiply-adds at the peak rate (the
        rest is task starts, vector set-up, end-of-stream and scalar code);
        ``balance``: mean over max PE busy cycles; ``busiest_pe_busy``: the busiest PE's
        busy cycles over the run's (the rest is fill, drain and waiting for data).
        """
        busy = self._busy_in_region() if self.region else self.busy_cycles
        total, peak = float(busy.sum()), float(busy.max(initial=0))
        single = np.isclose(self.pe_cycle_capacity, self.pes * self.cycles)
        if not single or min(self.cycles, self.macs_performed, total, peak,
                             self.fmac_per_cycle, busy.size) <= 0:
            return {}
        return {"useful_of_performed": self.macs_useful / self.macs_performed,
                "mac_share_of_busy": self.macs_performed / (self.fmac_per_cycle * total),
                "balance": total / busy.size / peak,
                "busiest_pe_busy": peak / self.cycles}

    def explanation(self):
        """What the figures mean, as a dict: the bounds (lower, upper), the bottleneck, the
        zeros the mapping skips, and the utilisation factors."""
        exact = self.cycles_lower == self.cycles == self.cycles_upper
        parts = self.mapping.split("+")
        if exact or len(parts) > 1:
            lower = upper = EXACT_NOTE if exact else "the sum of each op's bound"
        else:
            lower, upper = BOUND_NOTES.get(self.mapping, (EXACT_NOTE, EXACT_NOTE))
        skip = SKIP_NOTES
        if isinstance(self.problem, dict) and self.problem.get("op") == "sddmm":
            skip = dict(SKIP_NOTES, **{"weight-stationary": SDDMM_SKIP_NOTE})
        return {"bounds": {"lower": lower, "upper": upper},
                "bottleneck": BOTTLENECK_NOTES[self.bottleneck],
                "zeros_skipped": "; ".join(f"{m}: {skip[m]}" if len(parts) > 1
                                           else skip[m] for m in parts if m in skip),
                "utilization_factors": self.utilization_factors()}

    # -- combination, export, display ------------------------------------------------
    def __add__(self, other):
        """The report of ``self`` then ``other``, one after the other."""
        if not isinstance(other, SimReport):
            return NotImplemented
        if self.busy_cycles.shape != other.busy_cycles.shape:
            raise ValueError(f"reports of different wafers ({self.busy_cycles.shape} and "
                             f"{other.busy_cycles.shape} PEs) cannot be added")
        slow = self if self.cycles >= other.cycles else other
        return SimReport(
            cycles=self.cycles + other.cycles,
            cycles_lower=self.cycles_lower + other.cycles_lower,
            cycles_upper=self.cycles_upper + other.cycles_upper,
            clock_hz=self.clock_hz,
            macs_dense=self.macs_dense + other.macs_dense,
            macs_useful=self.macs_useful + other.macs_useful,
            macs_performed=self.macs_performed + other.macs_performed,
            macs_skipped_weight=self.macs_skipped_weight + other.macs_skipped_weight,
            macs_skipped_activation=self.macs_skipped_activation + other.macs_skipped_activation,
            busy_cycles=self.busy_cycles + other.busy_cycles,
            sram_bytes=np.maximum(self.sram_bytes, other.sram_bytes),
            link_wavelets=self.link_wavelets + other.link_wavelets,
            wavelets_sent=self.wavelets_sent + other.wavelets_sent,
            energy_joules=self.energy_joules + other.energy_joules,
            bottleneck=slow.bottleneck,
            region=(self.region if self.region == other.region
                    else _union(self.region, other.region)),
            mapping=(self.mapping if self.mapping == other.mapping
                     else f"{self.mapping}+{other.mapping}"),
            dtype=self.dtype if self.dtype == other.dtype else f"{self.dtype}+{other.dtype}",
            fmac_per_cycle=self.fmac_per_cycle,
            pe_cycle_capacity=self.pe_cycle_capacity + other.pe_cycle_capacity * (
                other.fmac_per_cycle / self.fmac_per_cycle),
            problem=_sequence(self.problem, other.problem),
        )

    def to_dict(self, arrays=False, exact=False):
        """A JSON-serialisable dict (per-PE arrays as summaries unless ``arrays``).

        ``exact=True``: everything, losslessly, in what :meth:`from_dict` reads back (a
        ``format`` and ``version``, every field with ``details``, arrays with their dtype
        and shape, tuples and NumPy scalars marked as such); ``arrays`` is then ignored.
        """
        if exact:
            out = {"format": REPORT_FORMAT, "version": REPORT_VERSION}
            out.update((f.name, _encode(getattr(self, f.name), f.name)) for f in fields(self))
            return out
        out = {}
        for f in fields(self):
            if f.name in ("details",):
                continue
            v = getattr(self, f.name)
            if isinstance(v, np.ndarray):
                out[f.name] = v.tolist() if arrays else {
                    "shape": list(v.shape), "sum": float(v.sum()), "max": float(v.max(initial=0))}
            elif isinstance(v, (np.integer,)):
                out[f.name] = int(v)
            elif isinstance(v, (np.floating,)):
                out[f.name] = float(v)
            elif isinstance(v, tuple):
                out[f.name] = [int(x) for x in v]
            else:
                out[f.name] = v
        out.update(seconds=self.seconds, utilization=self.utilization, pes=self.pes,
                   sram_peak_bytes=self.sram_peak_bytes, wavelet_hops=self.wavelet_hops,
                   explanation=self.explanation())
        return out

    @classmethod
    def from_dict(cls, d):
        """The report ``to_dict(exact=True)`` describes, equal field by field (dtypes,
        per-PE maps, ``details`` and ``problem`` included).

        Raises
        ------
        ValueError
            ``d`` is not such a dict: another format or version, a summary (``to_dict()``
            without ``exact``, the CLI's ``--json``), a missing or unknown field, a value
            of the wrong kind, or arrays whose data do not match their dtype and shape.
        """
        if not isinstance(d, dict):
            raise ValueError(f"a SimReport dict must be a dict (from to_dict(exact=True)); "
                             f"received {type(d).__name__}")
        if d.get("format") != REPORT_FORMAT:
            summary = isinstance(d.get("busy_cycles"), dict) and "sum" in d["busy_cycles"]
            raise ValueError(
                "this is a report's summary (to_dict() or `wsekern simulate --json`: the "
                "per-PE maps are reduced to shape/sum/max and details are left out), which "
                "cannot be loaded back; save the report with report.save(path) or "
                "`wsekern simulate ... --save PATH`" if summary else
                f"not a saved SimReport: its 'format' is {d.get('format')!r}, expected "
                f"{REPORT_FORMAT!r}")
        version = d.get("version")
        if version != REPORT_VERSION or isinstance(version, bool):
            raise ValueError(f"SimReport format version {version!r} is not one this wsekern "
                             f"reads (version {REPORT_VERSION}); a newer wsekern wrote it?")
        names = [f.name for f in fields(cls)]
        missing = [n for n in names if n not in d]
        unknown = sorted(set(d) - set(names) - {"format", "version"})
        if missing or unknown:
            raise ValueError(f"a saved SimReport has the fields {names}; missing "
                             f"{missing}, unknown {unknown}")
        kw = {n: _decode(d[n], n) for n in names}
        for n in ("cycles", "cycles_lower", "cycles_upper", "clock_hz", "energy_joules",
                  "fmac_per_cycle", "pe_cycle_capacity"):
            _expect(kw[n], n, (float, int, np.floating, np.integer), "a number")
        for n in ("macs_dense", "macs_useful", "macs_performed", "macs_skipped_weight",
                  "macs_skipped_activation", "wavelets_sent"):
            _expect(kw[n], n, (int, np.integer), "a whole number")
            if not -2 ** 63 <= kw[n] < 2 ** 63:         # the rates divide them as floats
                raise ValueError(f"a saved SimReport's {n} must fit an int64; received "
                                 f"{kw[n]!r:.60}")
        for n in ("bottleneck", "mapping", "dtype"):
            _expect(kw[n], n, str, "a string")
        for n in ("details", "problem"):
            _expect(kw[n], n, dict, "a dict")
        for n in ("cycles", "cycles_lower", "cycles_upper", "energy_joules", "fmac_per_cycle",
                  "pe_cycle_capacity", "clock_hz"):
            if isinstance(kw[n], int) and abs(kw[n]) > _FLOAT_MAX:   # str() divides as floats
                raise ValueError(f"a saved SimReport's {n} must fit a float64; received "
                                 f"{kw[n]!r:.60}")
        if not (math.isfinite(kw["clock_hz"]) and kw["clock_hz"] > 0):
            raise ValueError(f"a saved SimReport's clock_hz must be a finite number > 0 (the "
                             f"seconds divide by it); received {kw['clock_hz']!r}")
        for n in ("busy_cycles", "sram_bytes", "link_wavelets"):
            _expect(kw[n], n, np.ndarray, "an array")
        reg = kw["region"]
        if not (isinstance(reg, tuple) and len(reg) == 4 and
                all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 0
                    for v in reg)):
            raise ValueError(f"a saved SimReport's region must be 4 whole numbers >= 0 "
                             f"(row0, col0, rows, cols); received {reg!r}")
        grid = kw["busy_cycles"].shape
        if (len(grid) != 2 or kw["sram_bytes"].shape != grid
                or kw["link_wavelets"].shape != grid + (4,)):
            raise ValueError(f"a saved SimReport's per-PE maps must be (rows, cols), (rows, "
                             f"cols) and (rows, cols, 4); received busy_cycles "
                             f"{kw['busy_cycles'].shape}, sram_bytes {kw['sram_bytes'].shape}, "
                             f"link_wavelets {kw['link_wavelets'].shape}")
        return cls(**kw)

    def save(self, path):
        """Write ``to_dict(exact=True)`` as JSON to ``path`` (atomically: the file is
        whole or unchanged); :func:`load_report` reads it back. Returns ``path``."""
        from .._atomic import write_bytes
        text = json.dumps(self.to_dict(exact=True), indent=1, allow_nan=True)
        return write_bytes(path, text.encode())

    def __str__(self):
        r0, c0, R, C = self.region
        busy = self.busy_cycles[r0:r0 + R, c0:c0 + C]
        why = self.explanation()
        lines = [
            f"SimReport — {self.mapping}, {self.dtype} on the fabric, region {R}x{C} PEs at "
            f"({r0}, {c0})",
            f"  problem             {describe_problem(self.problem)}",
            f"  cycles              {self.cycles:,.0f}  "
            f"(bounds {self.cycles_lower:,.0f} .. {self.cycles_upper:,.0f})",
            f"       lower bound    {why['bounds']['lower']}",
            f"       upper bound    {why['bounds']['upper']}",
            f"  time                {self.seconds * 1e6:,.2f} us at {self.clock_hz / 1e6:.0f} MHz",
            f"  bottleneck          {self.bottleneck}",
            f"       meaning        {why['bottleneck']}",
            f"  MACs dense          {self.macs_dense:,}",
            f"       useful         {self.macs_useful:,}  "
            f"({_pct(self.macs_useful, self.macs_dense)} of dense)",
            f"       performed      {self.macs_performed:,}",
            f"       skipped (W=0)  {self.macs_skipped_weight:,}",
            f"       skipped (X=0)  {self.macs_skipped_activation:,}",
            f"  utilization         {self.utilization:.2%}",
            *_factor_lines(why["utilization_factors"]),
            f"  zeros skipped       {why['zeros_skipped']}",
            f"  PE busy cycles      max {busy.max(initial=0):,.0f}, "
            f"mean {busy.mean() if busy.size else 0:,.0f}",
            f"  SRAM per PE         peak {self.sram_peak_bytes:,} B",
            f"  fabric              {self.wavelets_sent:,} wavelets sent, "
            f"{self.wavelet_hops:,} wavelet-hops, "
            f"busiest link {int(self.link_wavelets.max(initial=0)):,}",
            f"  energy              {self.energy_joules * 1e6:,.3f} uJ",
        ]
        # the event engine's figures (the mesh models' event reports have none of them)
        if self.details.get("mode") == "event" and "events" in self.details:
            d = self.details
            stalls = d["stalls"]
            a = d["analytic"]
            lines += [
                f"  event simulation    {d['events']:,} wavelet-link events, "
                f"{d['events_per_second'] / 1e6:.1f} M events/s "
                f"({d['events_per_cpu_second'] / 1e6:.1f} M per CPU second)",
                f"  stalls (PE cycles)  waiting for data {stalls['wait_data'].sum():,.0f}, "
                f"back-pressure {stalls['backpressure'].sum():,.0f}",
                f"  analytic model      {a['cycles']:,.0f} cycles "
                f"({a['cycles'] / self.cycles - 1:+.1%}), "
                f"bounds {a['cycles_lower']:,.0f} .. {a['cycles_upper']:,.0f}",
            ]
        return "\n".join(lines)

    def plot(self, path):
        """Write a PNG of per-PE maps over the region: busy cycles, SRAM, link load (and,
        for an event simulation, its stalls), beside where the region sits on the wafer.

        Colour scales start at 0 (SRAM's at the PE's capacity when the problem is known),
        each map titled with its minimum and maximum; see :mod:`wsekern.wafer.plots`.

        Parameters
        ----------
        path : str or path-like
            Where the PNG goes (written atomically).

        Returns
        -------
        path
            ``path``, as given.

        Raises
        ------
        ImportError
            Without matplotlib (``pip install 'wsekern[plot]'``).
        """
        from . import plots
        r0, c0, R, C = self.region
        cut = (slice(r0, r0 + R), slice(c0, c0 + C))
        capacity = self.problem.get("config", {})
        capacity = capacity.get("sram_bytes") if isinstance(capacity, dict) else None
        if isinstance(capacity, bool) or not isinstance(capacity, (int, float)):
            capacity = None                     # a hand-made or loaded free-form problem
        panels = [("PE busy cycles", self.busy_cycles[cut], "cycles", None),
                  ("SRAM per PE" + (f" (scale: 0 .. {capacity:,} B, the capacity)" if capacity
                                    else ""), self.sram_bytes[cut], "B", capacity),
                  ("wavelets sent per PE (all directions)",
                   self.link_wavelets[cut].sum(axis=2), "wavelets", None)]
        stalls = self.details.get("stalls") if self.details.get("mode") == "event" else None
        if stalls is not None:
            panels += [("stalls: waiting for data", stalls["wait_data"][cut], "PE cycles", None),
                       ("stalls: back-pressure", stalls["backpressure"][cut], "PE cycles", None)]
        title = (f"{self.mapping} on {R}x{C} PEs: {self.cycles:,.0f} cycles, bottleneck "
                 f"{self.bottleneck}, utilization {self.utilization:.2%}")
        notes = [describe_problem(self.problem)] if self.problem else []
        return plots.heatmaps(panels, region=self.region, wafer_shape=self.busy_cycles.shape,
                              title=title, path=path, notes=notes)


def _factor_lines(f):
    if not f:
        return []
    return [
        f"       = {f['useful_of_performed']:.1%} useful of the MACs performed (both operands "
        f"nonzero)",
        f"       x {f['mac_share_of_busy']:.1%} of PE busy cycles doing MACs at the peak rate "
        f"(rest: task starts, set-up, scalar code)",
        f"       x {f['balance']:.1%} balance (mean / max PE busy cycles)",
        f"       x {f['busiest_pe_busy']:.1%} of the run the busiest PE is busy (rest: fill, "
        f"drain, waiting)",
    ]


def _sequence(a, b):
    """The problem of two reports run one after the other."""
    if not a and not b:
        return {}
    def steps(q):       # a free-form (hand-made, loaded) problem is one step as it is
        seq = q.get("sequence") if q else None
        return seq if isinstance(seq, list) and q.get("op") == "sequence" else [q or {}]
    seq = [p for q in (a, b) for p in steps(q)]
    return {"op": "sequence", "sequence": seq}


def _union(a, b):
    r0, c0 = min(a[0], b[0]), min(a[1], b[1])
    r1, c1 = max(a[0] + a[2], b[0] + b[2]), max(a[1] + a[3], b[1] + b[3])
    return (r0, c0, r1 - r0, c1 - c0)


def _pct(a, b):
    return f"{a / b:.1%}" if b else "-"


# -- saved reports: to_dict(exact=True), SimReport.from_dict, save, load_report ----------
REPORT_FORMAT = "wsekern.SimReport"
REPORT_VERSION = 1
_TAG = "__wsekern__"           # marks a value JSON has no type for (array, tuple, scalar)
_DTYPE = re.compile(r"^[<|](b1|[iu][1248]|f[248])$")      # plain little-endian numbers only
MAX_ARRAY_BYTES = 2048 * 2048 * 4 * 8     # the largest wafer's link map in float64
# The largest file save() writes: its wafer-sized maps (busy, SRAM, links, an event run's
# stalls: 64 B a PE, two link maps) and a trace (at most two more) as base64 of zlib
# (4/3, zlib's worst case adds 0.1 %), and 64 MiB for the rest of the details. A
# 1024^2 spmm's event report on the full WSE-2 is under 100 kB.
MAX_REPORT_BYTES = 4 * MAX_ARRAY_BYTES * 4 // 3 + (64 << 20)
MAX_DEPTH = 64


def _encode(v, where, depth=0):
    """``v`` as JSON values, its Python and NumPy types recoverable by :func:`_decode`."""
    if depth > MAX_DEPTH:
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels (at {where[:60]}...)")
    if isinstance(v, np.ndarray):
        a = np.ascontiguousarray(v, dtype=v.dtype.newbyteorder("<"))
        if not _DTYPE.match(a.dtype.str):
            raise ValueError(f"{where}: arrays of {v.dtype} cannot be saved (numbers only)")
        return {_TAG: "ndarray", "dtype": a.dtype.str, "shape": list(a.shape),
                "zlib_base64": base64.b64encode(zlib.compress(a.tobytes())).decode("ascii")}
    if isinstance(v, (np.bool_, np.integer, np.floating)):
        return {_TAG: "scalar", "dtype": np.dtype(v.dtype).newbyteorder("<").str,
                "value": v.item()}
    if isinstance(v, tuple):
        return {_TAG: "tuple", "items": [_encode(x, where, depth + 1) for x in v]}
    if isinstance(v, list):
        return [_encode(x, where, depth + 1) for x in v]
    if isinstance(v, dict):
        if all(isinstance(k, str) for k in v) and _TAG not in v:
            return {k: _encode(x, f"{where}.{k}", depth + 1) for k, x in v.items()}
        return {_TAG: "dict", "items": [[_encode(k, where, depth + 1),
                                         _encode(x, f"{where}.{k}", depth + 1)]
                                        for k, x in v.items()]}
    if v is None or isinstance(v, (str, bool, int, float)):
        return v
    raise ValueError(f"{where}: a {type(v).__name__} cannot be saved in a report")


def _decode(v, where, depth=0):
    if depth > MAX_DEPTH:
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels (at {where[:60]}...)")
    if isinstance(v, list):
        return [_decode(x, where, depth + 1) for x in v]
    if not isinstance(v, dict):
        if v is None or isinstance(v, (str, bool, int, float)):
            return v
        raise ValueError(f"{where}: {type(v).__name__} is not a JSON value")
    if _TAG not in v:
        return {k: _decode(x, f"{where}.{k}", depth + 1) for k, x in v.items()}
    kind = v[_TAG]
    if kind == "ndarray":
        return _decode_array(v, where)
    if kind == "scalar":
        dt = _checked_dtype(v.get("dtype"), where)
        value = v.get("value")
        if isinstance(value, bool) != (dt.kind == "b") or not isinstance(value, (int, float)):
            raise ValueError(f"{where}: a {dt} scalar needs a matching value; received "
                             f"{value!r}")
        if dt.kind in "iub" and (isinstance(value, float)
                                 or not dt.kind == "b" and not _in_range(value, dt)):
            raise ValueError(f"{where}: {value!r} is not a {dt} value")
        return dt.type(value)
    if kind in ("tuple", "dict"):
        items = v.get("items")
        if not isinstance(items, list) or set(v) != {_TAG, "items"}:
            raise ValueError(f"{where}: a saved {kind} needs a list of items; received {v!r:.200}")
        if kind == "tuple":
            return tuple(_decode(x, where, depth + 1) for x in items)
        if not all(isinstance(p, list) and len(p) == 2 for p in items):
            raise ValueError(f"{where}: a saved dict's items must be [key, value] pairs")
        out = {}
        for k, x in items:
            k = _decode(k, where, depth + 1)
            try:
                hash(k)
            except TypeError:
                raise ValueError(f"{where}: a dict key must be hashable; received "
                                 f"{type(k).__name__}") from None
            out[k] = _decode(x, f"{where}.{k}", depth + 1)
        return out
    raise ValueError(f"{where}: unknown saved kind {kind!r} (ndarray, scalar, tuple, dict)")


def _in_range(value, dt):
    info = np.iinfo(dt)
    return info.min <= value <= info.max


def _checked_dtype(name, where):
    if not isinstance(name, str) or not _DTYPE.match(name):
        raise ValueError(f"{where}: dtype {name!r} is not one a report holds (little-endian "
                         f"bool, int, uint or float, e.g. '<f8')")
    return np.dtype(name)


def _decode_array(v, where):
    if set(v) != {_TAG, "dtype", "shape", "zlib_base64"}:
        raise ValueError(f"{where}: a saved array has dtype, shape and zlib_base64; received "
                         f"the keys {sorted(v)}")
    dt = _checked_dtype(v["dtype"], where)
    shape = v["shape"]
    if (not isinstance(shape, list) or len(shape) > 32 or not all(
            isinstance(n, int) and not isinstance(n, bool) and 0 <= n <= MAX_ARRAY_BYTES
            for n in shape)):       # an empty array's other sides too: NumPy caps them
        raise ValueError(f"{where}: an array's shape must be a list of whole numbers in 0 .. "
                         f"{MAX_ARRAY_BYTES:,}; "
                         f"received {shape!r:.200}")
    nbytes = math.prod(shape) * dt.itemsize
    if nbytes > MAX_ARRAY_BYTES:
        raise ValueError(f"{where}: an array of shape {shape} and {dt} ({nbytes:,} B) is "
                         f"larger than any report's ({MAX_ARRAY_BYTES:,} B)")
    data = v["zlib_base64"]
    try:
        packed = base64.b64decode(data.encode("ascii"), validate=True)
        z = zlib.decompressobj()
        raw = z.decompress(packed, nbytes + 1)      # never more than the shape holds
        complete = z.eof and not z.unconsumed_tail and not z.unused_data
    except (AttributeError, UnicodeEncodeError, ValueError, zlib.error) as e:
        raise ValueError(f"{where}: the array data is not zlib-compressed base64 "
                         f"({type(e).__name__}: {e})") from None
    if len(raw) != nbytes or not complete:
        raise ValueError(f"{where}: the array data is {len(raw):,}{'+' if not complete else ''}"
                         f" B; shape {shape} of {dt} needs {nbytes:,} B")
    return np.frombuffer(raw, dt).reshape(shape).astype(dt.newbyteorder("="), copy=True)


_FLOAT_MAX = float(np.finfo(np.float64).max)


def _expect(value, name, types, what):
    if isinstance(value, bool) or not isinstance(value, types):
        raise ValueError(f"a saved SimReport's {name} must be {what}; received "
                         f"{type(value).__name__} {value!r:.100}")


def _read_report_bytes(path):
    """The bytes of the regular file ``path``, refused unread (ValueError) when it is not a
    regular file (a FIFO would block, /dev/zero never ends) or is larger than
    MAX_REPORT_BYTES. Reads what fstat says plus one byte, then on to the cap only if the
    file grew: a read sized at the cap reserves 783 MB for any report."""
    # O_NONBLOCK: opening a FIFO with no writer returns at once instead of blocking
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ValueError(f"{path!r} is not a regular file (a "
                             f"{_FILE_KINDS.get(stat.S_IFMT(st.st_mode), 'special file')}); "
                             f"it was not read. Pass a file written by SimReport.save or "
                             f"`wsekern simulate --save`")
        if st.st_size > MAX_REPORT_BYTES:
            raise ValueError(f"{path!r} is {st.st_size:,} B, larger than any report "
                             f"SimReport.save writes (at most {MAX_REPORT_BYTES:,} B); it "
                             f"was not read. Pass a file written by SimReport.save or "
                             f"`wsekern simulate --save`")
    except BaseException:
        os.close(fd)
        raise
    with open(fd, "rb", buffering=0) as f:
        chunks, total, want = [], 0, st.st_size + 1
        while total <= MAX_REPORT_BYTES:
            chunk = f.read(min(want, MAX_REPORT_BYTES + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            want = 1 << 24               # the file grew (or shrank and regrew): read on
    if total > MAX_REPORT_BYTES:
        raise ValueError(f"{path!r} grew past {MAX_REPORT_BYTES:,} B while read; larger "
                         f"than any report SimReport.save writes")
    return b"".join(chunks)


_FILE_KINDS = {stat.S_IFDIR: "directory", stat.S_IFIFO: "FIFO", stat.S_IFCHR: "character device",
               stat.S_IFBLK: "block device", stat.S_IFSOCK: "socket"}


def load_report(path):
    """The :class:`SimReport` that :meth:`SimReport.save` or the command line's
    ``simulate --save`` wrote to ``path``.

    Parameters
    ----------
    path : str or path-like
        A file written by ``SimReport.save``.

    Returns
    -------
    SimReport
        Equal to the saved one field by field (per-PE maps, dtypes, details, problem).

    Raises
    ------
    ValueError
        The file is not a complete JSON document of a saved report (truncated, another
        format or version, a summary printed by ``--json``), is larger than any saved
        report (``MAX_REPORT_BYTES``), or is not a regular file (a FIFO, a device, a
        directory); the last two are refused before they are read. The message says which.
    OSError
        The file cannot be read.

    Examples
    --------
    >>> import os, tempfile, numpy as np, wsekern
    >>> _, report = wsekern.Wafer(wsekern.WaferConfig.small(4, 4)).spmm(
    ...     np.eye(8, dtype=np.float32), np.ones((8, 2), np.float32))
    >>> path = report.save(os.path.join(tempfile.mkdtemp(), "report.json"))
    >>> again = wsekern.load_report(path)
    >>> again.cycles == report.cycles, again.busy_cycles.dtype == report.busy_cycles.dtype
    (True, True)
    """
    text = _read_report_bytes(os.fspath(path))
    try:
        d = json.loads(text)
    except (ValueError, RecursionError) as e:      # JSONDecodeError, UnicodeDecodeError, and
        # int("9" * 5000): over Python's digit limit
        raise ValueError(f"{os.fspath(path)!r} is not a complete JSON document "
                         f"({type(e).__name__}: {str(e)[:200]}); was it written whole by "
                         f"SimReport.save?") from None
    try:
        return SimReport.from_dict(d)
    except ValueError as e:
        raise ValueError(f"{os.fspath(path)!r}: {e}") from None
