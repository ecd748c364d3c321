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
import contextlib
import csv
import hashlib
import io
import itertools
import json
import os
import time
import warnings
import zlib

import numpy as np

from . import workloads
from ._atomic import write_bytes
from .errors import SramOverflowError
from .wafer import Wafer, WaferConfig
from .wafer.config import PRESETS

WORKLOADS = ("spmm", "conv2d", "matmul")
# Workload parameters and their defaults; everything else must be a WaferConfig field.
WORKLOAD_DEFAULTS = {
    "spmm": dict(m=1024, k=1024, n=64, sparsity=0.9, act_sparsity=0.5, region=None, mapping=None),
    "matmul": dict(m=256, k=256, n=256, region=None, mapping=None),
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
        config = WaferConfig.preset(base, **config_kw)
        report = _run(workload, name, params, config, seed)
    except SramOverflowError as exc:
        row.update(status="overflow", reason=str(exc))
    except (ValueError, TypeError, MemoryError) as exc:
        # MemoryError: a point refused with its estimate (or that failed to allocate) is
        # recorded, not the end of the sweep
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
    wafer = Wafer(config)
    rng = np.random.default_rng(seed)
    if name == "spmm":
        W = workloads.random_weight(int(p["m"]), int(p["k"]), float(p["sparsity"]), seed=seed)
        X = workloads.activations((int(p["k"]), int(p["n"])), float(p["act_sparsity"]), rng)
        return wafer.spmm(W, X, region=_region(p["region"]), mapping=p["mapping"],
                          compute=False)[1]
    if name == "matmul":
        A = rng.standard_normal((int(p["m"]), int(p["k"]))).astype(np.float32)
        B = rng.standard_normal((int(p["k"]), int(p["n"]))).astype(np.float32)
        return wafer.matmul(A, B, region=_region(p["region"]), mapping=p["mapping"],
                            compute=False)[1]
    if name == "conv2d":
        c, o, k, s = int(p["channels"]), int(p["out_channels"]), int(p["kernel"]), int(p["size"])
        x = workloads.activations((int(p["batch"]), c, s, s), float(p["act_sparsity"]), rng)
        w = workloads.activations((o, c, k, k), float(p["sparsity"]), rng)
        return wafer.conv2d(x, w, stride=int(p["stride"]), padding=int(p["padding"]),
                            region=_region(p["region"]), mapping=p["mapping"], compute=False)[1]
    return _run_model(workload, p, config, seed)


def _run_model(build, params, config, seed):
    """A callable workload builds a wsekern.nn model; one training step is costed."""
    from .nn import WaferStrategy, utils
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
# Result columns by kind: how a cached cell is read back, and what stands for "none"
# (the other figures are floats, NaN for none).
TEXT_COLUMNS = ("status", "reason", "bottleneck", "mapping_used", "region_used")   # none: ""
INT_COLUMNS = ("sram_peak_bytes", "pes")                                            # none: <NA>
RESULT_DTYPES = {c: object if c in TEXT_COLUMNS else "Int64" if c in INT_COLUMNS else np.float64
                 for c in RESULT_COLUMNS}
CHECK = "check"            # a CSV row's last cell: the CRC-32 of the text before it


class CacheWarning(UserWarning):
    """A damaged or foreign entry of a sweep cache was skipped (its point runs again)."""


def _canonical(row):
    """A row's result cells in the one form fresh and cached rows share: text (never
    None), float (NaN for none) or int (None for none)."""
    out = {}
    for col in RESULT_COLUMNS:
        v = row.get(col)
        if col in TEXT_COLUMNS:
            out[col] = "" if v is None else str(v)
        elif col in INT_COLUMNS:
            out[col] = None if v is None or (isinstance(v, float) and np.isnan(v)) else int(v)
        else:
            out[col] = np.nan if v is None else float(v)
    return out


def _cell(value):
    """A point's value as a cache cell (for people reading the file; the sweep itself
    takes points from its space): regions as "RxC"."""
    if isinstance(value, (tuple, list)):
        return "x".join(str(x) for x in value)
    return value


class ResultCache:
    """Finished rows of one sweep, keyed by point, safe against killed and concurrent writers.

    ``*.csv``: one line per row, appended under a lock file (``PATH.lock``) and fsynced;
    the header must be this sweep's, every line ends with the CRC-32 of its text, and
    newlines in text cells are escaped, so a line cut by a killed writer (or edited by
    hand) is detected, reported and skipped, never misread. Anything else: a directory
    with one Parquet file per point, written to a hidden temporary name, fsynced and
    renamed; unreadable parts are moved to ``_damaged/`` and reported.
    ``columns`` are the sweep's point names; ``points`` (key -> point) the sweep's points.
    """

    def __init__(self, path, columns, points):
        self.path = os.fspath(path)
        self.csv = self.path.endswith(".csv")
        self.point_columns = list(columns)
        self.points = dict(points)
        self.header = self.point_columns + ["key"] + RESULT_COLUMNS + [CHECK]
        self._schema = _point_kinds(self.point_columns, self.points.values())

    # -- reading --------------------------------------------------------------
    def load(self):
        """key -> result cells of every sound row of this sweep's points (a row cached
        twice, by two writers, counts once)."""
        if self.csv:
            return self._load_csv()
        return self._load_parquet()

    def done_keys(self):
        return set(self.load())

    def _load_csv(self):
        if not os.path.exists(self.path):
            return {}
        with _locked(self.path + ".lock"):
            with open(self.path, "rb") as f:
                parts = f.read().split(b"\n")         # bytes: damaged text is kept as it was
            lines = [p + b"\n" for p in parts[:-1]] + ([parts[-1]] if parts[-1] else [])
            if not lines or _is_cut_header(_text(lines[0]), self.header):
                return {}
            self._check_header(_text(lines[0]))
            found, sound, bad = {}, [lines[0]], []
            for number, line in enumerate(lines[1:], start=2):
                # a line with no end was cut by a killed writer
                row = self._parse_line(_text(line[:-1])) if line.endswith(b"\n") else None
                if row is None:
                    bad.append((number, line))
                    continue
                sound.append(line)
                if row[0] in self.points:
                    found.setdefault(row[0], row[1])
            if bad:
                self._set_aside(sound, bad)
        return found

    def _set_aside(self, sound, bad):
        """Keep the sound lines in the cache, the damaged ones in PATH.damaged (nothing is
        deleted), and say so once."""
        with open(self.path + ".damaged", "ab") as f:
            f.writelines(line if line.endswith(b"\n") else line + b"\n" for _, line in bad)
            f.flush()
            os.fsync(f.fileno())
        write_bytes(self.path, b"".join(sound))
        numbers = [n for n, _ in bad]
        warnings.warn(f"{self.path}: {len(bad)} damaged line(s) (line {numbers[:10]}"
                      f"{' ...' if len(bad) > 10 else ''}: cut by a killed writer or edited) "
                      f"moved to {self.path}.damaged; their points run again", CacheWarning,
                      stacklevel=4)

    def _check_header(self, line):
        got = next(csv.reader([line.rstrip("\n")]), None) if line is not None else "not text"
        if got != self.header:
            raise ValueError(
                f"{self.path} was not written by this sweep: its columns are {got}, this "
                f"sweep writes {self.header}. Give this sweep another cache path, or move "
                f"{self.path} aside to start the sweep afresh.")

    def _parse_line(self, line):
        """(key, result cells) of a sound line, else None."""
        if line is None:
            return None
        body, sep, crc = line.rpartition(",")
        if not sep or crc != _crc(body):
            return None
        try:
            cells = next(csv.reader([body]))
        except (csv.Error, StopIteration):
            return None
        if len(cells) != len(self.header) - 1:
            return None
        named = dict(zip(self.header, cells))
        try:
            result = {}
            for col in RESULT_COLUMNS:
                v = named[col]
                if col in TEXT_COLUMNS:
                    result[col] = _unescape(v)
                elif col in INT_COLUMNS:
                    result[col] = int(v) if v else None
                else:
                    result[col] = float(v) if v else np.nan
        except ValueError:
            return None
        return named["key"], result

    def _load_parquet(self):
        import pandas as pd
        if not os.path.isdir(self.path):
            return {}
        found, damaged = {}, []
        with _locked(os.path.join(self.path, ".lock")):
            for name in sorted(os.listdir(self.path)):
                full = os.path.join(self.path, name)
                if name.startswith((".", "_")) or not name.startswith("part-"):
                    continue                      # hidden temporaries, _damaged/, the lock
                key = name[len("part-"):-len(".parquet")] if name.endswith(".parquet") else None
                try:
                    if key is None:
                        raise ValueError("not a finished part (a writer was killed)")
                    frame = pd.read_parquet(full)
                    if len(frame) != 1 or frame["key"].iloc[0] != key:
                        raise ValueError(f"holds {len(frame)} rows, not the one of point {key}")
                    cells = frame.iloc[0].to_dict()
                    result = _canonical({c: _none(cells[c]) for c in RESULT_COLUMNS})
                except Exception as exc:           # any unreadable part: move it aside
                    damaged.append(f"{name} ({type(exc).__name__}: {exc})")
                    os.makedirs(os.path.join(self.path, "_damaged"), exist_ok=True)
                    os.replace(full, os.path.join(self.path, "_damaged", name))
                    continue
                if key in self.points:
                    found[key] = result
        if damaged:
            warnings.warn(f"{self.path}: moved {len(damaged)} damaged file(s) to _damaged/ "
                          f"(their points run again): {'; '.join(damaged[:5])}", CacheWarning,
                          stacklevel=3)
        return found

    # -- writing --------------------------------------------------------------
    def append(self, key, result):
        """Write the row of point ``key`` (its ``result`` cells canonical) for good."""
        cells = {c: _cell(self.points[key][c]) for c in self.point_columns}
        cells["key"] = key
        cells.update(result)
        if self.csv:
            self._append_csv(cells)
        else:
            self._write_part(key, cells)

    def _append_csv(self, cells):
        values = []
        for col in self.header[:-1]:
            v = cells[col]
            if isinstance(v, str):
                v = _escape(v)
            elif v is None or (isinstance(v, float) and np.isnan(v)):
                v = ""
            values.append(v)
        body = _csv_line(values)
        with _locked(self.path + ".lock"):
            with open(self.path, "a+b") as f:
                f.seek(0, os.SEEK_END)
                size = f.tell()
                if size:
                    f.seek(0)
                    first = f.readline().decode("utf-8", errors="replace")
                    if _is_cut_header(first, self.header):
                        f.truncate(0)             # a header cut by a killed writer: no rows lost
                        size = 0
                    else:
                        self._check_header(first)
                        f.seek(size - 1)
                        if f.read(1) != b"\n":
                            f.write(b"\n")       # end a cut line; the CRC check refuses it
                if not size:
                    f.write((_csv_line(self.header) + "\n").encode())
                f.write((body + "," + _crc(body) + "\n").encode())
                f.flush()
                os.fsync(f.fileno())

    def _write_part(self, key, cells):
        import pandas as pd
        os.makedirs(self.path, exist_ok=True)
        frame = _typed(pd.DataFrame([{c: cells[c] for c in self.header[:-1]}]), self._schema)
        write_bytes(os.path.join(self.path, f"part-{key}.parquet"),
                          frame.to_parquet(index=False))


def _point_kinds(columns, points):
    """Per point column, a pandas dtype that holds every value of the space (None as a
    missing value), so that no Parquet part has a column of nulls only."""
    kinds = {}
    for col in columns:
        values = [_cell(p[col]) for p in points]
        values = [v for v in values if v is not None]
        if values and all(isinstance(v, (bool, np.bool_)) for v in values):
            kinds[col] = "boolean"
        elif values and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                            for v in values):
            kinds[col] = "Int64"
        elif values and all(isinstance(v, (int, float, np.integer, np.floating))
                            and not isinstance(v, bool) for v in values):
            kinds[col] = "Float64"
        else:
            kinds[col] = "string"
    return kinds


