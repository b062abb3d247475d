"""tf.data pipelines: per-process shard subsets, complete masked evaluation, seeded and exactly resumable
training, no augmentation in eval, global arrays on a mesh."""
import numpy as np
import pytest

from sfr_jax.data import pipeline, prepare, synthetic, tfrecords
from sfr_jax.data.augment import AugConfig
from data_fixtures import decoded_records


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    """A prepared train split of about 40 images (32 px PNG, shards of <= 4)."""
    root = tmp_path_factory.mktemp("pipeline")
    synthetic.write(str(root / "raw"), 60, seed=11, layout="official", draw_size=24, save_size="draw",
                    val_fraction=0.25)
    assert prepare.main(["sewerml", "--root", str(root / "raw"), "--out", str(root / "out"), "--workers", "1",
                         "--image-size", "32", "--shard-size", "4", "--format", "png", "--no-progress"]) == 0
    return str(root / "out" / "train")


def _eval_items(split_dir, **kwargs):
    items, batches = [], list(pipeline.eval_batches(split_dir, with_filenames=True, **kwargs))
    for batch in batches:
        assert batch["image"].shape[0] == kwargs["global_batch"] // kwargs.get("process_count", 1)
        for i in range(len(batch["mask"])):
            if batch["mask"][i]:
                items.append((batch["filename"][i].decode(), batch["image"][i], batch["labels"][i]))
            else:
                assert batch["filename"][i] == b"" and not batch["image"][i].any() and not batch["labels"][i].any()
    return items, len(batches)


def test_eval_every_image_once_over_processes_with_mask_and_no_augmentation(split):
    records = decoded_records(split)
    assert len(records) % 10, "the count should not divide the batch"
    per_process = [_eval_items(split, global_batch=10, process_index=p, process_count=2) for p in range(2)]
    (items0, steps0), (items1, steps1) = per_process
    assert steps0 == steps1 == pipeline.eval_steps(split, 10, 2)
    names0, names1 = {n for n, _, _ in items0}, {n for n, _, _ in items1}
    assert not names0 & names1 and names0 | names1 == set(records)
    assert len(items0) + len(items1) == len(records)
    for name, image, labels in items0 + items1:  # the stored pixels, uint8: no augmentation
        assert image.dtype == np.uint8
        np.testing.assert_array_equal(image, records[name][0])
        np.testing.assert_array_equal(labels, records[name][1])
    # shards, not images, are split between processes
    info = tfrecords.read_info(split)
    assert sum(info["shard_lengths"][0::2]) == len(items0)


def test_train_disjoint_processes_and_all_labels_right(split):
    records = decoded_records(split)
    by_pixels = {np.asarray(image).tobytes(): labels for image, labels in records.values()}
    seen = []
    for process in range(2):
        batches = list(pipeline.train_batches(split, global_batch=4, seed=0, process_index=process, process_count=2,
                                              aug_config=AugConfig.off(), num_steps=pipeline.steps_per_epoch(split, 4, 2)))
        names = []
        for batch in batches:
            assert batch["image"].shape == (2, 32, 32, 3) and batch["labels"].shape == (2, 17)
            for image, labels in zip(batch["image"], batch["labels"]):
                assert image.dtype == np.uint8
                key = image.tobytes()
                assert key in by_pixels, "un-augmented train images are stored images"
                np.testing.assert_array_equal(labels, by_pixels[key])
                names.append(key)
        assert len(set(names)) == len(names), "an epoch shows an image at most once"
        seen.append(set(names))
    assert not seen[0] & seen[1]


def test_train_seeded_and_exactly_resumable(split):
    steps = pipeline.steps_per_epoch(split, 8)
    assert steps == len(decoded_records(split)) // 8
    total = steps + 3  # crosses an epoch boundary
    full = list(pipeline.train_batches(split, global_batch=8, seed=5, num_steps=total, shuffle_buffer=64))
    again = list(pipeline.train_batches(split, global_batch=8, seed=5, num_steps=total, shuffle_buffer=64))
    other = list(pipeline.train_batches(split, global_batch=8, seed=6, num_steps=total, shuffle_buffer=64))
    for a, b in zip(full, again):
        np.testing.assert_array_equal(a["image"], b["image"])
        np.testing.assert_array_equal(a["labels"], b["labels"])
    assert not np.array_equal(full[0]["image"], other[0]["image"])
    assert not np.array_equal(full[0]["image"], full[steps]["image"]), "epochs are reshuffled and re-augmented"
    for start in (2, steps + 1):  # resume inside the first epoch and inside the second
        resumed = list(pipeline.train_batches(split, global_batch=8, seed=5, start_step=start,
                                              num_steps=total - start, shuffle_buffer=64))
        assert len(resumed) == total - start
        for a, b in zip(full[start:], resumed):
            np.testing.assert_array_equal(a["image"], b["image"])
            np.testing.assert_array_equal(a["labels"], b["labels"])
    # augmentation is on in training: images differ from the stored ones
    stored = {np.asarray(image).tobytes() for image, _ in decoded_records(split).values()}
    keys = [im.tobytes() for im in full[0]["image"]]
    assert sum(key in stored for key in keys) < len(keys)
    assert full[0]["image"].dtype == np.uint8


def test_errors_name_the_problem(split, tmp_path):
    with pytest.raises(ValueError, match="multiple of the 3 processes"):
        pipeline.steps_per_epoch(split, 8, 3)
    with pytest.raises(ValueError, match="fewer than 64 processes"):
        pipeline.eval_steps(split, 64, 64)
    with pytest.raises(FileNotFoundError, match="not a prepared split"):
        pipeline.eval_steps(str(tmp_path), 8)


def test_to_global_makes_data_sharded_arrays(split):
    import jax
    from jax.sharding import PartitionSpec

    mesh = jax.make_mesh((8,), ("data",))
    batch = next(pipeline.eval_batches(split, global_batch=16, with_filenames=True))
    arrays = pipeline.to_global(batch, mesh)
    assert set(arrays) == {"image", "labels", "mask"}
    assert arrays["image"].shape == (16, 32, 32, 3) and arrays["image"].sharding.spec == PartitionSpec("data")
    assert len(arrays["image"].addressable_shards) == 8
    np.testing.assert_array_equal(np.asarray(arrays["labels"]), batch["labels"])
    np.testing.assert_array_equal(np.asarray(arrays["mask"]), batch["mask"])
