"""Design-space sweeps of the simulated wafer, on Dask (``pip install "wsekern[sweep]"``).

``sweep(space, workload)`` runs one simulation per point of the Cartesian product of
``space`` and returns a pandas DataFrame, one row per point. Points run on a
``distributed`` cluster (a LocalCluster by default, any scheduler address, or serially
with ``client=False``); inputs are generated on the workers from seeds. A point that
fails (SRAM overflow, bad configuration) becomes a row saying why. With ``cache=PATH``
each finished row is written at once (CSV appended, or one Parquet file per point in a
directory) and a rerun skips the points already there, so a dead worker or an
interrupted sweep loses no finished point.
"""
import hashlib
import itertools
import json
import os
import time

import numpy as np

from .errors import SramOverflowError
from .wafer import Wafer, WaferConfig

WORKLOADS = ("spmm", "conv2d", "matmul")
# Workload parameters and their defaults; everything else must be a WaferConfig field.
WORKLOAD_DEFAULTS = {
    "spmm": dict(m=1024, k=1024, n=64, sparsity=0.9, act_sparsity=0.5, region=None, mapping=None),
    "matmul": dict(m=256, k=256, n=256, region=None),
    "conv2d": dict(batch=8, channels=64, out_channels=64, size=32, kernel=3, stride=1,
                   padding=1, sparsity=0.9, act_sparsity=0.5, region=None, mapping=None),
    "model": dict(batch=32),
}
RESULT_COLUMNS = ["status", "reason", "cycles", "cycles_lower", "cycles_upper", "seconds",
                  "energy_joules", "utilization", "bottleneck", "sram_peak_bytes", "pes",
                  "mapping_used", "region_used", "wall_seconds"]


def _requires():
    try:
        import pandas  # noqa: F401
    except ImportError as exc:
        raise ImportError('sweeps need pandas and dask: pip install "wsekern[sweep]"') from exc


def points_of(space):
    """The Cartesian product of ``space`` (name -> list of values), in a fixed order."""
    if not isinstance(space, dict) or not space:
        raise ValueError(f"space must be a non-empty dict of name -> list of values; "
                         f"received {space!r}")
    names = list(space)
    values = []
    for name in names:
        v = space[name]
        v = list(v) if isinstance(v, (list, tuple, range, np.ndarray)) else [v]
        if not v:
            raise ValueError(f"space[{name!r}] is empty")
        values.append(v)
    return [dict(zip(names, combo)) for combo in itertools.product(*values)]


def point_key(point, workload, base, seed):
    """A stable key for a point of a given sweep (what the cache is keyed on)."""
    name = workload if isinstance(workload, str) else getattr(workload, "__qualname__", "model")
    text = json.dumps({"p": point, "w": name, "b": base, "s": seed}, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def _split(point, workload_name):
    """(config overrides, workload parameters), with unknown names rejected."""
    fields = set(WaferConfig.field_names())
    defaults = WORKLOAD_DEFAULTS[workload_name]
    config, params = {}, dict(defaults)
    for name, value in point.items():
        if name in defaults or (workload_name == "model" and name not in fields):
            params[name] = value
        elif name in fields:
            config[name] = value
        else:
            raise ValueError(f"{name!r} is neither a WaferConfig field nor a parameter of the "
                             f"{workload_name!r} workload ({sorted(defaults)})")
    return config, params


def _region(value):
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, str):
        return tuple(int(v) for v in value.lower().replace("x", " ").replace(",", " ").split())
    return tuple(int(v) for v in value)


def evaluate_point(point, workload, base="wse2", seed=0):
    """Simulate one point; always returns a row dict (failures become rows with a reason)."""
    start = time.perf_counter()
    name = workload if isinstance(workload, str) else "model"
    row = dict(point)
    try:
        config_kw, params = _split(point, name)
        config = getattr(WaferConfig, base)(**config_kw)
        report = _run(workload, name, params, config, seed)
    except SramOverflowError as exc:
        row.update(status="overflow", reason=str(exc))
    except (ValueError, TypeError) as exc:
        row.update(status="invalid", reason=f"{type(exc).__name__}: {exc}")
    else:
        row.update(status="ok", reason="", **_figures(report))
    row["wall_seconds"] = time.perf_counter() - start
    for col in RESULT_COLUMNS:
        row.setdefault(col, None)
    return row


