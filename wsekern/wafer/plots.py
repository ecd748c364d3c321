"""Pictures of simulated runs: functions of arrays, rectangles and labels (no nn import).

Every figure zooms to the PEs that were used, shows where they sit on the wafer in a small
overview, starts its colour scales at zero (so a spread of 1 % reads as uniform, and the
title says so with the minimum and maximum), and is written atomically as a PNG.
``SimReport.plot``, ``WaferReport.plot`` and ``sweeps.plot_pareto`` are thin calls into it.
"""
import textwrap

import numpy as np

from .._atomic import atomic_file

# A panel whose values spread less than this fraction of their maximum is called uniform.
UNIFORM_SPREAD = 0.05
# A label fits inside a rectangle if it is wider than this many pixels per character of the
# label's longest line (8-point text) and taller than LABEL_PX_HIGH; else it goes outside.
LABEL_PX_PER_CHAR = 5.6
LABEL_PX_HIGH = 30
DPI = 110


def _pyplot():
    try:
        import matplotlib
    except ImportError as exc:
        raise ImportError("plots need matplotlib: pip install 'wsekern[plot]'") from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save(fig, path):
    """Write ``fig`` to ``path`` as a PNG atomically (temp file beside it, fsync, replace)
    and close it; returns ``path``."""
    plt = _pyplot()
    try:
        with atomic_file(path, suffix=".png") as f:
            fig.savefig(f, format="png", dpi=DPI, bbox_inches="tight")
    finally:
        plt.close(fig)
    return path


def spread_note(values, unit=""):
    """'min 4,468 .. max 4,528 B (nearly uniform: spread 1.3 %)' for an array of values."""
    v = np.asarray(values, dtype=float)
    if v.size == 0:
        return "empty"
    lo, hi = float(v.min()), float(v.max())
    unit = f" {unit}" if unit else ""
    text = f"min {lo:,.0f} .. max {hi:,.0f}{unit}"
    if hi > 0 and (hi - lo) / hi < UNIFORM_SPREAD:
        text += f"\nnearly uniform: spread {(hi - lo) / hi:.1%}"
    return text


def wafer_overview(ax, wafer_shape, rects, highlight=None):
    """The whole wafer as a grey outline with ``rects`` ((r0, c0, R, C) each) filled: where
    the used PEs sit. ``highlight`` (an index into rects) is drawn in red."""
    from matplotlib.patches import Rectangle
    rows, cols = wafer_shape
    ax.add_patch(Rectangle((0, 0), cols, rows, facecolor="#f2f2f2", edgecolor="grey"))
    order = [i for i in range(len(rects)) if i != highlight] + \
        ([highlight] if highlight is not None else [])          # the highlight on top
    for i in order:
        r0, c0, R, C = rects[i]
        colour = "crimson" if i == highlight else "#3b6ea5"
        # at least ~2 % of the wafer so a small region stays visible
        ax.add_patch(Rectangle((c0, r0), max(C, cols / 50), max(R, rows / 50),
                               facecolor=colour, edgecolor=colour))
    ax.set_xlim(0, cols)
    ax.set_ylim(rows, 0)
    ax.set_aspect("equal")
    ax.set_xticks([0, cols])
    ax.set_yticks([0, rows])
    ax.tick_params(labelsize=7)
    ax.set_title(f"on the {rows}x{cols} wafer", fontsize=8)


def heatmaps(panels, *, region, wafer_shape, title, path, notes=()):
    """Per-PE maps of one run over its region.

    Parameters
    ----------
    panels : list of (title, 2-D array, unit, vmax or None)
        One map per panel, already cut to the region; the colour scale runs from 0 to
        ``vmax`` (the maximum when None), so equal values look equal and small spreads
        look flat; each panel's title carries its minimum and maximum.
    region : tuple
        (row0, col0, rows, cols) of the region on the wafer.
    wafer_shape : tuple
        (rows, cols) of the whole wafer, for the overview.
    title : str
        The figure's title.
    path : str or path-like
        Where the PNG goes.
    notes : sequence of str
        Lines printed under the maps.
    """
    plt = _pyplot()
    n = len(panels)
    fig = plt.figure(figsize=(1.8 + 5.0 * n, 4.8))
    grid = fig.add_gridspec(1, n + 1, width_ratios=[0.4] + [1] * n, wspace=0.55)
    wafer_overview(fig.add_subplot(grid[0, 0]), wafer_shape, [region], highlight=0)
    r0, c0, R, C = region
    extent = (c0 - 0.5, c0 + C - 0.5, r0 + R - 0.5, r0 - 0.5)
    for i, (name, data, unit, vmax) in enumerate(panels):
        ax = fig.add_subplot(grid[0, i + 1])
        data = np.asarray(data, dtype=float)
        top = vmax if vmax else float(data.max(initial=0)) or 1.0
        im = ax.imshow(data, aspect="auto", interpolation="nearest", cmap="viridis",
                       vmin=0, vmax=top, extent=extent)
        ax.set_title(f"{name}\n{spread_note(data, unit)}", fontsize=9)
        ax.set_xlabel("PE column")
        ax.set_ylabel("PE row")
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03).set_label(unit, fontsize=8)
    fig.suptitle(title, fontsize=11, y=1.06)
    if notes:
        fig.text(0.01, -0.01, "\n".join(notes), fontsize=8, va="top", family="monospace")
    return save(fig, path)


