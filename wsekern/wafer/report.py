"""``SimReport``: what one simulated op (or a sequence of them) cost on the wafer."""
from dataclasses import dataclass, field, fields

import numpy as np

BOTTLENECKS = ("compute", "fabric", "reduction", "latency", "scalar", "weight-streaming")


@dataclass
class SimReport:
    """Cycles, work, traffic, memory and energy of a simulated run.

    Per-PE arrays (``busy_cycles``, ``sram_bytes``, ``link_wavelets``) cover the whole
    wafer grid; ``link_wavelets[r, c, d]`` counts wavelets PE (r, c) sent out in
    direction d of N, E, S, W. MAC counts: ``macs_performed + macs_skipped_weight +
    macs_skipped_activation == macs_dense`` and ``macs_useful <= macs_performed``.
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

    def __post_init__(self):
        if self.bottleneck not in BOTTLENECKS:
            raise ValueError(f"bottleneck must be one of {BOTTLENECKS}; received {self.bottleneck!r}")
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
            region=self.region if self.region == other.region else _union(self.region, other.region),
            mapping=self.mapping if self.mapping == other.mapping else f"{self.mapping}+{other.mapping}",
            dtype=self.dtype if self.dtype == other.dtype else f"{self.dtype}+{other.dtype}",
            fmac_per_cycle=self.fmac_per_cycle,
            pe_cycle_capacity=self.pe_cycle_capacity + other.pe_cycle_capacity * (
                other.fmac_per_cycle / self.fmac_per_cycle),
        )

    def to_dict(self, arrays=False):
        """A JSON-serialisable dict (per-PE arrays as summaries unless ``arrays``)."""
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
                   sram_peak_bytes=self.sram_peak_bytes, wavelet_hops=self.wavelet_hops)
        return out

    def __str__(self):
        r0, c0, R, C = self.region
        busy = self.busy_cycles[r0:r0 + R, c0:c0 + C]
        lines = [
            f"SimReport — {self.mapping}, {self.dtype} on the fabric, region {R}x{C} PEs at ({r0}, {c0})",
            f"  cycles              {self.cycles:,.0f}  (bounds {self.cycles_lower:,.0f} .. {self.cycles_upper:,.0f})",
            f"  time                {self.seconds * 1e6:,.2f} us at {self.clock_hz / 1e6:.0f} MHz",
            f"  bottleneck          {self.bottleneck}",
            f"  MACs dense          {self.macs_dense:,}",
            f"       useful         {self.macs_useful:,}  ({_pct(self.macs_useful, self.macs_dense)} of dense)",
            f"       performed      {self.macs_performed:,}",
            f"       skipped (W=0)  {self.macs_skipped_weight:,}",
            f"       skipped (X=0)  {self.macs_skipped_activation:,}",
            f"  utilization         {self.utilization:.2%}",
            f"  PE busy cycles      max {busy.max(initial=0):,.0f}, mean {busy.mean() if busy.size else 0:,.0f}",
            f"  SRAM per PE         peak {self.sram_peak_bytes:,} B",
            f"  fabric              {self.wavelets_sent:,} wavelets sent, {self.wavelet_hops:,} wavelet-hops, "
            f"busiest link {int(self.link_wavelets.max(initial=0)):,}",
            f"  energy              {self.energy_joules * 1e6:,.3f} uJ",
        ]
        if self.details.get("mode") == "event":
            d = self.details
            stalls = d["stalls"]
            a = d["analytic"]
            lines += [
                f"  event simulation    {d['events']:,} wavelet-link events, "
                f"{d['events_per_second'] / 1e6:.1f} M events/s",
                f"  stalls (PE cycles)  waiting for data {stalls['wait_data'].sum():,.0f}, "
                f"back-pressure {stalls['backpressure'].sum():,.0f}",
                f"  analytic model      {a['cycles']:,.0f} cycles ({a['cycles'] / self.cycles - 1:+.1%}), "
                f"bounds {a['cycles_lower']:,.0f} .. {a['cycles_upper']:,.0f}",
            ]
        return "\n".join(lines)

    def plot(self, path):
        """Write a PNG with heatmaps of busy cycles, SRAM use and link load over the region
        (and, for an event simulation, its stalls)."""
        try:
            import matplotlib
            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError as exc:
            raise ImportError("report.plot needs matplotlib: pip install 'wsekern[plot]'") from exc
        r0, c0, R, C = self.region
        panels = [("PE busy cycles", self.busy_cycles[r0:r0 + R, c0:c0 + C]),
                  ("SRAM bytes", self.sram_bytes[r0:r0 + R, c0:c0 + C]),
                  ("link wavelets (all directions)",
                   self.link_wavelets[r0:r0 + R, c0:c0 + C].sum(axis=2))]
        stalls = self.details.get("stalls") if self.details.get("mode") == "event" else None
        if stalls is not None:
            panels += [("stalls: waiting for data", stalls["wait_data"][r0:r0 + R, c0:c0 + C]),
                       ("stalls: back-pressure", stalls["backpressure"][r0:r0 + R, c0:c0 + C])]
        fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4.5))
        for ax, (title, data) in zip(axes, panels):
            im = ax.imshow(data, aspect="auto", interpolation="nearest", cmap="viridis")
            ax.set_title(title)
            ax.set_xlabel("PE column")
            ax.set_ylabel("PE row")
            fig.colorbar(im, ax=ax)
        fig.suptitle(f"{self.mapping}: {self.cycles:,.0f} cycles, bottleneck {self.bottleneck}")
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)
        return path


def _union(a, b):
    r0, c0 = min(a[0], b[0]), min(a[1], b[1])
    r1, c1 = max(a[0] + a[2], b[0] + b[2]), max(a[1] + a[3], b[1] + b[3])
    return (r0, c0, r1 - r0, c1 - c0)


def _pct(a, b):
    return f"{a / b:.1%}" if b else "-"