def _figures(report):
    if hasattr(report, "cycles_per_step"):            # a model's WaferReport
        cfg = report.strategy.config
        return dict(cycles=report.cycles_per_step, cycles_lower=None, cycles_upper=None,
                    seconds=report.cycles_per_step / cfg.clock_hz, energy_joules=None,
                    utilization=None, bottleneck=report.bottleneck_layer,
                    sram_peak_bytes=max((r["sram_peak_bytes"] for r in report.rows), default=0),
                    pes=sum(int(r["region"][2] * r["region"][3]) for r in report.rows),
                    mapping_used=report.mode, region_used=None)
    return dict(cycles=report.cycles, cycles_lower=report.cycles_lower,
                cycles_upper=report.cycles_upper, seconds=report.seconds,
                energy_joules=report.energy_joules, utilization=report.utilization,
                bottleneck=report.bottleneck, sram_peak_bytes=report.sram_peak_bytes,
                pes=report.pes, mapping_used=report.mapping,
                region_used="x".join(str(v) for v in report.region))


def _run(workload, name, p, config, seed):
    """Generate the inputs from ``seed`` here (on the worker) and simulate."""
    from .bench import random_weight
    wafer = Wafer(config)
    rng = np.random.default_rng(seed)
    if name == "spmm":
        W = random_weight(int(p["m"]), int(p["k"]), float(p["sparsity"]), seed=seed)
        X = rng.standard_normal((int(p["k"]), int(p["n"]))).astype(np.float32)
        X[rng.random(X.shape) < float(p["act_sparsity"])] = 0
        return wafer.spmm(W, X, region=_region(p["region"]), mapping=p["mapping"],
                          compute=False)[1]
    if name == "matmul":
        A = rng.standard_normal((int(p["m"]), int(p["k"]))).astype(np.float32)
        B = rng.standard_normal((int(p["k"]), int(p["n"]))).astype(np.float32)
        return wafer.matmul(A, B, region=_region(p["region"]), compute=False)[1]
    if name == "conv2d":
        c, o, k, s = int(p["channels"]), int(p["out_channels"]), int(p["kernel"]), int(p["size"])
        x = rng.standard_normal((int(p["batch"]), c, s, s)).astype(np.float32)
        x[rng.random(x.shape) < float(p["act_sparsity"])] = 0
        w = rng.standard_normal((o, c, k, k)).astype(np.float32)
        w[rng.random(w.shape) < float(p["sparsity"])] = 0
        return wafer.conv2d(x, w, stride=int(p["stride"]), padding=int(p["padding"]),
                            region=_region(p["region"]), mapping=p["mapping"], compute=False)[1]
    return _run_model(workload, p, config, seed)


def _run_model(build, params, config, seed):
    """A callable workload builds a wsekern.nn model; one training step is costed."""
    from .nn import utils
    from .wafer import WaferStrategy
    batch = int(params.pop("batch", 32))
    utils.set_random_seed(seed)
    strategy = WaferStrategy(config)
    with strategy.scope():
        model = build(**{k: v for k, v in params.items()})
        if model.optimizer is None:
            model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch,) + tuple(model.input_shape[1:])).astype(np.float32)
    y = rng.integers(0, model.output_shape[-1], batch)
    model.train_on_batch(x, y)
    return model.wafer_report()


