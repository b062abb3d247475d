"""A workdir's layout: the one place that spells where a run keeps what.

    W/config.json                the run config (written by train and import)
    W/checkpoints/<step>/        Orbax steps (trainable state, optimiser state, adjacency, RNG; meta)
    W/checkpoints_damaged/       steps that could not be read, set aside (never deleted)
    W/eval/<name>.{json,md}      evaluation reports; <split>_sigmoid.csv (eval --write-scores)
    W/calibration/<step>.json    decisions of a step (sfr-jax calibrate)
    W/train.log, W/tensorboard/  logs
"""
from __future__ import annotations

import dataclasses
import os

from sfr_jax import config as config_lib
from sfr_jax.errors import MissingInput


@dataclasses.dataclass(frozen=True)
class Workdir:
    """A training (or imported) workdir, by its absolute path."""

    path: str

    def __post_init__(self):
        object.__setattr__(self, "path", os.path.abspath(self.path))

    def __str__(self) -> str:
        return self.path

    @property
    def config_file(self) -> str:
        return os.path.join(self.path, "config.json")

    @property
    def checkpoints(self) -> str:
        return os.path.join(self.path, "checkpoints")

    @property
    def damaged(self) -> str:
        return os.path.join(self.path, "checkpoints_damaged")

    @property
    def eval_dir(self) -> str:
        return os.path.join(self.path, "eval")

    @property
    def calibration_dir(self) -> str:
        return os.path.join(self.path, "calibration")

    @property
    def log_file(self) -> str:
        return os.path.join(self.path, "train.log")

    @property
    def tensorboard(self) -> str:
        return os.path.join(self.path, "tensorboard")

    def calibration_file(self, step: int) -> str:
        """The calibration record of a step."""
        return os.path.join(self.calibration_dir, f"{int(step)}.json")

    def has_config(self) -> bool:
        return os.path.isfile(self.config_file)

    def read_config(self):
        """The run config stored here; a clear error when the folder is not a workdir."""
        if not self.has_config():
            raise MissingInput(f"{self.config_file} not found: is {self.path} a training workdir "
                               "(sfr-jax train / import)?")
        with open(self.config_file, encoding="utf-8") as handle:
            return config_lib.from_json(handle.read(), source=self.config_file)
