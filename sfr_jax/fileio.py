"""Writing outputs so that a reader never mistakes a half-written one for a complete one."""
import contextlib
import os
import shutil
import tempfile


@contextlib.contextmanager
def atomic_directory(out_dir: str):
    """Yield a temporary sibling folder to fill; on success it replaces `out_dir` with one rename, on any
    error (Ctrl-C included) it is removed and `out_dir` is left as it was."""
    out_dir = os.path.abspath(out_dir)
    parent = os.path.dirname(out_dir)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(out_dir)}.tmp-", dir=parent)
    try:
        yield tmp
        if os.path.exists(out_dir):
            shutil.rmtree(out_dir)
        os.rename(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
