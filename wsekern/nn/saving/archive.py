"""The model file: a zip of ``config.json`` and ``.npy`` arrays (no pickles), written
atomically and read defensively - sizes checked against what the config declares before any
member is decompressed, and only the members the model uses are read."""
import io
import json
import os
import zipfile
import zlib

import numpy as np

from ..._atomic import atomic_file

CONFIG_NAME = "config.json"
CONFIG_MAX_BYTES = 512 * 1024        # a 1,000-layer functional model's config is ~300 KB
NPY_HEADER_MAX_BYTES = 4096          # np.save writes 128 bytes (more only for huge ranks)
MAX_MEMBERS = 100_000


def _json_default(value):
    """NumPy scalars and arrays in configs become plain JSON numbers and lists."""
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.ndarray) and value.size <= 4096:
        return value.tolist()
    if isinstance(value, np.dtype):
        return value.name
    raise TypeError(f"a value of type {type(value).__name__} ({value!r:.80}) cannot be "
                    f"written to a model config")


def dumps(meta):
    return json.dumps(meta, default=_json_default, allow_nan=False)


def npy_bytes(array):
    buf = io.BytesIO()
    np.save(buf, np.asarray(array, order="C"), allow_pickle=False)   # keeps 0-d arrays 0-d
    return buf.getvalue()


def write_atomically(filepath, meta, arrays, overwrite=True):
    """Write the zip to a temporary file beside ``filepath``, fsync it, then rename it over
    ``filepath``: a failure at any point leaves the old file as it was."""
    filepath = os.fspath(filepath)
    if not overwrite and os.path.exists(filepath):
        raise FileExistsError(f"{filepath} exists and overwrite=False")
    config = dumps(meta).encode()                  # fails before anything is written
    payload = {name: npy_bytes(a) for name, a in arrays.items()}
    with atomic_file(filepath, suffix=".keras") as f:
        with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_DEFLATED) as z:
            z.writestr(CONFIG_NAME, config)
            for name, data in payload.items():
                z.writestr(name, data)


class Archive:
    """An open model file whose members are read one at a time, each checked first."""

    def __init__(self, filepath):
        self.path = os.fspath(filepath)
        # members read by config() and array() are under this prefix (a .keras file written
        # by wsekern keeps its own config under wsekern/)
        self.prefix = ""
        try:
            self.zip = zipfile.ZipFile(self.path)
        except zipfile.BadZipFile as e:
            raise ValueError(f"{self.path} is not a wsekern.nn model file (not a zip: "
                             f"{e})") from None
        infos = self.zip.infolist()
        if len(infos) > MAX_MEMBERS:
            raise ValueError(f"{self.path} holds {len(infos):,} members; a model file holds "
                             f"at most {MAX_MEMBERS:,}")
        self.members = {}
        for info in infos:
            name = info.filename
            if name.startswith(("/", "\\")) or ".." in name.replace("\\", "/").split("/") \
                    or ":" in name:
                raise ValueError(f"{self.path} holds a member with an unsafe path {name!r}; "
                                 f"refusing the file")
            if name in self.members:
                raise ValueError(f"{self.path} holds member {name!r} twice")
            self.members[name] = info

    def close(self):
        self.zip.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _read_capped(self, info, cap):
        """At most ``cap`` bytes of the member, whatever its header says."""
        try:
            with self.zip.open(info) as f:
                data = f.read(cap + 1)
        except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError,
                RuntimeError) as e:
            # a size or CRC that does not match its bytes, an encrypted member, an
            # unknown compression method
            raise ValueError(f"{self.path}: member {info.filename!r} cannot be read "
                             f"({type(e).__name__}: {str(e)[:120]}); the file is damaged "
                             f"or was not written as a model file") from None
        if len(data) > cap:
            raise ValueError(f"{self.path}: member {info.filename!r} decompresses to more than "
                             f"the {cap:,} bytes expected")
        return data

    def config(self):
        info = self.members.get(self.prefix + CONFIG_NAME)
        if info is None:
            raise ValueError(f"{self.path} is not a wsekern.nn model file (no {CONFIG_NAME})")
        if info.file_size > CONFIG_MAX_BYTES:
            raise ValueError(f"{self.path}: {CONFIG_NAME} declares {info.file_size:,} bytes; "
                             f"a model config holds at most {CONFIG_MAX_BYTES:,}")
        raw = self._read_capped(info, CONFIG_MAX_BYTES)
        try:
            meta = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            raise ValueError(f"{self.path}: {CONFIG_NAME} is not valid JSON ({e})") from None
        except RecursionError:
            raise ValueError(f"{self.path}: {CONFIG_NAME} nests deeper than Python's JSON "
                             f"reader can follow; a saved model nests a few levels") from None
        if not isinstance(meta, dict):
            raise ValueError(f"{self.path}: {CONFIG_NAME} must hold a JSON object; received "
                             f"{type(meta).__name__}")
        return meta

    def array(self, name, shape, dtype):
        """Member ``name`` as an array of exactly ``shape`` and ``dtype``; its declared size
        is checked before it is decompressed, and pickles are refused."""
        name = self.prefix + name
        info = self.members.get(name)
        if info is None:
            raise ValueError(f"{self.path}: member {name!r} is missing")
        dtype = np.dtype(dtype)
        expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        cap = expected + NPY_HEADER_MAX_BYTES
        if info.file_size > cap:
            raise ValueError(f"{self.path}: member {name!r} declares {info.file_size:,} bytes "
                             f"where the model's {tuple(shape)} {dtype.name} array needs "
                             f"{expected:,}; refusing the file")
        data = self._read_capped(info, cap)
        try:
            arr = np.load(io.BytesIO(data), allow_pickle=False)
        except ValueError as e:
            raise ValueError(f"{self.path}: member {name!r} is not a plain .npy array "
                             f"({e})") from None
        if not isinstance(arr, np.ndarray) or arr.shape != tuple(shape) or arr.dtype != dtype:
            raise ValueError(f"{self.path}: member {name!r} holds a {getattr(arr, 'dtype', '?')} "
                             f"array of shape {getattr(arr, 'shape', '?')}; the model needs "
                             f"{dtype.name} {tuple(shape)}")
        return arr
