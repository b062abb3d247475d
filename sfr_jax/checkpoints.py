"""Orbax checkpoints of a run: trainable + optimiser state, adjacency, RNG, config and data position.

Frozen CLIP weights are not copied: the saved config names the converted CLIP folder. A reader may restore
part of a step (`partial=True`: e.g. inference reads the trainable state and the adjacency, never the
optimiser state). Orbax writes each
step into a temporary folder and renames it when complete, so an interrupted write is never listed as a
step; a step that fails to restore (corrupted files) is skipped with a warning in favour of the one before.
"""
from __future__ import annotations

import contextlib
import datetime
import gc
import io
import logging
import os
import shutil
import sys
import time
from typing import Any

import jax
import orbax.checkpoint as ocp
from jax.experimental import multihost_utils
from orbax.checkpoint import checkpoint_managers as policies

from sfr_jax.cli import one_line
from sfr_jax.errors import CheckpointError
from sfr_jax.workdir import Workdir

__all__ = ["CheckpointError", "Checkpoints", "abstract"]
log = logging.getLogger(__name__)
class _OrbaxNotes(logging.Filter):
    """Orbax reports its routine (a read-only manager, restoring only the meta item) and the retries of a
    damaged step as absl warnings; we say what matters ourselves, so below ERROR they are dropped."""

    def filter(self, record):
        return record.levelno >= logging.ERROR or "orbax" not in record.pathname


logging.getLogger("absl").addFilter(_OrbaxNotes())
_DRAIN_S = 1.0  # how long reader threads may go on failing after a restore gave up
_default_unraisablehook = sys.unraisablehook


def _drop_failed_reads(unraisable):
    """A failed restore's leftover read coroutines are collected late and would each print a traceback:
    only those of Orbax's array reads are dropped; anything else reaches the default hook."""
    code = getattr(unraisable.object, "cr_code", None)
    if code is not None and "orbax" in code.co_filename:
        return
    _default_unraisablehook(unraisable)


sys.unraisablehook = _drop_failed_reads


@contextlib.contextmanager
def _quiet_reader_threads():
    """When a damaged step fails to restore, TensorStore's reader threads keep calling back into Orbax's
    closed event loop and print hundreds of tracebacks ("Event loop is closed"); we report the damage in one
    warning, so within the block (and shortly after a failure) what they print to stderr is dropped."""
    hook, sink = sys.unraisablehook, io.StringIO()
    sys.unraisablehook = lambda unraisable: None
    try:
        with contextlib.redirect_stderr(sink):
            try:
                yield
            except Exception:
                time.sleep(_DRAIN_S)
                gc.collect()  # the failed reads' coroutines, reported as unraisable when collected
                raise
    finally:
        sys.unraisablehook = hook

