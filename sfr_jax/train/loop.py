"""The training loop: resume, step through epochs, evaluate, checkpoint, stop cleanly.

The input pipeline is a pure function of (seed, epoch, batch index) and dropout keys of (seed, step), so a
run resumed from a checkpoint at step s continues bit-identically to one that never stopped.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import signal
import threading

import jax
import numpy as np
from jax.experimental import multihost_utils

from sfr_jax import config as config_lib
from sfr_jax import logs, parallel
from sfr_jax.data import pipeline
from sfr_jax.data.augment import AugConfig
from sfr_jax.errors import ConfigError
from sfr_jax.eval import report
from sfr_jax.eval.evaluator import Evaluator, flat_metrics
from sfr_jax.fileio import write_text
from sfr_jax.infer import model as model_lib
from sfr_jax.train import logging as run_log
from sfr_jax.train import finetune, optim, steps
from sfr_jax.train.run import Run, checkpoint_meta, checkpoint_tree, checkpoints, input_readers, restore_into, setup, \
    split_dir
from sfr_jax.workdir import Workdir

log = logging.getLogger("sfr_jax")


class NonFiniteLoss(FloatingPointError):
    """The loss became NaN or Inf; the last good checkpoint is kept."""


@dataclasses.dataclass
class Result:
    status: str  # 'done', or 'preempted' (a signal, or train.stop_at_step)
    step: int
    losses: list
    eval: dict | None = None
    run: Run | None = None
    signal: str = ""  # 'SIGTERM' or 'SIGINT' when a signal stopped it on this process


def train_input(config, start_step: int, num_steps: int):
    """Host-local batches for global steps start_step, ...; each of this process's readers contributes its
    slice of every global batch, in reader order."""
    readers, mine = input_readers(config)
    kw = dict(global_batch=config.train.global_batch, seed=config.seed, start_step=start_step,
              image_size=config.data.image_size, process_count=readers,
              aug_config=AugConfig() if config.data.augment else AugConfig.off(),
              shuffle_buffer=config.data.shuffle_buffer, num_steps=num_steps)
    iterators = [pipeline.train_batches(split_dir(config, config.data.train_split), process_index=r, **kw)
                 for r in mine]
    for pieces in zip(*iterators):
        yield {k: np.concatenate([p[k] for p in pieces]) for k in ("image", "labels")}


class _StopFlag:
    """SIGTERM/SIGINT set a flag; the loop saves at the next step boundary and exits cleanly."""

    def __init__(self):
        self.signal = ""
        self._previous = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.signal and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: stop now
        log.warning("received %s: saving a checkpoint at the next step and stopping", signal.Signals(signum).name)
        self.signal = signal.Signals(signum).name

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _any_process(flag: bool) -> bool:
    if jax.process_count() == 1:
        return flag
    return bool(np.any(multihost_utils.process_allgather(np.array([flag]))))


def evaluate(run: Run, evaluator: Evaluator, name: str) -> dict:
    """Evaluate the run's current state; process 0 writes WORKDIR/eval/NAME.{json,md} and logs the mAPs."""
    results = evaluator.run(run.trainable, run.frozen)
    results["step"], results["epoch"] = run.step, run.step / run.steps_per_epoch
    if jax.process_index() == 0:
        paths = report.write(results, Workdir(run.workdir).eval_dir, name,
                             f"{run.config.name}: evaluation at step {run.step} (epoch {results['epoch']:g})")
        z, g = results.get("zsl", {}), results.get("gzsl", {})
        log.info("eval step %d: ZSL mAP %.2f, GZSL mAP %.2f (%d images, %.1fs) -> %s", run.step,
                 100 * z.get("mAP", float("nan")), 100 * g.get("mAP", float("nan")), results["num_images"],
                 results["seconds"], paths[1])
    return results


def _log_plan(run: Run) -> None:
    c = run.config
    log.info("training %s: %d steps (%d per epoch, global batch %d on %d devices / %d processes), from step %d",
             c.name, run.total_steps, run.steps_per_epoch, c.train.global_batch, jax.device_count(),
             jax.process_count(), run.step)
    by_epochs = c.train.epochs * run.steps_per_epoch
    if c.train.max_steps > by_epochs:
        log.warning("train.max_steps=%d is more than the %d steps of train.epochs=%d: the run ends after the "
                    "epochs (raise train.epochs to train longer)", c.train.max_steps, by_epochs, c.train.epochs)
    elif 0 < c.train.max_steps < by_epochs:
        log.info("train.max_steps=%d stops the run before the end of train.epochs=%d (%d steps)",
                 c.train.max_steps, c.train.epochs, by_epochs)
    log.info("trainable parameters: %d; frozen: %d", model_lib.count(run.trainable),
             model_lib.count(jax.tree.leaves(run.frozen)))


def _check_resumable(config, workdir: str) -> None:
    """A workdir's stored config against this run's: only keys that may change on resume may differ."""
    if Workdir(workdir).has_config():
        config_lib.check_resume(Workdir(workdir).read_config(), config, workdir)


