"""Mesh and shardings over the 8 fake CPU devices."""
import jax
import numpy as np
import pytest

from sfr_jax import parallel


def test_mesh_uses_every_device_and_shards_batches():
    mesh = parallel.make_mesh()
    assert mesh.shape == {"data": 8, "model": 1}
    assert parallel.check_batch(16, mesh) == 2
    batch = parallel.host_to_global({"x": np.arange(16 * 3).reshape(16, 3)}, mesh)
    assert batch["x"].sharding.spec == jax.sharding.PartitionSpec("data")
    assert [s.data.shape for s in batch["x"].addressable_shards] == [(2, 3)] * 8
    np.testing.assert_array_equal(parallel.to_host(batch["x"]), np.arange(48).reshape(16, 3))


def test_indivisible_batch_is_a_clear_error():
    mesh = parallel.make_mesh()
    with pytest.raises(ValueError, match="train.global_batch=12 is not divisible by the 8 devices"):
        parallel.check_batch(12, mesh)
    with pytest.raises(ValueError, match="mesh.model=3"):
        parallel.make_mesh(model=3)


def test_model_axis_shards_large_parameters_only():
    mesh = parallel.make_mesh(data=4, model=2)
    tree = {"big": np.zeros((1024, 512), np.float32), "small": np.zeros((8,), np.float32)}
    sh = parallel.param_sharding(mesh, tree)
    assert sh["big"].spec == jax.sharding.PartitionSpec("model", None)
    assert sh["small"].spec == jax.sharding.PartitionSpec()


def test_bad_multiprocess_flags_fail():
    with pytest.raises(ValueError, match="coordinator"):
        parallel.initialize(coordinator="", num_processes=2, process_id=0)


def test_prefetch_to_device_keeps_order_and_sends_size_batches_ahead():
    mesh = parallel.make_mesh()
    host = [{"image": np.full((8, 2), i, np.uint8), "labels": np.arange(8, dtype=np.float32) + i} for i in range(5)]
    pulled = []

    def source():
        for batch in host:
            pulled.append(1)
            yield batch

    for size in (0, 2, 9):
        pulled.clear()
        out = parallel.prefetch_to_device(source(), mesh, size)
        first = next(out)
        assert len(pulled) == min(size + 1, len(host)), "the batch in use plus `size` sent ahead"
        rest = list(out)
        assert len(rest) == len(host) - 1
        for want, got in zip(host, [first] + rest):
            assert got["image"].sharding.spec == jax.sharding.PartitionSpec("data")
            for key in want:
                np.testing.assert_array_equal(np.asarray(got[key]), want[key])
    assert list(parallel.prefetch_to_device(iter([]), mesh, 2)) == []
    with pytest.raises(ValueError, match="prefetch size must be >= 0, got -1"):
        next(parallel.prefetch_to_device(source(), mesh, -1))
