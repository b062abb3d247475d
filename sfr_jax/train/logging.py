"""Training's logging on process 0: a progress bar (step, loss, images/s, ETA) and TensorBoard scalars (the
log itself, stderr and train.log, is set up by sfr_jax.logs)."""
from __future__ import annotations

import logging
import sys
import time

import jax

from sfr_jax.tfcpu import tf_cpu
from sfr_jax.workdir import Workdir

log = logging.getLogger("sfr_jax")


class Progress:
    """Per-step progress: a tqdm bar on process 0 (when stderr is a terminal or forced) and periodic lines."""

    def __init__(self, total: int, start: int, global_batch: int, workdir: str | None):
        self.total, self.start, self.global_batch = total, start, global_batch
        self.main = jax.process_index() == 0
        self.t0 = time.time()
        self.window = (time.time(), start)
        self.bar = None
        if self.main and sys.stderr.isatty():
            from tqdm import tqdm
            self.bar = tqdm(total=total, initial=start, unit="step", dynamic_ncols=True)
        self.writer = None
        if self.main and workdir:
            self.writer = tf_cpu().summary.create_file_writer(Workdir(workdir).tensorboard)

    def rate(self, step: int) -> float:
        """Images per second since the last call."""
        t, s = self.window
        now = time.time()
        self.window = (now, step)
        return (step - s) * self.global_batch / max(now - t, 1e-9)

    def update(self, step: int, scalars: dict, line: bool) -> None:
        if not self.main:
            return
        if self.bar is not None:
            self.bar.update(step - self.bar.n)
        if line:
            ips = self.rate(step)
            done = step - self.start
            eta = (time.time() - self.t0) / max(done, 1) * (self.total - step)
            scalars = dict(scalars, images_per_s=ips)
            text = f"step {step}/{self.total} loss {scalars.get('loss', float('nan')):.4f} {ips:.1f} img/s " \
                   f"ETA {time.strftime('%H:%M:%S', time.gmtime(eta))}"
            if self.bar is not None:
                self.bar.set_postfix_str(text.split(" ", 2)[2])
            log.info(text)
            self.scalars(step, scalars)

    def scalars(self, step: int, scalars: dict, prefix: str = "") -> None:
        if self.writer is None:
            return
        tf = tf_cpu()
        with self.writer.as_default(step=step):
            for k, v in scalars.items():
                tf.summary.scalar(prefix + k, float(v))
        self.writer.flush()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.writer is not None:
            self.writer.close()
