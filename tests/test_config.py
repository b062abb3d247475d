"""Config files: reference defaults, overrides, variants, and typos as errors."""
import pytest

from sfr_jax import config as cfg
from sfr_jax.train.configs import typed


def test_sewerml_defaults_are_the_reference_recipe():
    c = cfg.parse(["--config", "configs/sewerml.py"])
    # SPEC §6 / reference configs/sewerml.yml + solver/
    assert (c.optim.clip_lr, c.optim.head_lr, c.optim.weight_decay) == (5e-6, 1e-3, 1e-4)
    assert (c.optim.b1, c.optim.b2, c.optim.eps, c.optim.grad_clip) == (0.9, 0.999, 1e-8, 1.0)
    assert (c.train.global_batch, c.train.epochs, c.seed) == (896, 10, 42)
    assert (c.schedule.kind, c.schedule.warmup_epochs, c.schedule.warmup_init) == ("epoch", 3, 5e-7)
    assert (c.schedule.period_epochs, c.schedule.min_lr) == (60, 1e-7)
    assert tuple(c.data.mean) == tuple(c.data.std) == (0.5, 0.5, 0.5) and c.data.image_size == 224
    assert tuple(c.eval.topk_zsl) == tuple(c.eval.topk_gzsl) == (1, 3) and c.train.eval_every_epochs == 1
    assert (c.loss.temperature, c.loss.margin, c.loss.gamma, c.loss.group_size) == (0.1, 0.2, 10.0, 224)
    assert c.model.use_local and c.model.use_gr and c.model.rs and c.model.adjacency_threshold == 0.85


def test_override_and_variant():
    c = cfg.parse(["--config", "configs/wzpipe.py:runlocal,bf16", "--config.optim.head_lr=2e-3",
                      "--config.model.use_gr=False"])
    assert c.optim.head_lr == 2e-3 and not c.model.use_gr and c.model.dtype == "bfloat16"
    assert c.train.global_batch == 8 and tuple(c.eval.topk_gzsl) == (3, 5)


@pytest.mark.parametrize("argv, needle", [
    (["--config", "configs/sewerml.py", "--config.optim.hed_lr=2e-3"], "head_lr"),
    (["--config", "configs/sewerml.py", "--config.optim.head_lr=fast"], "fast"),
    (["--config", "configs/sewerml.py", "--config.schedule.kind=linear"], "schedule.kind"),
    (["--config", "configs/sewerml.py:runlokal"], "runlokal"),
    (["--config", "configs/sewerml.py", "--config.model.attention_impl=flash"], "model.attention_impl"),
    (["--config", "configs/sewerml.py", "--config.model.remat=all"], "model.remat"),
    (["--config", "configs/nope.py"], "nope.py"),
    ([], "--config"),
])
def test_typos_and_bad_values_fail_clearly(argv, needle):
    """What the train entry point does: parse (keys, ranges), then the typed configs (choices by name)."""
    with pytest.raises(cfg.ConfigError, match=needle):
        typed(cfg.parse(argv))


def test_json_round_trip_keeps_every_value():
    c = cfg.parse(["--config", "configs/demo.py", "--config.train.epochs=7"])
    back = cfg.from_json(cfg.to_json(c))
    assert back.to_dict() == c.to_dict()
