"""The `sfr_jax` log of a command: stderr, plus the workdir's train.log on process 0. Other processes log
warnings and errors only."""
from __future__ import annotations

import logging
import os
import sys

import jax

from sfr_jax.workdir import Workdir

log = logging.getLogger("sfr_jax")


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is when a record is emitted, not when the handler was made (a caller
    may have redirected it since, as test runners and notebooks do)."""

    def emit(self, record):
        self.stream = sys.stderr
        super().emit(record)


def setup(workdir: str | None, verbose: bool = True) -> None:
    """Root logger for the `sfr_jax` namespace: stderr, plus workdir/train.log on process 0."""
    log.setLevel(logging.INFO if jax.process_index() == 0 and verbose else logging.WARNING)
    fmt = logging.Formatter("%(asctime)s %(levelname)s [p%(process_index)s] %(message)s")
    for h in list(log.handlers):
        if getattr(h, "_sfr_jax", False):
            log.removeHandler(h)
            h.close()

    class _Proc(logging.Filter):
        def filter(self, record):
            record.process_index = jax.process_index()
            return True

    handlers = [_StderrHandler()]
    if workdir and jax.process_index() == 0:
        os.makedirs(workdir, exist_ok=True)
        handlers.append(logging.FileHandler(Workdir(workdir).log_file))
    for h in handlers:
        h.setFormatter(fmt)
        h.addFilter(_Proc())
        h._sfr_jax = True
        log.addHandler(h)
    log.propagate = False
