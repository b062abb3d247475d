"""Orbax checkpoints of a run: trainable + optimiser state, adjacency, RNG, config and data position.

Frozen CLIP weights are not copied: the saved config names the converted CLIP folder. Orbax writes each
step into a temporary folder and renames it when complete, so an interrupted write is never listed as a
step; a step that fails to restore (corrupted files) is skipped with a warning in favour of the one before.
"""
from __future__ import annotations

import logging
import os
from typing import Any

import jax
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers as policies

log = logging.getLogger(__name__)


class CheckpointError(RuntimeError):
    """No usable checkpoint where one was required."""


class Checkpoints:
    """The workdir's `checkpoints/` folder: keep the last `keep` steps and the best by `best_metric`."""

    def __init__(self, workdir: str, keep: int = 3, best_metric: str = "", *, async_save: bool = True,
                 read_only: bool = False):
        self.directory = os.path.join(os.path.abspath(workdir), "checkpoints")
        self.best_metric = best_metric
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
        self.manager = ocp.CheckpointManager(self.directory, options=options, item_names=("state", "meta"))

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

    def save(self, step: int, state: Any, meta: dict, metrics: dict | None = None) -> None:
        """Start an (asynchronous) save of `state` (a pytree of arrays) and `meta` (JSON) at `step`."""
        if metrics is not None and self.best_metric and self.best_metric not in metrics:
            raise KeyError(f"train.best_metric={self.best_metric!r} is not among the evaluation metrics "
                           f"({', '.join(sorted(metrics)[:12])}...)")
        meta = dict(meta, step=step, metrics=metrics)
        self.manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                                        meta=ocp.args.JsonSave(meta)),
                          metrics=metrics, force=True)

    def restore(self, abstract_state: Any, step: int | None = None) -> tuple[Any, dict, int]:
        """Restore `step`, or the newest readable step (falling back over corrupted ones with a warning).

        `abstract_state` gives structure, dtypes and shardings (jax.ShapeDtypeStruct leaves).
        """
        if step is not None:
            if step not in self.steps():
                raise CheckpointError(f"no checkpoint of step {step} in {self.directory} "
                                      f"(saved steps: {self.steps() or 'none'})")
            return (*self._restore(abstract_state, step), step)
        steps = self.steps()
        if not steps:
            raise CheckpointError(f"no checkpoint in {self.directory}")
        errors = []
        for candidate in reversed(steps):
            try:
                state, meta = self._restore(abstract_state, candidate)
            except Exception as error:  # any unreadable file: try the step before
                errors.append(f"step {candidate}: {type(error).__name__}: {str(error)[:300]}")
                log.warning("checkpoint step %d in %s is unreadable (%s: %s); falling back to the previous one",
                            candidate, self.directory, type(error).__name__, str(error)[:300])
                continue
            return state, meta, candidate
        raise CheckpointError(f"no readable checkpoint in {self.directory}:\n  " + "\n  ".join(errors))

    def _restore(self, abstract_state, step):
        restored = self.manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract_state), meta=ocp.args.JsonRestore()))
        meta = restored["meta"]
        if not isinstance(meta, dict) or meta.get("step") != step:
            raise CheckpointError(f"checkpoint step {step}: metadata missing or for another step ({meta!r:.200})")
        return restored["state"], meta

    def read_meta(self, step: int) -> dict:
        """Only the JSON metadata of a step (config, data position, metrics)."""
        return self.manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]

    def wait(self) -> None:
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()


def abstract(tree, shardings):
    """ShapeDtypeStructs with shardings, the restore target for a tree laid out like `tree`."""
    return jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), tree, shardings)