def train(config, workdir: str, *, spe: int | None = None, batches=None) -> Result:
    """Train (or resume) in `workdir` until train.epochs / train.max_steps; see module docstring.

    `spe` and `batches(start_step) -> iterable of host batches` let tests feed in-memory data instead of
    the prepared split (then there is no evaluation).
    """
    workdir = os.path.abspath(workdir)
    logs.setup(None)
    _check_resumable(config, workdir)
    run = setup(config, workdir, restore=False, spe=spe)  # every input is checked before the workdir is made
    if not jax.tree.leaves(run.trainable):
        raise ConfigError("nothing to train: config values model.rs, model.use_local and model.use_gr are all "
                          "False (evaluate plain CLIP with `sfr-jax eval` instead)")
    m = run.configs.model
    train_step = steps.make_train_step(run.parts, run.tx, run.configs.loss, (m.mean, m.std), run.mesh, run.shardings)
    evaluator = Evaluator(run.parts, run.configs.eval, run.mesh, run.shardings) if batches is None else None
    os.makedirs(workdir, exist_ok=True)
    logs.setup(workdir)
    manager = checkpoints(run)
    try:
        if restore_into(run, manager=manager) is None and config.train.init_from:
            finetune.start_from(run, config.train.init_from)  # a fresh run that fine-tunes another's model
        if jax.process_index() == 0:
            write_text(Workdir(workdir).config_file, config_lib.to_json(config))
        _log_plan(run)
        source = (batches(run.step) if batches is not None else
                  train_input(config, run.step, run.total_steps - run.step))
        return _Loop(run, train_step, evaluator, manager).execute(source)
    finally:
        manager.close()


class _Loop:
    """The step loop of `train`: dispatch, read losses one step late, evaluate, checkpoint, stop."""

    def __init__(self, run: Run, train_step, evaluator, manager):
        self.run, self.train_step, self.evaluator, self.manager = run, train_step, evaluator, manager
        self.losses, self.last_eval = [], None
        self.progress = run_log.Progress(run.total_steps, run.step, run.config.train.global_batch, run.workdir)

    def check(self, entry):
        """(step, loss, metrics) of a finished step; a non-finite loss stops the run, keeping the checkpoints."""
        step, metrics = entry
        loss = float(metrics["loss"])
        if not np.isfinite(loss):
            self.manager.wait()
            raise NonFiniteLoss(f"loss is {loss} at step {step}; stopped. The last good checkpoint "
                                f"(step {self.manager.latest_step()}) in {self.manager.directory} is kept")
        self.losses.append(loss)
        return step, loss, metrics

    def report(self, step, loss, metrics, line):
        scalars = {"loss": loss}
        if line:
            scalars.update(grad_norm=float(metrics["grad_norm"]),
                           **optim.learning_rates(self.run.configs.optim, self.run.steps_per_epoch, step - 1))
        self.progress.update(step, scalars, line)

    def boundary(self, eval_now: bool) -> None:
        """Evaluate (when due) and save a checkpoint at the current step."""
        run, metrics = self.run, None
        if eval_now:
            self.last_eval = evaluate(run, self.evaluator, f"step_{run.step:08d}")
            metrics = flat_metrics(self.last_eval)
            self.progress.scalars(run.step, metrics, prefix="eval/")
        self.manager.save(run.step, checkpoint_tree(run), checkpoint_meta(run), metrics=metrics)

    def execute(self, source) -> Result:
        run, c = self.run, self.run.config.train
        status, stopped_by, pending = "done", "", None  # pending: the last dispatched step, read one step late
        try:
            with _StopFlag() as stop:
                for g in parallel.prefetch_to_device(source, run.mesh, run.config.data.device_prefetch):
                    if run.step >= run.total_steps:
                        break
                    run.trainable, run.opt_state, metrics = self.train_step(
                        run.trainable, run.opt_state, run.frozen, g, np.int32(run.step), run.key)
                    run.step += 1
                    if pending is not None:
                        self.report(*self.check(pending), line=pending[0] % c.log_every == 0)
                    pending = (run.step, metrics)
                    epoch, in_epoch = divmod(run.step, run.steps_per_epoch)
                    epoch_end, last = in_epoch == 0, run.step == run.total_steps
                    eval_now = self.evaluator is not None and (
                        last or epoch_end and epoch % c.eval_every_epochs == 0)
                    periodic = eval_now or (epoch_end and epoch % c.checkpoint_every_epochs == 0) or (
                        c.checkpoint_every_steps and run.step % c.checkpoint_every_steps == 0)
                    requested = run.step == c.stop_at_step or bool(stop.signal)
                    if jax.process_count() > 1:
                        # Processes agree on a stop with one collective, only at these points.
                        sync = last or periodic or run.step % c.log_every == 0
                        requested = _any_process(requested) if sync else False
                    if last or periodic or requested:
                        self.report(*self.check(pending), line=True)
                        pending = None
                        self.boundary(eval_now)
                        if requested and not last:
                            status, stopped_by = "preempted", stop.signal
                            log.warning("stopped at step %d (checkpoint saved); run the same command to resume",
                                        run.step)
                            break
                if pending is not None:
                    self.check(pending)
        finally:
            self.progress.close()
        return Result(status, run.step, self.losses, self.last_eval, run, stopped_by)
