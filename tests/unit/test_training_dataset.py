"""The training pipeline feeds every image once per epoch, in batches, in a new order each epoch."""

import numpy as np
import pytest

from tfdock.train import TrainConfig, _training_dataset

tf = pytest.importorskip("tensorflow")


def _epoch(dataset) -> tuple[list[int], list[int]]:
    sizes, images = [], []
    for batch_images, batch_labels in dataset:
        sizes.append(len(batch_images))
        assert np.array_equal(batch_images.numpy()[:, 0, 0], batch_labels.numpy())
        images.extend(int(value) for value in batch_images.numpy()[:, 0, 0])
    return sizes, images


def test_each_epoch_is_every_image_once_in_a_new_order():
    """Two epochs over 100 images: batches of 32 (the last 4), each image once, orders differ."""
    count = 100
    x = np.zeros((count, 28, 28), np.float32)
    x[:, 0, 0] = np.arange(count)
    y = np.arange(count, dtype=np.int32)  # the label of image i is i, to check they travel together
    dataset = _training_dataset(tf, x, y, TrainConfig(batch_size=32, seed=1))
    sizes, first = _epoch(dataset)
    _, second = _epoch(dataset)
    assert sizes == [32, 32, 32, 4]
    assert sorted(first) == sorted(second) == list(range(count))
    assert first != second
    assert first != list(range(count)), "the data is shuffled"