# -- the cache ---------------------------------------------------------------------------
class ResultCache:
    """Rows keyed by point: ``*.csv`` appended line by line, anything else a directory of
    one Parquet file per point (written to a temporary name, then renamed)."""

    def __init__(self, path):
        self.path = os.fspath(path)
        self.csv = self.path.endswith(".csv")

    def load(self):
        import pandas as pd
        if self.csv:
            if not os.path.exists(self.path) or os.path.getsize(self.path) == 0:
                return pd.DataFrame()
            return pd.read_csv(self.path, keep_default_na=True)
        if not os.path.isdir(self.path) or not any(f.endswith(".parquet")
                                                    for f in os.listdir(self.path)):
            return pd.DataFrame()
        return pd.read_parquet(self.path)

    def done_keys(self):
        frame = self.load()
        return set(frame["key"]) if "key" in frame else set()

    def append(self, row):
        import pandas as pd
        frame = pd.DataFrame([_storable(row)])
        if self.csv:
            header = not os.path.exists(self.path) or os.path.getsize(self.path) == 0
            with open(self.path, "a", newline="") as f:
                frame.to_csv(f, header=header, index=False)
                f.flush()
                os.fsync(f.fileno())
            return
        os.makedirs(self.path, exist_ok=True)
        final = os.path.join(self.path, f"part-{row['key']}.parquet")
        tmp = final + ".tmp"
        frame.to_parquet(tmp, index=False)
        os.replace(tmp, final)


def _storable(row):
    """Values a CSV or Parquet column can hold (regions and Nones as text)."""
    out = {}
    for k, v in row.items():
        if isinstance(v, (tuple, list)):
            v = "x".join(str(x) for x in v)
        out[k] = "" if v is None and k in ("reason", "bottleneck", "mapping_used", "region_used") else v
    return out


# -- the sweep ---------------------------------------------------------------------------
def sweep(space, workload, *, client=None, cache=None, base="wse2", seed=0, progress=False):
    """Simulate every point of ``space`` for ``workload``; one DataFrame row per point.

    Parameters
    ----------
    space : dict
        Names (WaferConfig fields such as ``sram_bytes``, ``dtype``, ``rows``; or the
        workload's own: ``m``, ``k``, ``n``, ``sparsity``, ``act_sparsity``, ``batch``,
        ``region``, ``mapping``, ...) to lists of values.
    workload : "spmm", "conv2d", "matmul", or a callable building a wsekern.nn model
        (called with the point's non-config parameters; ``batch`` sets the step's batch).
    client : None, False, a distributed.Client, or a scheduler address
        None starts (and closes) a LocalCluster sized to the machine; False runs serially
        in this process.
    cache : path, optional
        ``*.csv`` or a Parquet directory; finished rows are written as they arrive and
        points already there are not run again.
    base : the WaferConfig preset the points override ("wse2", "wse3", "small").
    seed : the seed every point's inputs are drawn from (on the worker).
    """
    _requires()
    import pandas as pd
    if isinstance(workload, str) and workload not in WORKLOADS:
        raise ValueError(f"workload must be one of {WORKLOADS} or a callable; received {workload!r}")
    if not isinstance(workload, str) and not callable(workload):
        raise TypeError(f"workload must be a name or a callable; received {type(workload).__name__}")
    if base not in ("wse2", "wse3", "small"):
        raise ValueError(f"base must be 'wse2', 'wse3' or 'small'; received {base!r}")
    points = points_of(space)
    keys = [point_key(p, workload, base, seed) for p in points]
    store = ResultCache(cache) if cache is not None else None
    done = store.done_keys() if store is not None else set()
    todo = [(k, p) for k, p in zip(keys, points) if k not in done]
    rows = {}

    def finished(key, row):
        row["key"] = key
        rows[key] = row
        if store is not None:
            store.append(row)

    bar = _progress(len(todo), progress)
    if client is False:
        for key, point in todo:
            finished(key, evaluate_point(point, workload, base, seed))
            bar.update(1)
    else:
        _run_distributed(todo, workload, base, seed, client, finished, bar)
    bar.close()
    frame = pd.DataFrame([rows[k] for k in keys if k in rows])
    if store is not None and done:
        cached = store.load()
        cached = cached[cached["key"].isin(set(keys) - set(rows))]
        frame = pd.concat([frame, cached], ignore_index=True)
    order = {k: i for i, k in enumerate(keys)}
    frame = frame.sort_values("key", key=lambda s: s.map(order)).reset_index(drop=True)
    columns = list(points[0]) + ["key"] + RESULT_COLUMNS
    return frame[[c for c in columns if c in frame]]


