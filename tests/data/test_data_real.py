"""The real datasets (from $OCDL_DATA, e.g. ../shared/datasets): sizes, label counts, statistics.
Skipped when the folders are not present."""
from __future__ import annotations

import pytest
import torch

from ocdl.data import channel_stats, load_dataset

COUNTS = {
    "mnist": ([5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949],
              [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009], (0.1307, 0.3081)),
    "fashion-mnist": ([6000] * 10, [1000] * 10, (0.2860, 0.3530)),
}


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_idx_datasets(real_data, name):
    real_data(name)
    ds = load_dataset(name)  # checks the SHA-256 of the decompressed files
    assert [len(s) for s in ds] == [55000, 5000, 10000]
    assert ds.sample_shape == (1, 28, 28) and ds.train.x.dtype == torch.uint8
    train_counts, test_counts, (mean, std) = COUNTS[name]
    both = [a + b for a, b in zip(ds.train.label_counts(10), ds.valid.label_counts(10))]
    assert both == train_counts and ds.test.label_counts(10) == test_counts
    m, s = channel_stats(torch.cat([ds.train.x, ds.valid.x]))
    assert abs(m.item() - mean) < 5e-5 and abs(s.item() - std) < 5e-5
    warm = load_dataset(name)
    assert warm.info["cache"] == "hit" and torch.equal(warm.valid.x, ds.valid.x)


def test_cifar10_jpeg(real_data):
    real_data("cifar-10")
    ds = load_dataset("cifar-10")  # decodes 60,000 JPEGs (~10 s on 2 cores)
    assert [len(s) for s in ds] == [45000, 5000, 10000]
    assert ds.sample_shape == (3, 32, 32)
    assert ds.classes == ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog",
                          "horse", "ship", "truck"]
    both = [a + b for a, b in zip(ds.train.label_counts(10), ds.valid.label_counts(10))]
    assert both == [5000] * 10 and ds.test.label_counts(10) == [1000] * 10
    m, s = channel_stats(torch.cat([ds.train.x, ds.valid.x]))
    assert torch.allclose(m, torch.tensor([0.491250, 0.482090, 0.446521]), atol=2e-4)
    assert torch.allclose(s, torch.tensor([0.245232, 0.242782, 0.260629]), atol=2e-4)
    assert load_dataset("cifar-10").info["cache"] == "hit"


def test_embedded_subset_is_real_mnist(real_data):
    real_data("mnist")
    import numpy as np

    from ocdl.data.load import embedded_path
    full = load_dataset("mnist", split={"valid": 0})
    with np.load(embedded_path("mnist-subset")) as z:
        assert torch.equal(torch.from_numpy(z["x_train"]), full.train.x[z["train_index"], 0])
        assert torch.equal(torch.from_numpy(z["y_test"]), full.test.y[z["test_index"]])