def _none(v):
    """None for a missing cell of any pandas dtype (None, NaN, <NA>)."""
    import pandas as pd
    return None if pd.api.types.is_scalar(v) and pd.isna(v) else v


def _text(line):
    """A cache line's text, or None where its bytes are not UTF-8 (a damaged line)."""
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _csv_line(values):
    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow(values)
    return buf.getvalue()


def _crc(text):
    return f"{zlib.crc32(text.encode()):08x}"


def _escape(text):
    """One physical line per row: backslashes and line breaks in text cells escaped."""
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")


def _unescape(text):
    out, i = [], 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            out.append({"n": "\n", "r": "\r"}.get(text[i + 1], text[i + 1]))
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def _is_cut_header(line, header):
    """A first line with no line end that starts the expected header: a killed writer's."""
    return (line is not None and not line.endswith("\n")
            and (_csv_line(header) + "\n").startswith(line))


@contextlib.contextmanager
def _locked(path):
    """An exclusive lock on ``path`` (created if needed) while the block runs; writers of
    one cache in several processes take turns (a no-op where fcntl is missing)."""
    try:
        import fcntl
    except ImportError:                                      # Windows
        yield
        return
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


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
        points already there are not run again: the resumed frame equals the
        uninterrupted one in every column but ``wall_seconds``. Damaged entries (a killed
        writer's) are reported with a :class:`CacheWarning` and their points run again;
        a CSV written by another sweep is refused. Several processes may share a cache.
    base : the WaferConfig preset the points override ("wse2", "wse3", "small").
    seed : the seed every point's inputs are drawn from (on the worker).

    progress : bool, default False
        Show a progress bar (tqdm).

    Returns
    -------
    pandas.DataFrame
        One row per point, in the space's order: the point's values, ``key``, and the
        result columns ``RESULT_COLUMNS`` (``status`` "ok", "overflow" or "invalid" with
        its ``reason``; ``cycles`` and its bounds, ``seconds``, ``energy_joules``,
        ``utilization``, ``bottleneck``, ``sram_peak_bytes``, ``pes``, ``mapping_used``,
        ``region_used``, ``wall_seconds``). Text columns hold "" where a failed point has
        no value, ``sram_peak_bytes`` and ``pes`` are nullable integers (``<NA>``), the
        other figures floats (NaN).

    See Also
    --------
    skip_notes : why points differing only in a sparsity can have equal cycles.
    plot_pareto : the Pareto front as a PNG.
    """
    _requires()
    if isinstance(workload, str) and workload not in WORKLOADS:
        raise ValueError(f"workload must be one of {WORKLOADS} or a callable; "
                         f"received {workload!r}")
    if not isinstance(workload, str) and not callable(workload):
        raise TypeError(f"workload must be a name or a callable; "
                        f"received {type(workload).__name__}")
    if base not in PRESETS:
        raise ValueError(f"base must be 'wse2', 'wse3' or 'small'; received {base!r}")
    points = points_of(space)
    reserved = set(RESULT_COLUMNS) | {"key", CHECK}
    if reserved & set(points[0]):
        raise ValueError(f"space names {sorted(reserved & set(points[0]))} are result columns "
                         f"of the sweep; rename them")
    keys = [point_key(p, workload, base, seed) for p in points]
    by_key = dict(zip(keys, points))
    store = ResultCache(cache, list(points[0]), by_key) if cache is not None else None
    results = store.load() if store is not None else {}
    todo = [(k, p) for k, p in by_key.items() if k not in results]

    def finished(key, row):
        results[key] = _canonical(row)
        if store is not None:
            store.append(key, results[key])

    bar = _progress(len(todo), progress)
    if client is False:
        for key, point in todo:
            finished(key, evaluate_point(point, workload, base, seed))
            bar.update(1)
    else:
        _run_distributed(todo, workload, base, seed, client, finished, bar)
    bar.close()
    return _frame(points, keys, results)


def _frame(points, keys, results):
    """One row per point in the space's order, fresh and cached rows alike."""
    import pandas as pd
    names = list(points[0])
    rows = [dict(p, key=k, **results[k]) for p, k in zip(points, keys) if k in results]
    return _typed(pd.DataFrame(rows, columns=names + ["key"] + RESULT_COLUMNS))


def _typed(frame, kinds=None):
    """``frame`` with its result columns (and ``kinds``: column -> dtype) in their dtypes."""
    for col, kind in {**(kinds or {}), **RESULT_DTYPES}.items():
        frame[col] = frame[col].astype(kind)
    return frame


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
    """A bar on stderr when asked for and stderr is a terminal (a no-op otherwise)."""
    from ._progress import bar
    return bar(total, "sweep", unit="point", quiet=not enabled)


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
    """Write a PNG of every point and the Pareto front (``x`` and ``y``, lower is better).

    The front's points are numbered and listed under the axes with the parameters that
    vary (or ``label(row)``); points that coincide are drawn larger, and the notes of
    :func:`skip_notes` say why some coincide. Returns ``path``.
    """
    from .wafer import plots
    ok = frame[frame["status"] == "ok"]
    front = frame[pareto_front(frame, x, y)].sort_values(x)
    params = _varied(frame)
    positions = {idx: k for k, idx in enumerate(ok.index)}
    labels = [label(row) if label else ", ".join(f"{p}={row[p]}" for p in params)
              for _, row in front.iterrows()]
    units = {"cycles": "cycles", "energy_joules": "energy (J)", "seconds": "time (s)"}
    failed = int((frame["status"] != "ok").sum())
    return plots.pareto(ok[x].to_numpy(float), ok[y].to_numpy(float),
                        [positions[i] for i in front.index], labels,
                        xlabel=units.get(x, x), ylabel=units.get(y, y),
                        title=f"{len(ok)} points, {failed} failed; Pareto front of {x} and {y}",
                        path=path, notes=skip_notes(frame))


def _varied(frame):
    """The parameter columns whose value changes across the sweep."""
    return [c for c in frame.columns if c not in RESULT_COLUMNS and c != "key"
            and frame[c].astype(str).nunique() > 1]


def skip_notes(frame):
    """Why points that differ only in a sparsity have the same cycles: which operand's
    zeros the mapping they used can skip. A list of sentences (empty when none apply)."""
    from .wafer.report import SKIP_NOTES
    notes = []
    ok = frame[frame["status"] == "ok"]
    params = _varied(frame)
    for knob, operand in (("sparsity", "W"), ("act_sparsity", "X")):
        if knob not in params:
            continue
        others = [p for p in params if p != knob]
        # grouped by the text of the other values: a region may be an unhashable list
        keys = [ok[p].astype(str) for p in others]
        groups = ok.groupby(keys, dropna=False) if others else [((), ok)]
        for _, group in groups:
            same = group[group["cycles"].duplicated(keep=False)]
            if same[knob].nunique() < 2:
                continue
            for mapping in sorted(same["mapping_used"].dropna().unique()):
                values = ", ".join(f"{v:g}" if isinstance(v, (int, float)) else str(v)
                                   for v in sorted(same[knob].unique()))
                note = (f"equal cycles at {knob} {values} ({operand}'s zeros) with {mapping}: "
                        f"{SKIP_NOTES.get(mapping, 'see the mapping')}")
                if note not in notes:
                    notes.append(note)
    return notes


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