def local_cluster(n_workers=None, **kwargs):
    """A ``distributed.LocalCluster`` of single-threaded worker processes for sweeps.

    Dask's nanny sets MALLOC_TRIM_THRESHOLD_=65536 in its workers, which makes glibc map
    and unmap every large array: the simulator's temporaries then run ~2.5x slower
    (measured: 0.66 s against 0.26 s for one point). These workers keep glibc's default.
    """
    import dask
    from distributed import LocalCluster
    environ = dict(dask.config.get("distributed.nanny.pre-spawn-environ", {}))
    environ.pop("MALLOC_TRIM_THRESHOLD_", None)
    with dask.config.set({"distributed.nanny.pre-spawn-environ": environ}):
        return LocalCluster(n_workers=n_workers or os.cpu_count() or 1, threads_per_worker=1,
                            processes=True, dashboard_address=None, **kwargs)


def _run_distributed(todo, workload, base, seed, client, finished, bar):
    from distributed import Client, as_completed
    own_cluster = own_client = None
    if client is None:
        own_cluster = local_cluster()
        client = own_client = Client(own_cluster)
    elif isinstance(client, str):
        client = own_client = Client(client)
    try:
        futures = {client.submit(evaluate_point, point, workload, base, seed, key=f"wsk-{key}",
                                 pure=False): key for key, point in todo}
        for future in as_completed(futures):
            finished(futures[future], future.result())
            bar.update(1)
    finally:
        if own_client is not None:
            own_client.close()
        if own_cluster is not None:
            own_cluster.close()


def _progress(total, enabled):
    if enabled:
        from tqdm.auto import tqdm
        return tqdm(total=total, unit="point")

    class _Silent:
        def update(self, n): pass
        def close(self): pass
    return _Silent()


# -- Pareto front --------------------------------------------------------------------
def pareto_front(frame, x="cycles", y="energy_joules"):
    """Boolean mask of the rows no other row beats on both ``x`` and ``y`` (lower is better)."""
    ok = frame["status"].eq("ok") & frame[x].notna() & frame[y].notna()
    mask = np.zeros(len(frame), dtype=bool)
    pts = frame.loc[ok, [x, y]].to_numpy(dtype=float)
    idx = np.flatnonzero(ok.to_numpy())
    order = np.lexsort((pts[:, 1], pts[:, 0]))
    best_y = np.inf
    for i in order:
        if pts[i, 1] < best_y:
            mask[idx[i]] = True
            best_y = pts[i, 1]
    return mask


def plot_pareto(frame, path, x="cycles", y="energy_joules", label=None):
    """Scatter of every point, the Pareto front joined and its points labelled."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    ok = frame[frame["status"] == "ok"]
    front = frame[pareto_front(frame, x, y)].sort_values(x)
    params = [c for c in frame.columns if c not in RESULT_COLUMNS and c != "key"
              and frame[c].astype(str).nunique() > 1]          # label what varies
    fig, ax = plt.subplots(figsize=(9, 6))
    ax.scatter(ok[x], ok[y], s=18, alpha=0.5, label="points")
    ax.plot(front[x], front[y], "-o", color="crimson", label="Pareto front")
    for _, row in front.iterrows():
        text = label(row) if label else ", ".join(f"{p}={row[p]}" for p in params)
        ax.annotate(text, (row[x], row[y]), fontsize=7, xytext=(4, 4), textcoords="offset points")
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.legend()
    ax.set_title(f"{len(ok)} points, {int((frame['status'] != 'ok').sum())} failed")
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


def load_spec(path):
    """A sweep spec from TOML: ``workload``, optional ``base`` and ``seed``, and [space]."""
    try:
        import tomllib
    except ImportError:             # Python 3.10
        import tomli as tomllib
    with open(path, "rb") as f:
        spec = tomllib.load(f)
    if "space" not in spec or "workload" not in spec:
        raise ValueError(f"{path}: a sweep spec needs 'workload = ...' and a [space] table")
    return spec
