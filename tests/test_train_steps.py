"""The jitted steps: 1 device == 8 devices, only trainable leaves change, frozen weights get no gradient."""
import jax
import numpy as np
import pytest

from sfr_jax import parallel
from sfr_jax.infer import model as model_lib
from sfr_jax.infer import steps as infer_steps
from sfr_jax.train import optim, steps
from sfr_jax.train.run import state_shardings
from train_fixtures import TINY_L14, make_tiny_clip_dir, random_batch, tiny_config


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    return make_tiny_clip_dir(tmp_path_factory.mktemp("clip") / "tiny")


def _np(tree):
    return jax.tree.map(lambda x: np.asarray(jax.random.key_data(x) if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)
                                             else x), tree)


def _run(config, mesh, batches, min_size=parallel.MIN_SHARDED_SIZE):
    parts = model_lib.build_parts(model_lib.ModelSpec.from_config(config))
    tx = optim.make_optimizer(optim.OptimConfig.from_config(config), steps_per_epoch=2)
    opt_state = tx.init(parts.trainable)
    sh = state_shardings(mesh, parts.trainable, opt_state, parts.frozen, min_size)
    trainable = parallel.place(parts.trainable, sh["trainable"])
    opt_state = parallel.place(opt_state, sh["opt_state"])
    frozen = parallel.place(parts.frozen, sh["frozen"])
    frozen_before = _np(frozen)
    initial = _np(parts.trainable)  # (the placed copy is donated to the step)
    train_step = steps.make_train_step(parts, tx, steps.LossConfig.from_config(config), (config.data.mean, config.data.std), mesh, sh)
    key = jax.random.key(config.seed)
    losses = []
    for i, b in enumerate(batches):
        trainable, opt_state, metrics = train_step(trainable, opt_state, frozen, parallel.host_to_global(b, mesh),
                                                   np.int32(i), key)
        losses.append(float(metrics["loss"]))
    return initial, losses, _np(trainable), frozen_before, _np(frozen)


@pytest.fixture(scope="module")
def runs(clip_dir):
    """The same 4 steps on 1 device, on 8 devices ('data'), and on a 4 x 2 ('data', 'model') mesh."""
    config = tiny_config(clip_dir)
    batches = [random_batch(16, seed=i) for i in range(4)]
    return (_run(config, parallel.make_mesh(devices=jax.devices()[:1]), batches),
            _run(config, parallel.make_mesh(), batches),
            _run(config, parallel.make_mesh(data=4, model=2), batches))  # token embedding split over 'model'


def test_model_axis_equals_one_device(runs):
    (_, losses1, params1, _, _), _, (_, losses42, params42, _, _) = runs
    np.testing.assert_allclose(losses42, losses1, rtol=1e-5, atol=1e-5)
    for a, b in zip(jax.tree.leaves(params1), jax.tree.leaves(params42)):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5)


def test_l14_shaped_towers_sharded_over_model_axis_equal_one_device(tmp_path_factory):
    """FSDP over 'model' (every tower weight of 64+ scalars split, the batch over all 8 devices) on a
    miniature ViT-L/14 (patch 14, 5 tokens, text wider than vision) trains as on 1 device."""
    clip = make_tiny_clip_dir(tmp_path_factory.mktemp("clip") / "l14", cfg=TINY_L14)
    config = tiny_config(clip, **{"data.image_size": 28})
    batches = [random_batch(16, size=28, seed=i) for i in range(2)]
    mesh = parallel.make_mesh(data=4, model=2)
    parts = model_lib.abstract_parts(model_lib.ModelSpec.from_config(config))
    sharded = [k for k, s in jax.tree_util.tree_leaves_with_path(
        parallel.param_sharding(mesh, parts.frozen, 64)) if "model" in str(s.spec)]
    assert any("vision_model" in jax.tree_util.keystr(k) for k in sharded)
    assert any("text_model" in jax.tree_util.keystr(k) for k in sharded)
    _, losses1, params1, _, _ = _run(config, parallel.make_mesh(devices=jax.devices()[:1]), batches)
    _, losses42, params42, _, _ = _run(config, mesh, batches, min_size=64)
    np.testing.assert_allclose(losses42, losses1, rtol=1e-5, atol=1e-5)
    for a, b in zip(jax.tree.leaves(params1), jax.tree.leaves(params42)):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5)


def test_one_device_equals_eight_devices(runs):
    (_, losses1, params1, _, _), (_, losses8, params8, _, _), _ = runs
    assert losses1[-1] < losses1[0]
    np.testing.assert_allclose(losses8, losses1, rtol=1e-5, atol=1e-5)
    for a, b in zip(jax.tree.leaves(params1), jax.tree.leaves(params8)):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5)


