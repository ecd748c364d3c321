"""Files written whole or not at all: a temporary file beside the target, fsynced, then
renamed over it, with the permissions ``open()`` would give (mkstemp's are 0600)."""
import contextlib
import errno
import os
import tempfile


def _read_umask():
    mask = os.umask(0)            # the umask can only be read by setting it: done once, at
    os.umask(mask)                # import, not while other threads may be creating files
    return mask


UMASK = _read_umask()


@contextlib.contextmanager
def atomic_file(path, suffix=".tmp"):
    """A binary file to write; on a clean exit it replaces ``path``, else it is removed."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise IsADirectoryError(errno.EISDIR, f"cannot write {path!r}: it is a directory; "
                                f"give a file name")
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.",
                                   suffix=suffix)
    except OSError as e:      # named by the temporary file: say which path was asked for
        reason = ("its folder does not exist" if isinstance(e, FileNotFoundError) else
                  "a part of its folder is not a directory" if isinstance(e, NotADirectoryError)
                  else e.strerror or str(e))
        raise type(e)(e.errno, f"cannot write {path!r}: {reason} ({folder})") from None
    try:
        os.fchmod(fd, 0o666 & ~UMASK)
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(folder)


def fsync_dir(folder):
    """Make a rename in ``folder`` durable (best effort: not every filesystem allows it)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_bytes(path, data):
    """``data`` to ``path`` atomically; returns ``path``."""
    with atomic_file(path) as f:
        f.write(data)
    return path
