"""What CPU this is: model, vendor, family/model numbers and cache sizes (for show_config,
the bench headers and the per-microarchitecture cost table). Read once, never raises."""
import functools
import os
import platform


def _read(path):
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            return f.read().strip()
    except OSError:
        return None


def _cpuinfo_fields():
    """The first processor's fields of /proc/cpuinfo (Linux), else {}."""
    text = _read("/proc/cpuinfo") or ""
    fields = {}
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break
            continue
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return fields


def _size_bytes(text):
    """'512K' / '32768K' / '8M' / '65536' -> bytes, or None."""
    if not text:
        return None
    text = text.strip().upper()
    scale = {"K": 1024, "M": 1024**2, "G": 1024**3}.get(text[-1:], 1)
    digits = text[:-1] if text[-1:] in "KMG" else text
    return int(digits) * scale if digits.isdigit() else None


def _caches_sysfs():
    """{'L1d': bytes, 'L2': bytes, 'L3': bytes} of CPU 0 from sysfs (Linux)."""
    caches = {}
    base = "/sys/devices/system/cpu/cpu0/cache"
    try:
        entries = sorted(os.listdir(base))
    except OSError:
        return caches
    for entry in entries:
        if not entry.startswith("index"):
            continue
        level = _read(f"{base}/{entry}/level")
        kind = _read(f"{base}/{entry}/type")
        size = _size_bytes(_read(f"{base}/{entry}/size"))
        if not level or not size or kind == "Instruction":
            continue
        caches[f"L{level}d" if level == "1" else f"L{level}"] = size
    return caches


def _caches_sysconf():
    caches = {}
    for key, name in (("L1d", "SC_LEVEL1_DCACHE_SIZE"), ("L2", "SC_LEVEL2_CACHE_SIZE"),
                      ("L3", "SC_LEVEL3_CACHE_SIZE")):
        try:
            size = os.sysconf(name)
        except (ValueError, OSError):
            continue
        if size and size > 0:
            caches[key] = size
    return caches


@functools.lru_cache(maxsize=1)
def cpu_info():
    """dict: model, vendor, family, model_number, caches ({'L1d', 'L2', 'L3'} in bytes per
    instance, those found), and uarch (a name from :data:`UARCH_BY_ID`, or 'unknown')."""
    fields = _cpuinfo_fields()
    model = (fields.get("model name") or fields.get("Model") or fields.get("Processor")
             or platform.processor() or platform.machine() or "unknown")
    vendor = fields.get("vendor_id") or fields.get("CPU implementer") or "unknown"
    family = _int(fields.get("cpu family"))
    number = _int(fields.get("model"))
    caches = _caches_sysfs() or _caches_sysconf()
    # an x86 name only for an x86 process: under qemu-user an Arm build reads the host's
    # /proc/cpuinfo, whose numbers say nothing of the code it runs
    x86 = platform.machine().lower() in X86_MACHINES
    return {"model": model, "vendor": vendor, "family": family, "model_number": number,
            "caches": caches, "uarch": uarch_of(vendor, family, number) if x86 else "unknown"}


X86_MACHINES = frozenset({"x86_64", "amd64", "i386", "i686", "x86"})


def _int(text):
    try:
        return int(text, 0)
    except (TypeError, ValueError):
        return None


# (vendor, family, first model, last model) -> microarchitecture, for the cost table.
UARCH_BY_ID = (
    ("AuthenticAMD", 0x17, 0x00, 0xFF, "zen1-2"),   # Zen, Zen+, Zen 2: AVX2
    ("AuthenticAMD", 0x19, 0x00, 0x0F, "zen3"),     # Milan
    ("AuthenticAMD", 0x19, 0x20, 0x5F, "zen3"),     # Vermeer, Cezanne, ...
    ("AuthenticAMD", 0x19, 0x10, 0x1F, "zen4"),     # Genoa: AVX-512 on 256-bit units
    ("AuthenticAMD", 0x19, 0x60, 0xAF, "zen4"),
    ("AuthenticAMD", 0x1A, 0x00, 0xFF, "zen5"),
)


def uarch_of(vendor, family, number):
    for v, fam, lo, hi, name in UARCH_BY_ID:
        if vendor == v and family == fam and number is not None and lo <= number <= hi:
            return name
    return "unknown"


# L2 assumed when the OS does not tell (the smallest per-core L2 of current x86 and Arm cores).
DEFAULT_L2 = 256 * 1024


def l2_bytes():
    """This CPU's L2 per core in bytes (for the spmm kernel's column blocks)."""
    return cpu_info()["caches"].get("L2") or DEFAULT_L2


def l3_bytes():
    """This CPU's L3 in bytes (0 when the OS does not tell)."""
    return cpu_info()["caches"].get("L3") or 0


def describe():
    """One line: 'AMD EPYC (zen3); L1d 32 KiB, L2 512 KiB, L3 32 MiB'."""
    info = cpu_info()
    caches = ", ".join(f"{k} {_human(v)}" for k, v in info["caches"].items()) or "caches unknown"
    uarch = f" ({info['uarch']})" if info["uarch"] != "unknown" else ""
    return f"{info['model']}{uarch}; {caches}"


def _human(size):
    for unit, scale in (("MiB", 1024**2), ("KiB", 1024)):
        if size >= scale and size % scale == 0:
            return f"{size // scale} {unit}"
    return f"{size} B"
