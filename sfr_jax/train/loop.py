"""The training run: build, resume, step through epochs, evaluate, checkpoint, stop cleanly.

Data position: global step s (steps done) is batch s % steps_per_epoch of epoch s // steps_per_epoch; the
input pipeline is a pure function of (seed, epoch, batch index), and dropout keys of (seed, step), so a run
resumed from a checkpoint at step s continues bit-identically to one that never stopped.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import signal
import time

import jax
import numpy as np

from sfr_jax import parallel
from sfr_jax.train import checkpoint as ckpt_lib
from sfr_jax.train import config as config_lib
from sfr_jax.train.flops import function_flops
from sfr_jax.train import logging as run_log
from sfr_jax.train import optim, state as state_lib, steps

log = logging.getLogger("sfr_jax")


class NonFiniteLoss(FloatingPointError):
    """The loss became NaN or Inf; the last good checkpoint is kept."""


@dataclasses.dataclass
class Run:
    """Everything a training or evaluation run holds between steps."""

    config: object
    workdir: str
    mesh: object
    parts: state_lib.ModelParts
    tx: object
    shardings: dict
    trainable: object
    opt_state: object
    frozen: object
    key: object
    steps_per_epoch: int
    total_steps: int
    step: int = 0


@dataclasses.dataclass
class Result:
    status: str  # 'done', 'preempted' or 'dry-run'
    step: int
    losses: list
    eval: dict | None = None
    run: Run | None = None


def _split_dir(config, split):
    return os.path.join(config.data.dir, split)


def input_readers(config) -> tuple[int, range]:
    """(number of virtual input readers, the ones this process runs): see config.data.input_processes."""
    readers = config.data.input_processes or jax.process_count()
    if readers % jax.process_count():
        raise ValueError(f"config value data.input_processes={readers} must be a multiple of the "
                         f"{jax.process_count()} processes")
    per = readers // jax.process_count()
    return readers, range(jax.process_index() * per, (jax.process_index() + 1) * per)


def train_input(config, start_step: int, num_steps: int):
    """Host-local batches for global steps start_step, ...; each of this process's readers contributes its
    slice of every global batch, in reader order."""
    from sfr_jax.data import pipeline
    from sfr_jax.data.augment import AugConfig

    readers, mine = input_readers(config)
    kw = dict(global_batch=config.train.global_batch, seed=config.seed, start_step=start_step,
              image_size=config.data.image_size, process_count=readers,
              aug_config=AugConfig() if config.data.augment else AugConfig.off(),
              shuffle_buffer=config.data.shuffle_buffer, num_steps=num_steps)
    iterators = [pipeline.train_batches(_split_dir(config, config.data.train_split), process_index=r, **kw)
                 for r in mine]
    for pieces in zip(*iterators):
        yield {k: np.concatenate([p[k] for p in pieces]) for k in ("image", "labels")}


def steps_per_epoch(config) -> int:
    from sfr_jax.data import pipeline

    readers, _ = input_readers(config)
    return pipeline.steps_per_epoch(_split_dir(config, config.data.train_split), config.train.global_batch, readers)


def setup(config, workdir: str, *, restore: bool = True, step: int | None = None, spe: int | None = None) -> Run:
    """Mesh, model, optimiser, shardings; the state from the workdir's newest readable checkpoint if any."""
    mesh = parallel.make_mesh(config.mesh.data, config.mesh.model)
    parallel.check_batch(config.train.global_batch, mesh)
    parts = state_lib.build(config)
    spe = spe or steps_per_epoch(config)
    total = config.train.epochs * spe
    if config.train.max_steps > 0:
        total = min(total, config.train.max_steps)
    tx = optim.make_optimizer(config, spe)
    opt_shapes = jax.eval_shape(tx.init, parts.trainable)
    shardings = steps.state_shardings(mesh, parts.trainable, opt_shapes, parts.frozen)
    trainable = steps.place(parts.trainable, shardings["trainable"])
    opt_state = jax.jit(tx.init, out_shardings=shardings["opt_state"])(trainable)
    frozen = steps.place(parts.frozen, shardings["frozen"])
    run = Run(config, workdir, mesh, parts, tx, shardings, trainable, opt_state, frozen,
              jax.random.key(config.seed), spe, total)
    if restore:
        restore_into(run, step)
    return run


def _ckpt_tree(run: Run) -> dict:
    tree = {"trainable": run.trainable, "opt_state": run.opt_state,
            "rng": np.asarray(jax.random.key_data(run.key))}  # host numpy: saved once, by process 0
    adjacency = state_lib.get_adjacency(run.frozen)
    if adjacency is not None:
        tree["adjacency"] = adjacency
    return tree


def _checkpoints(run: Run, read_only=False) -> ckpt_lib.Checkpoints:
    c = run.config.train
    return ckpt_lib.Checkpoints(run.workdir, c.keep_checkpoints, c.best_metric, read_only=read_only)