def test_only_trainable_leaves_change(runs):
    initial, _, params, frozen_before, frozen_after = runs[1]
    # frozen CLIP weights, class tokens, adjacency, RNG streams: bitwise unchanged
    for a, b in zip(jax.tree.leaves(frozen_before), jax.tree.leaves(frozen_after)):
        np.testing.assert_array_equal(a, b)
    # every trainable leaf moved (adapters' `up` starts at zero and must leave it)
    flat0 = dict(jax.tree_util.tree_leaves_with_path(initial))
    for path, after in jax.tree_util.tree_leaves_with_path(params):
        assert not np.array_equal(np.asarray(flat0[path]), after), jax.tree_util.keystr(path)
    names = {jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(params)}
    assert all(("adapter" in n) or n.startswith("['head']") or n.startswith("['gcn']") for n in names)
    assert any("adapter" in n for n in names)


def test_frozen_weights_get_no_gradient_work(clip_dir):
    """Cost analysis: the train step costs under 2.3x a forward (activation gradients through CLIP, weight
    gradients of the small trainable parts only), not the 3x that frozen-weight gradients would cost."""
    config = tiny_config(clip_dir)
    parts = model_lib.build_parts(model_lib.ModelSpec.from_config(config))
    mesh = parallel.make_mesh(devices=jax.devices()[:1])
    tx = optim.make_optimizer(optim.OptimConfig.from_config(config), 2)
    opt_state = tx.init(parts.trainable)
    sh = state_shardings(mesh, parts.trainable, opt_state, parts.frozen)
    batch = parallel.host_to_global(random_batch(16), mesh)
    key = jax.random.key(0)
    train = steps.make_train_step(parts, tx, steps.LossConfig.from_config(config), (config.data.mean, config.data.std), mesh, sh).lower(
        parts.trainable, opt_state, parts.frozen, batch, np.int32(0), key).compile()

    def forward(trainable, frozen, images):
        images = infer_steps.normalise(images, config.data.mean, config.data.std)
        return parts.merge(trainable, frozen)(images, tuple(parts.class_set.seen_ids))

    fwd = jax.jit(forward).lower(parts.trainable, parts.frozen, batch["image"]).compile()
    flops = lambda c: (c.cost_analysis()[0] if isinstance(c.cost_analysis(), list) else c.cost_analysis())["flops"]
    ratio = flops(train) / flops(fwd)
    assert 1.0 < ratio < 2.3, ratio


def test_bf16_compute_keeps_fp32_master_weights(clip_dir, runs):
    config = tiny_config(clip_dir, **{"model.dtype": "bfloat16"})
    _, losses, params, _, _ = _run(config, parallel.make_mesh(), [random_batch(16, seed=i) for i in range(4)])
    assert all(p.dtype == np.float32 for p in jax.tree.leaves(params))
    np.testing.assert_allclose(losses, runs[1][1], rtol=2e-2)  # within bf16 tolerance of the fp32 run


def test_steps_normalise_uint8_images_on_the_device(clip_dir):
    """The steps take the pipelines' uint8 images and normalise them per channel inside the program: the
    eval step's logits equal the model's on images normalised by hand with numpy."""
    mean, std = (0.2, 0.5, 0.7), (0.25, 0.5, 0.3)  # per-channel values catch a channel-order mistake
    config = tiny_config(clip_dir, **{"data.mean": mean, "data.std": std})
    parts = model_lib.build_parts(model_lib.ModelSpec.from_config(config))
    mesh = parallel.make_mesh()
    sh = state_shardings(mesh, parts.trainable, None, parts.frozen)
    batch = random_batch(16, seed=3)
    ids = tuple(parts.class_set.ids("gzsl"))
    text = {"gzsl": infer_steps.make_text_features(parts, mesh, sh)(parts.trainable, parts.frozen, ids)}
    eval_step = infer_steps.make_eval_step(parts, mesh, sh, {"gzsl": ids}, mean, std)
    got = np.asarray(eval_step(parts.trainable, parts.frozen, parallel.host_to_global(batch, mesh)["image"],
                               text)["gzsl"])
    by_hand = (batch["image"].astype(np.float64) / 255.0 - np.array(mean)) / np.array(std)
    want = np.asarray(parts.merge(parts.trainable, parts.frozen)(by_hand.astype(np.float32), ids))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    with pytest.raises(TypeError, match="uint8"):
        eval_step(parts.trainable, parts.frozen, batch["image"].astype(np.float32), text)