def placement(layers, *, wafer_shape, title, path, bottleneck=None,
              parts=("forward", "input-gradient", "weight-gradient", "update")):
    """A model's layers on the wafer: a zoom on the used PEs, the overview, and the cycles
    each layer costs per step, split into ``parts``.

    Parameters
    ----------
    layers : list of dict
        Each with ``name``, ``region`` (row0, col0, rows, cols), ``cycles`` (per step) and
        one entry per name in ``parts`` (cycles per step of that part).
    wafer_shape : tuple
        (rows, cols) of the wafer.
    title : str
        The figure's title.
    path : str or path-like
        Where the PNG goes.
    bottleneck : str, optional
        The name of the slowest layer: outlined in red and named in the bar chart.
    """
    plt = _pyplot()
    fig = plt.figure(figsize=(12, 8.5))
    grid = fig.add_gridspec(2, 2, width_ratios=[1, 4], height_ratios=[1.25, 1],
                            hspace=0.45, wspace=0.18)
    rects = [tuple(int(v) for v in l["region"]) for l in layers]
    names = [l["name"] for l in layers]
    slow = names.index(bottleneck) if bottleneck in names else None
    wafer_overview(fig.add_subplot(grid[0, 0]), wafer_shape, rects, highlight=slow)
    top = max((l["cycles"] for l in layers), default=0) or 1.0
    _placement_zoom(plt, fig, fig.add_subplot(grid[0, 1]), layers, rects, slow, top)
    _cycle_bars(fig.add_subplot(grid[1, :]), layers, names, slow, parts, top)
    fig.suptitle(title, fontsize=11)
    return save(fig, path)


