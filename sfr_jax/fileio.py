"""Writing outputs so that a reader never mistakes a half-written one for a complete one.

Every file and folder we write goes through `atomic_path` (files) or `atomic_directory` (folders): the
content is written under a hidden temporary name beside the target, in the target's folder (created when
missing), and renamed onto the target only when complete. A writer killed half-way leaves at most a
temporary `.NAME.tmp-HOST-PID-XXXX`, which the next write of the same target removes once its writer is
gone. Problems a user can fix (the target is a folder, the folder is read-only) are `OutputError`s.

A file name made from user text (a video's name, a class code) goes through `safe_name`, and every output
path made from one goes through `path_under`, which refuses a path that would leave its output folder.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import socket
import tempfile
import unicodedata

from sfr_jax import interrupts
from sfr_jax.errors import OutputError

TEMP_MARK = ".tmp-"
SAFE_NAME_BYTES = 100  # UTF-8 bytes; leaves room under NAME_MAX (255) for suffixes and the temporary prefix
_SAFE_PUNCTUATION = "-_.+=@,()[] "


def safe_name(text: str, max_bytes: int = SAFE_NAME_BYTES) -> str:
    """A file name (no folder) from user text: letters and digits of any script and -_.+=@,()[] and space
    kept, every other character (/, \\, NUL, controls, undecodable bytes) made `_`; no leading dot (no
    hidden, `.` or `..` name), no trailing dot or space; longer than `max_bytes` of UTF-8: cut, with `-` and 8
    hex digits of the text's SHA-1 so that long names stay distinct. Never empty."""
    text = unicodedata.normalize("NFC", str(text))
    kept = "".join(c if (c.isalnum() and c.isprintable()) or c in _SAFE_PUNCTUATION else "_" for c in text)
    kept = kept.strip(" ").rstrip(". ")
    kept = "_" * (len(kept) - len(kept.lstrip("."))) + kept.lstrip(".")
    kept = kept or "_"
    if len(kept.encode("utf-8")) > max_bytes:
        tag = "-" + hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()[:8]
        cut = kept.encode("utf-8")[:max_bytes - len(tag)].decode("utf-8", "ignore").rstrip(". ")
        kept = cut + tag
    return kept


def display_path(path: str) -> str:
    """A path as text that any UTF-8 writer takes: bytes of a file name that are not UTF-8 (which Python
    holds as surrogates) shown as \\xNN, so that the name is still recognisable."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def path_under(root: str, *parts: str) -> str:
    """os.path.join(root, *parts), made absolute; an OutputError when it would not lie strictly inside
    `root` (a `..`, an absolute part) or holds a NUL byte. The one check of every output path made from
    user text."""
    if any("\0" in str(p) for p in (root, *parts)):
        raise OutputError(f"output name {os.path.join(root, *parts)!r} holds a NUL byte")
    base = os.path.abspath(root)
    path = os.path.abspath(os.path.join(base, *parts))
    if path == base or os.path.commonpath([base, path]) != base:
        raise OutputError(f"output path {os.path.join(root, *parts)!r} would lie outside the output folder "
                          f"{root}")
    return path


def _temp_prefix(path: str) -> str:
    return f".{os.path.basename(path)}{TEMP_MARK}{socket.gethostname()}-"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _stale(name: str, prefix: str) -> bool:
    if not name.startswith(prefix):
        return False
    pid = name[len(prefix):].split("-", 1)[0]
    return pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid))


def _remove(paths) -> list[str]:
    for full in paths:
        shutil.rmtree(full, ignore_errors=True) if os.path.isdir(full) else os.remove(full)
    return list(paths)


def remove_stale_temps(path: str) -> list[str]:
    """Remove this host's leftover temporaries of `path` (from writers that died); returns what was removed.
    Temporaries of live processes and of other hosts (a shared file system) are left alone."""
    folder, prefix = os.path.dirname(os.path.abspath(path)), _temp_prefix(path)
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    return _remove([os.path.join(folder, n) for n in names if _stale(n, prefix)])


def remove_stale_temps_in(folder: str) -> list[str]:
    """Remove this host's leftover temporaries of any target in `folder` (writers that died)."""
    host = f"{TEMP_MARK}{socket.gethostname()}-"
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    stale = [n for n in names if n.startswith(".") and host in n and _stale(n, n[:n.index(host) + len(host)])]
    return _remove([os.path.join(folder, n) for n in stale])


def ensure_dir(path: str) -> str:
    """Create a folder (and its parents) for output; an OutputError naming it when that is not possible."""
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as error:
        raise OutputError(f"cannot create the folder {path}: {error.strerror or error}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write into the folder {path}: permission denied")
    return path