def restore_into(run: Run, step: int | None = None, manager: ckpt_lib.Checkpoints | None = None) -> dict | None:
    """Load the newest readable (or the given) checkpoint of the workdir into `run`; None when there is none."""
    own = manager is None
    manager = manager or _checkpoints(run, read_only=True)
    try:
        if step is None and manager.latest_step() is None:
            return None
        target = _ckpt_tree(run)
        rep = parallel.replicated(run.mesh)
        shardings = {"trainable": run.shardings["trainable"], "opt_state": run.shardings["opt_state"], "rng": rep}
        if "adjacency" in target:
            shardings["adjacency"] = rep
        tree, meta, got = manager.restore(ckpt_lib.abstract(target, shardings), step)
    finally:
        if own:
            manager.close()
    if meta.get("steps_per_epoch") not in (None, run.steps_per_epoch):
        raise ckpt_lib.CheckpointError(
            f"checkpoint step {got} in {run.workdir} was made with {meta['steps_per_epoch']} steps per epoch, "
            f"this run has {run.steps_per_epoch}: the global batch or the data changed; use a new --workdir")
    run.trainable, run.opt_state = tree["trainable"], tree["opt_state"]
    run.key = jax.random.wrap_key_data(np.asarray(tree["rng"]))
    if "adjacency" in tree:
        state_lib.set_adjacency(run.frozen, tree["adjacency"])  # the adjacency of training, not recomputed
    run.step = int(meta["step"])
    log.info("resumed from %s step %d (epoch %d, step %d in epoch)", manager.directory, run.step,
             run.step // run.steps_per_epoch, run.step % run.steps_per_epoch)
    return meta


def recompute_adjacency(run: Run) -> None:
    """GR's adjacency from the CURRENT (trained) text encoder, as the reference does when it evaluates a
    saved model (SPEC §4); training keeps the start-up adjacency."""
    model = run.parts.merge(run.trainable, run.frozen)
    value = steps.place(np.asarray(model.compute_adjacency(run.parts.phrase_tokens)), parallel.replicated(run.mesh))
    state_lib.set_adjacency(run.frozen, value)


def _meta(run: Run) -> dict:
    return {"step": run.step, "epoch": run.step // run.steps_per_epoch,
            "step_in_epoch": run.step % run.steps_per_epoch, "steps_per_epoch": run.steps_per_epoch,
            "total_steps": run.total_steps, "seed": run.config.seed, "clip_dir": run.config.clip_dir,
            "config": config_lib.to_json(run.config), "time": time.time(),
            "process_count": jax.process_count(), "device_count": jax.device_count()}


class _StopFlag:
    """SIGTERM/SIGINT set a flag; the loop saves at the next step boundary and exits cleanly."""

    def __init__(self):
        self.requested = False
        self._previous = {}

    def __enter__(self):
        import threading
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: stop now
        log.warning("received %s: saving a checkpoint at the next step and stopping", signal.Signals(signum).name)
        self.requested = True

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _any_process(flag: bool) -> bool:
    if jax.process_count() == 1:
        return flag
    from jax.experimental import multihost_utils
    return bool(np.any(multihost_utils.process_allgather(np.array([flag]))))


def evaluate(run: Run, evaluator, name: str) -> dict:
    from sfr_jax.eval import report

    results = evaluator.run(run.trainable, run.frozen)
    results["step"], results["epoch"] = run.step, run.step / run.steps_per_epoch
    if jax.process_index() == 0:
        paths = report.write(results, os.path.join(run.workdir, "eval"), name,
                             f"{run.config.name}: evaluation at step {run.step} (epoch {results['epoch']:g})")
        z, g = results.get("zsl", {}), results.get("gzsl", {})
        log.info("eval step %d: ZSL mAP %.2f, GZSL mAP %.2f (%d images, %.1fs) -> %s", run.step,
                 100 * z.get("mAP", float("nan")), 100 * g.get("mAP", float("nan")), results["num_images"],
                 results["seconds"], paths[1])
    return results


def train(config, workdir: str | None, *, dry_run: bool = False, spe: int | None = None, batches=None) -> Result:
    """Train (or resume) in `workdir` until train.epochs / train.max_steps; see module docstring.

    `spe` and `batches(start_step) -> iterable of host batches` let tests feed in-memory data instead of
    the prepared split (then there is no evaluation).
    """
    from sfr_jax.eval.evaluator import Evaluator, flat_metrics

    workdir = os.path.abspath(workdir) if workdir else ""
    if not dry_run:
        os.makedirs(workdir, exist_ok=True)
    run_log.setup(None if dry_run else workdir)
    if dry_run and spe is None:
        try:
            spe = steps_per_epoch(config)
        except (OSError, ValueError) as error:  # compiling a step needs no data
            log.warning("no steps per epoch from the data (%s); the dry run assumes 1", error)
            spe = 1
    run = setup(config, workdir, restore=False, spe=spe)
    if not jax.tree.leaves(run.trainable):
        raise ValueError("nothing to train: config values model.rs, model.use_local and model.use_gr are all "
                         "False (evaluate plain CLIP with `sfr-jax eval` instead)")
    train_step = steps.make_train_step(run.parts, run.tx, config, run.mesh, run.shardings)
    if dry_run:
        return _dry_run(run, train_step)

    manager = _checkpoints(run)
    restore_into(run, manager=manager)
    if jax.process_index() == 0:
        with open(os.path.join(workdir, "config.json.tmp"), "w") as f:
            f.write(config_lib.to_json(config))
        os.replace(os.path.join(workdir, "config.json.tmp"), os.path.join(workdir, "config.json"))
    log.info("training %s: %d steps (%d per epoch, global batch %d on %d devices / %d processes), from step %d",
             config.name, run.total_steps, run.steps_per_epoch, config.train.global_batch, jax.device_count(),
             jax.process_count(), run.step)
    log.info("trainable parameters: %d; frozen: %d", state_lib.count(run.trainable),
             state_lib.count(jax.tree.leaves(run.frozen)))

    evaluator = Evaluator(run.parts, config, run.mesh, run.shardings) if batches is None else None
    progress = run_log.Progress(run.total_steps, run.step, config.train.global_batch, workdir)
    losses, last_eval = [], None
    status = "done"
    source = (batches(run.step) if batches is not None else
              train_input(config, run.step, run.total_steps - run.step))
    pending = None  # (step, metrics) of the last dispatched step: read one step late to keep the device busy

    def check(entry):
        step, metrics = entry
        loss = float(metrics["loss"])
        if not np.isfinite(loss):
            manager.wait()
            raise NonFiniteLoss(f"loss is {loss} at step {step}; stopped. The last good checkpoint "
                                f"(step {manager.latest_step()}) in {manager.directory} is kept")
        losses.append(loss)
        return step, loss, metrics

    def report(step, loss, metrics, line):
        scalars = {"loss": loss}
        if line:
            scalars.update(grad_norm=float(metrics["grad_norm"]),
                           **optim.learning_rates(config, run.steps_per_epoch, step - 1))
        progress.update(step, scalars, line)

    def save(metrics=None):
        manager.save(run.step, _ckpt_tree(run), _meta(run), metrics=metrics)

    try:
        with _StopFlag() as stop:
            for g in parallel.prefetch_to_device(source, run.mesh, config.data.device_prefetch):
                if run.step >= run.total_steps:
                    break
                run.trainable, run.opt_state, metrics = train_step(
                    run.trainable, run.opt_state, run.frozen, g, np.int32(run.step), run.key)
                run.step += 1
                if pending is not None:
                    report(*check(pending), line=pending[0] % config.train.log_every == 0)
                pending = (run.step, metrics)
                epoch, in_epoch = divmod(run.step, run.steps_per_epoch)
                epoch_end = in_epoch == 0
                last = run.step == run.total_steps
                eval_now = evaluator is not None and (last or epoch_end and epoch % config.train.eval_every_epochs == 0)
                periodic = eval_now or (epoch_end and epoch % config.train.checkpoint_every_epochs == 0) or (
                    config.train.checkpoint_every_steps and run.step % config.train.checkpoint_every_steps == 0)
                requested = run.step == config.train.stop_at_step or stop.requested
                if jax.process_count() > 1:
                    # Processes agree on a stop with one collective, only at these points.
                    sync = last or periodic or run.step % config.train.log_every == 0
                    requested = _any_process(requested) if sync else False
                if last or periodic or requested:
                    report(*check(pending), line=True)
                    pending = None
                    metrics_out = None
                    if eval_now:
                        last_eval = evaluate(run, evaluator, f"step_{run.step:08d}")
                        metrics_out = flat_metrics(last_eval)
                        progress.scalars(run.step, metrics_out, prefix="eval/")
                    save(metrics_out)
                    if requested and not last:
                        status = "preempted"
                        log.warning("stopped at step %d (checkpoint saved); run the same command to resume",
                                    run.step)
                        break
            if pending is not None:
                check(pending)
    finally:
        progress.close()
        manager.close()
    return Result(status, run.step, losses, last_eval, run)


def _dry_run(run: Run, train_step) -> Result:
    """Compile one train step for the mesh and print per-device batch, memory and FLOPs."""
    c = run.config
    per_device = parallel.check_batch(c.train.global_batch, run.mesh)
    local = c.train.global_batch // jax.process_count()
    size = c.data.image_size
    batch = {"image": np.zeros((local, size, size, 3), np.uint8),
             "labels": np.zeros((local, run.parts.class_set.num_classes), np.float32)}
    g = parallel.host_to_global(batch, run.mesh)
    args = (run.trainable, run.opt_state, run.frozen, g, np.int32(0), run.key)
    start = time.time()
    compiled = train_step.lower(*args).compile()
    text = (f"dry run of {c.name}: mesh {dict(run.mesh.shape)}, {jax.process_count()} process(es)\n"
            f"compile time: {time.time() - start:.1f}s\n"
            f"trainable parameters: {state_lib.count(run.trainable)}\n"
            + steps.dry_run_report(compiled, per_device, c.train.global_batch, function_flops(train_step, *args)))
    if jax.process_index() == 0:
        print(text, flush=True)
    return Result("dry-run", 0, [], {"report": text})