class Checkpoints:
    """The workdir's `checkpoints/` folder: keep the last `keep` steps and the best by `best_metric`."""

    def __init__(self, workdir: str | Workdir, keep: int = 3, best_metric: str = "", *, async_save: bool = True,
                 read_only: bool = False):
        self.workdir = workdir if isinstance(workdir, Workdir) else Workdir(workdir)
        self.directory = self.workdir.checkpoints
        self.best_metric = best_metric
        self.read_only = read_only
        keep_policies = [policies.LatestN(n=keep)]
        if best_metric:
            keep_policies.append(policies.BestN(get_metric_fn=lambda m: float(m[best_metric]), n=1,
                                                keep_checkpoints_without_metrics=False))
        options = ocp.CheckpointManagerOptions(
            preservation_policy=policies.AnyPreservationPolicy(keep_policies),
            enable_async_checkpointing=async_save,
            create=not read_only,
            read_only=read_only,
            cleanup_tmp_directories=not read_only,  # leftovers of writes that never finished
        )
        # the PyTree handler (what StandardSave wraps, same files) is the one that can restore part of a tree
        handlers = {"state": ocp.PyTreeCheckpointHandler(), "meta": ocp.JsonCheckpointHandler()}
        self.manager = ocp.CheckpointManager(self.directory, options=options, item_handlers=handlers)

    def steps(self) -> list[int]:
        return sorted(self.manager.all_steps())

    def latest_step(self) -> int | None:
        steps = self.steps()
        return steps[-1] if steps else None

    def best_step(self) -> int | None:
        """The kept step with the highest `best_metric` (metrics are stored in each step's meta)."""
        if not self.best_metric:
            return None
        scored = []
        for step in self.steps():
            try:
                value = (self.read_meta(step).get("metrics") or {}).get(self.best_metric)
            except Exception:  # unreadable step: not a candidate
                continue
            if value is not None:
                scored.append((float(value), step))
        return max(scored)[1] if scored else None

    def resolve_step(self, step: int | None = None, best: bool = False) -> int:
        """The step to load: `step` when given, the best by `best_metric` with `best`, else the newest;
        a CheckpointError naming the folder when there is none."""
        if best:
            found = self.best_step()
            if found is None:
                raise CheckpointError(f"no checkpoint in {self.directory} has the metric {self.best_metric!r}")
            return found
        if step is not None:
            if step not in self.steps():
                raise CheckpointError(f"no checkpoint of step {step} in {self.directory} "
                                      f"(saved steps: {self.steps() or 'none'})")
            return step
        latest = self.latest_step()
        if latest is None:
            raise CheckpointError(f"no checkpoint in {self.directory}")
        return latest

    def save(self, step: int, state: Any, meta: dict, metrics: dict | None = None) -> None:
        """Start an (asynchronous) save of `state` (a pytree of arrays) and `meta` (JSON) at `step`."""
        if metrics is not None and self.best_metric and self.best_metric not in metrics:
            raise KeyError(f"train.best_metric={self.best_metric!r} is not among the evaluation metrics "
                           f"({', '.join(sorted(metrics)[:12])}...)")
        meta = dict(meta, step=step, metrics=metrics)
        self.manager.save(step, args=ocp.args.Composite(state=ocp.args.PyTreeSave(state),
                                                        meta=ocp.args.JsonSave(meta)),
                          metrics=metrics, force=True)

    def restore(self, abstract_state: Any, step: int | None = None, partial: bool = False) -> tuple[Any, dict, int]:
        """Restore `step`, or the newest readable step. A step that cannot be read is skipped with a warning
        (and, when writable, set aside under checkpoints_damaged/ so the run can save that step again); a step
        whose shapes do not fit `abstract_state` (ShapeDtypeStruct leaves with shardings) is a changed model
        config, reported as such. `partial`: `abstract_state` names a part of the stored tree (top-level
        entries may be left out), and only that part is read."""
        if step is not None:
            if step not in self.steps():
                raise CheckpointError(f"no checkpoint of step {step} in {self.directory} "
                                      f"(saved steps: {self.steps() or 'none'})")
            self._check_shapes(abstract_state, step, partial)
            return (*self._restore(abstract_state, step, partial), step)
        steps = self.steps()
        if not steps:
            raise CheckpointError(f"no checkpoint in {self.directory}")
        errors = []
        for candidate in reversed(steps):
            self._check_shapes(abstract_state, candidate, partial)
            try:
                with _quiet_reader_threads():
                    state, meta = self._restore(abstract_state, candidate, partial)
            except Exception as error:  # any unreadable file: try the step before
                reason = f"{type(error).__name__}: {one_line(str(error)).split(' See full TensorStore')[0][:300]}"
                errors.append(f"step {candidate}: {reason}")
                moved = self._set_aside(candidate)
                log.warning("checkpoint step %d in %s is unreadable (%s)%s; falling back to the previous one",
                            candidate, self.directory, reason, f"; moved it to {moved}" if moved else "")
                continue
            if errors:
                log.warning("using checkpoint step %d instead", candidate)
            return state, meta, candidate
        raise CheckpointError(f"no readable checkpoint in {self.directory}: " + "; ".join(errors))

    def _stored_shapes(self, step: int):
        """{path: shape} of a step's stored state, or None when its metadata cannot be read (damaged)."""
        try:
            return _shapes(self.manager.item_metadata(step)["state"].tree)
        except Exception:  # unreadable metadata: the restore reports it as damage
            return None

    def _check_shapes(self, abstract_state, step: int, partial: bool) -> None:
        stored = self._stored_shapes(step)
        if stored is None:
            return
        want = _shapes(abstract_state)
        if partial:  # entries the reader left out are not compared
            tops = {path.split("/")[0] for path in want}
            stored = {path: shape for path, shape in stored.items() if path.split("/")[0] in tops}
        if stored == want:
            return
        missing = sorted(set(want) - set(stored))
        extra = sorted(set(stored) - set(want))
        wrong = [f"{k} {stored[k]} vs {want[k]}" for k in sorted(set(want) & set(stored)) if stored[k] != want[k]]
        parts = [f"{name}: {', '.join(items[:6])}{' ...' if len(items) > 6 else ''}" for name, items in
                 (("stored with other shapes (stored vs this model)", wrong), ("not in the checkpoint", missing),
                  ("only in the checkpoint", extra)) if items]
        raise CheckpointError(f"checkpoint step {step} in {self.directory} does not fit this model ({'; '.join(parts)}):"
                              " the model config changed since it was saved; use the run's config or a new --workdir")

    def _set_aside(self, step: int) -> str | None:
        """Move a damaged step out of the managed folder (never deleted); the path it went to, or None when
        read-only or not process 0."""
        if self.read_only:
            return None
        target = None
        if jax.process_index() == 0:
            stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
            target = os.path.join(self.workdir.damaged, f"{step}-{stamp}")
            os.makedirs(os.path.dirname(target), exist_ok=True)
            shutil.move(os.path.join(self.directory, str(step)), target)
        if jax.process_count() > 1:
            multihost_utils.sync_global_devices(f"sfr_jax checkpoint {step} set aside")
        self.manager.reload()
        return target

    def _restore(self, abstract_state, step, partial):
        state = ocp.args.PyTreeRestore(abstract_state, ocp.checkpoint_utils.construct_restore_args(abstract_state),
                                       partial_restore=partial)
        restored = self.manager.restore(step, args=ocp.args.Composite(state=state, meta=ocp.args.JsonRestore()))
        meta = restored["meta"]
        if not isinstance(meta, dict) or meta.get("step") != step:
            raise CheckpointError(f"checkpoint step {step}: metadata missing or for another step ({meta!r:.200})")
        return restored["state"], meta

    def steps_per_epoch(self) -> int | None:
        """The run's steps per epoch from the newest step whose meta is readable (None: open or unknown)."""
        for step in reversed(self.steps()):
            try:
                return self.read_meta(step).get("steps_per_epoch")
            except Exception:  # an unreadable step: ask the one before
                continue
        return None

    def read_meta(self, step: int) -> dict:
        """Only the JSON metadata of a step (config, data position, metrics)."""
        return self.manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]

    def wait(self) -> None:
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()


def _shapes(tree) -> dict:
    """{'a/b/0': shape} of a tree's leaves; path parts as plain strings, since Orbax stores a tuple's items
    under string keys."""
    def name(part):
        for attr in ("key", "idx", "name"):
            if hasattr(part, attr):
                return str(getattr(part, attr))
        return str(part)

    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {"/".join(name(p) for p in path): tuple(getattr(x, "shape", ())) for path, x in leaves}


def abstract(tree, shardings):
    """ShapeDtypeStructs with shardings, the restore target for a tree laid out like `tree`."""
    return jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), tree, shardings)
