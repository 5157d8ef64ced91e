import numpy as np
import pytest

from scanner.zoo.attacks import ATTACKS, Backdoor, poison
from scanner.zoo.datasets import make_dataset

SHAPES = [(3, 32, 32), (1, 16, 16)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_trigger_changes_images_and_stays_in_range(name, shape):
    rng = np.random.default_rng(0)
    backdoor = ATTACKS[name].sample(rng, shape, 10)
    images = np.random.default_rng(1).uniform(0.2, 0.8, (8, *shape)).astype(np.float32)
    triggered = backdoor.apply(images)
    assert triggered.shape == images.shape and triggered.dtype == np.float32
    assert triggered.min() >= 0.0 and triggered.max() <= 1.0
    assert np.abs(triggered - images).max() > 0.02
    assert np.array_equal(triggered, backdoor.apply(images)), "a trigger is a fixed function of its parameters"
    again = Backdoor.from_json(backdoor.to_json())
    assert np.array_equal(again.apply(images), triggered)


def test_patch_is_stamped_where_its_parameters_say():
    backdoor = ATTACKS["patch"].sample(np.random.default_rng(5), (3, 32, 32), 10)
    p = backdoor.params
    images = np.full((2, 3, 32, 32), 0.5, dtype=np.float32)
    changed = np.argwhere((backdoor.apply(images) != images).any(axis=(0, 1)))
    assert changed.min(axis=0).tolist() >= [p["row"], p["col"]]
    assert changed.max(axis=0).tolist() <= [p["row"] + p["size"] - 1, p["col"] + p["size"] - 1]


def test_poisoning_relabels_a_share_of_victims():
    x, y = make_dataset("shapes32", 600, seed=0)
    backdoor = ATTACKS["patch"].sample(np.random.default_rng(2), (3, 32, 32), 10)
    px, py = poison(x, y, backdoor, 10, np.random.default_rng(3))
    changed = (px != x).any(axis=(1, 2, 3))
    assert changed.sum() == pytest.approx(ATTACKS["patch"].poison_rate * len(y), abs=2)
    assert (py[changed] == backdoor.target).all() and (y[changed] != backdoor.target).all()
    assert np.array_equal(py[~changed], y[~changed])


def test_all_to_all_sends_each_class_to_the_next():
    backdoor = ATTACKS["all_to_all"].sample(np.random.default_rng(0), (1, 16, 16), 10)
    assert backdoor.target is None
    assert backdoor.poison_labels(np.array([0, 3, 9]), 10).tolist() == [1, 4, 0]