def _prepare_target(path: str, kind: str, clean: bool = True) -> str:
    """The absolute target; its folder created; a clear OutputError when it cannot be written there."""
    path = os.path.abspath(path)
    folder = os.path.dirname(path)
    if kind == "file" and os.path.isdir(path):
        raise OutputError(f"cannot write {path}: it is a folder; give a file name")
    if kind == "folder" and os.path.exists(path) and not os.path.isdir(path):
        raise OutputError(f"cannot write folder {path}: a file of that name exists")
    ensure_dir(folder)
    if clean:
        remove_stale_temps(path)
    return path


def _os_error(path: str, error: OSError) -> OutputError:
    reason = {errno.ENOSPC: "the disk is full", errno.EACCES: "permission denied", errno.EROFS:
              "read-only file system"}.get(error.errno, error.strerror or str(error))
    return OutputError(f"cannot write {path}: {reason}")


@contextlib.contextmanager
def atomic_path(path: str, clean: bool = True):
    """Yield a temporary file name beside `path` for any writer that takes a name (torch.save, PIL,
    TFRecordWriter, ...); on success it is renamed onto `path`, on any error (Ctrl-C included) removed.
    clean=False skips looking for stale temporaries of `path` (a bulk writer sweeps its folder once)."""
    path = _prepare_target(path, "file", clean)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f"{_temp_prefix(path)}{os.getpid()}-", dir=os.path.dirname(path))
    except OSError as error:
        raise _os_error(path, error) from None
    os.close(fd)
    try:
        yield tmp
        interrupts.check()  # a Ctrl-C that a library swallowed must not publish the output
        os.replace(tmp, path)
    except BaseException as error:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        if isinstance(error, OSError) and not isinstance(error, OutputError) and error.errno in (
                errno.ENOSPC, errno.EACCES, errno.EROFS, errno.EDQUOT):
            raise _os_error(path, error) from None
        raise


@contextlib.contextmanager
def atomic_write(path: str, mode: str = "w", **open_kwargs):
    """Yield an open file on a temporary name beside `path`; renamed onto `path` when the block ends
    without error (after flush + fsync), removed otherwise. mode 'w' (text, UTF-8) or 'wb'."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write mode must be 'w' or 'wb', got {mode!r}")
    if mode == "w":
        open_kwargs.setdefault("encoding", "utf-8")
    with atomic_path(path) as tmp:
        with open(tmp, mode, **open_kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())


def write_text(path: str, text: str) -> str:
    """Write `text` to `path` atomically; returns the absolute path."""
    with atomic_write(path) as handle:
        handle.write(text)
    return os.path.abspath(path)


def write_json(path: str, payload, *, indent: int = 1, sort_keys: bool = False, default=None) -> str:
    """Write JSON (ending in a newline) to `path` atomically; returns the absolute path."""
    return write_text(path, json.dumps(payload, indent=indent, sort_keys=sort_keys, default=default) + "\n")


@contextlib.contextmanager
def atomic_directory(out_dir: str):
    """Yield a temporary sibling folder to fill; on success it takes the place of `out_dir` in one atomic
    exchange (Linux renameat2), after which the old content is removed: at every moment the old or the new
    folder stands under the name. On any error (Ctrl-C included) the temporary is removed and `out_dir` is
    left as it was. Where the system cannot exchange, the old folder is renamed aside just before the new
    one is renamed in."""
    out_dir = _prepare_target(out_dir, "folder")
    parent = os.path.dirname(out_dir)
    try:
        tmp = tempfile.mkdtemp(prefix=f"{_temp_prefix(out_dir)}{os.getpid()}-", dir=parent)
    except OSError as error:
        raise _os_error(out_dir, error) from None
    try:
        yield tmp
        interrupts.check()
        if not os.path.exists(out_dir):
            os.rename(tmp, out_dir)
        elif _exchange(tmp, out_dir):  # one atomic swap: the old content is now under tmp
            shutil.rmtree(tmp, ignore_errors=True)
        else:  # no atomic exchange here: old aside, new in (a moment with neither), old removed
            old = tempfile.mkdtemp(prefix=f"{_temp_prefix(out_dir)}{os.getpid()}-old-", dir=parent)
            os.rmdir(old)
            os.rename(out_dir, old)
            try:
                os.rename(tmp, out_dir)
            except BaseException:
                os.rename(old, out_dir)
                raise
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _exchange(a: str, b: str) -> bool:
    """Swap two paths atomically (Linux renameat2 RENAME_EXCHANGE); False where the system cannot."""
    global _renameat2
    if _renameat2 is None:
        try:
            import ctypes
            libc = ctypes.CDLL(None, use_errno=True)
            _renameat2 = libc.renameat2
            _renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
        except (OSError, AttributeError):
            _renameat2 = False
    if not _renameat2:
        return False
    at_fdcwd, rename_exchange = -100, 2
    if _renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    import ctypes
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):  # file system or kernel without it
        return False
    raise OSError(code, os.strerror(code), b)


_renameat2 = None