def _placement_zoom(plt, fig, ax, layers, rects, slow, top):
    """The used PEs, each layer's rectangle coloured by its cycles per step and labelled
    inside when the label fits, else under the axes with a leader line."""
    from matplotlib.patches import Rectangle
    cmap = plt.get_cmap("viridis")
    norm = plt.Normalize(0, top)
    r_lo = min((r[0] for r in rects), default=0)
    r_hi = max((r[0] + r[2] for r in rects), default=1)
    c_lo = min((r[1] for r in rects), default=0)
    c_hi = max((r[1] + r[3] for r in rects), default=1)
    pad_r, pad_c = max(1, (r_hi - r_lo) // 20), max(1, (c_hi - c_lo) // 40)
    # padded past the wafer's edge too, so an outline on the edge stays visible
    ax.set_xlim(c_lo - pad_c, c_hi + pad_c)
    ax.set_ylim(r_hi + pad_r, r_lo - pad_r)
    fig.canvas.draw()          # fixes the axes' size: labels are placed by pixels
    outside = []
    for i, (l, (r0, c0, R, C)) in enumerate(zip(layers, rects)):
        edge = ("crimson", 2.5) if i == slow else ("black", 0.8)
        ax.add_patch(Rectangle((c0, r0), C, R, facecolor=cmap(norm(l["cycles"])),
                               edgecolor=edge[0], linewidth=edge[1]))
        label = f"{l['name']}\n{l['cycles']:,.0f} cycles/step"
        (x0, y0), (x1, y1) = ax.transData.transform([(c0, r0), (c0 + C, r0 + R)])
        wide = LABEL_PX_PER_CHAR * max(len(line) for line in label.split("\n"))
        if abs(x1 - x0) >= wide and abs(y1 - y0) >= LABEL_PX_HIGH:
            light = norm(l["cycles"]) < 0.6
            ax.text(c0 + C / 2, r0 + R / 2, label, ha="center", va="center", fontsize=8,
                    color="white" if light else "black")
        else:
            outside.append((i, l, (c0 + C / 2, r0 + R / 2), label))
    # small rectangles: labels in a row under the zoom, each with a leader line
    for j, (i, l, xy, label) in enumerate(outside):
        ax.annotate(label, xy=xy, xycoords="data",
                    xytext=((j + 0.5) / max(len(outside), 1), -0.24), textcoords="axes fraction",
                    ha="center", va="top", fontsize=8,
                    color="crimson" if i == slow else "black",
                    arrowprops=dict(arrowstyle="-", color="grey", lw=0.8),
                    bbox=dict(boxstyle="round,pad=0.2", fc="white", ec="grey", lw=0.5))
    ax.set_xlabel("PE column")
    ax.set_ylabel("PE row")
    ax.set_title(f"zoom on the used PEs: rows {r_lo}-{r_hi - 1}, columns {c_lo}-{c_hi - 1} "
                 f"(colour: cycles per step, from 0)", fontsize=9)
    fig.colorbar(plt.cm.ScalarMappable(cmap=cmap, norm=norm), ax=ax, fraction=0.03,
                 pad=0.01).set_label("cycles per step", fontsize=8)


def _cycle_bars(bars, layers, names, slow, parts, top):
    """Each layer's cycles per step as a bar split into ``parts``, the bottleneck named."""
    y = np.arange(len(layers))
    left = np.zeros(len(layers))
    for part, colour in zip(parts, ("#3b6ea5", "#e08a2e", "#5aa469", "#9b59b6")):
        width = np.array([float(l.get(part, 0.0)) for l in layers])
        bars.barh(y, width, left=left, color=colour, label=part)
        left += width
    for yi, l in zip(y, layers):
        bars.text(l["cycles"], yi, f" {l['cycles']:,.0f}", va="center", fontsize=8)
    bars.set_yticks(y)
    bars.set_yticklabels([f"{n} (bottleneck)" if i == slow else n for i, n in enumerate(names)])
    if slow is not None:
        bars.get_yticklabels()[slow].set_color("crimson")
        bars.get_yticklabels()[slow].set_fontweight("bold")
    bars.invert_yaxis()
    bars.set_xlim(0, top * 1.15)
    bars.set_xlabel("cycles per step")
    bars.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), fontsize=8, ncol=len(parts),
                frameon=False)
    bars.set_title("cycles per step of each layer", fontsize=9)


def pareto(xs, ys, front, labels, *, xlabel, ylabel, title, path, notes=()):
    """All points of a sweep and its Pareto front, the front's points numbered and listed
    under the axes (so long labels are never clipped); points that coincide are counted.

    Parameters
    ----------
    xs, ys : array-like
        Coordinates of every successful point (both axes logarithmic, lower is better).
    front : array-like of int
        Indices into xs/ys of the Pareto front, in increasing x.
    labels : list of str
        One per front point: what its parameters were.
    xlabel, ylabel, title : str
        Axis labels and the figure's title.
    path : str or path-like
        Where the PNG goes.
    notes : sequence of str
        Lines printed under the list of front points.
    """
    plt = _pyplot()
    xs, ys = np.asarray(xs, float), np.asarray(ys, float)
    front = np.asarray(front, dtype=int)
    lines = [f"{k + 1}: {text}" for k, text in enumerate(labels)]
    lines += [wrapped for note in notes
              for wrapped in textwrap.wrap(f"note: {note}", 110, subsequent_indent="  ")]
    fig, ax = plt.subplots(figsize=(9, 5.5))
    pts, counts = np.unique(np.stack([xs, ys], axis=1), axis=0, return_counts=True) \
        if xs.size else (np.zeros((0, 2)), np.zeros(0, int))
    ax.scatter(pts[:, 0], pts[:, 1], s=18 + 14 * (counts - 1), alpha=0.5,
               label="points")
    ax.plot(xs[front], ys[front], "-o", color="crimson", label="Pareto front")
    for k, i in enumerate(front):
        ax.annotate(str(k + 1), (xs[i], ys[i]), fontsize=8, xytext=(5, 5),
                    textcoords="offset points", color="crimson")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)
    ax.set_title(f"{title}\n{len(pts)} distinct positions (larger markers: points that "
                 f"coincide)", fontsize=10)
    ax.text(0.0, -0.13, "\n".join(lines), fontsize=8, va="top", family="monospace",
            transform=ax.transAxes)
    return save(fig, path)
