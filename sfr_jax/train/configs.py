"""The run config (an ml_collections ConfigDict: files, variants, overrides, config.json) turned once, at the
entry point, into the frozen typed configs the library takes; flax's gemma example hands one typed config
down the same way. Each typed config checks its own choices against the names its user defines
(model.dtype against infer.model.DTYPES, schedule.kind against train.optim.SCHEDULE_KINDS, ...)."""
from __future__ import annotations

import dataclasses

from sfr_jax.eval.evaluator import EvalConfig
from sfr_jax.infer.model import ModelSpec
from sfr_jax.train.optim import OptimConfig
from sfr_jax.train.steps import LossConfig


@dataclasses.dataclass(frozen=True)
class RunConfigs:
    """A training run's typed configs: the model, the optimiser and schedule, the loss, the evaluation."""

    model: ModelSpec
    optim: OptimConfig
    loss: LossConfig
    eval: EvalConfig


def typed(config) -> RunConfigs:
    """The typed configs of a (validated) run config; a choice that is not allowed is a ConfigError naming
    its key."""
    return RunConfigs(ModelSpec.from_config(config), OptimConfig.from_config(config), LossConfig.from_config(config),
                      EvalConfig.from_config(config))
