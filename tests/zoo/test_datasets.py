import numpy as np
import pytest

from scanner.errors import UsageError
from scanner.zoo.datasets import FAMILIES, make_dataset


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_dataset_shape_range_and_labels(family):
    x, y = make_dataset(family, 200, seed=0)
    spec = FAMILIES[family]
    assert x.shape == (200, *spec.image_shape) and x.dtype == np.float32
    assert y.shape == (200,) and y.dtype == np.int64
    assert x.min() >= 0.0 and x.max() <= 1.0
    assert np.bincount(y, minlength=10).tolist() == [20] * 10


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_dataset_is_deterministic_per_seed_and_split(family):
    x1, y1 = make_dataset(family, 50, seed=3)
    x2, y2 = make_dataset(family, 50, seed=3)
    x3, _ = make_dataset(family, 50, seed=4)
    x4, _ = make_dataset(family, 50, seed=3, split="test")
    assert np.array_equal(x1, x2) and np.array_equal(y1, y2)
    assert not np.array_equal(x1, x3)
    assert not np.array_equal(x1, x4)


def test_two_class_variant_uses_the_first_two_classes():
    _, y = make_dataset("digits16", 40, seed=0, num_classes=2)
    assert sorted(set(y.tolist())) == [0, 1]


def test_unknown_family_and_bad_class_count_are_usage_errors():
    with pytest.raises(UsageError):
        make_dataset("cifar", 10, seed=0)
    with pytest.raises(UsageError):
        make_dataset("digits16", 10, seed=0, num_classes=11)
