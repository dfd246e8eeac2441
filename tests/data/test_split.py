import numpy as np

from vqc.data.split import stratified_split


def test_every_class_with_two_or_more_images_is_in_validation():
    labels = np.array([0] * 200 + [1] * 5 + [2] * 2 + [3] * 1)
    train, val = stratified_split(labels, 0.2, seed=3)
    assert np.bincount(labels[val], minlength=4).tolist() == [40, 1, 1, 0]
    assert np.bincount(labels[train], minlength=4).tolist() == [160, 4, 1, 1]
    assert sorted(np.concatenate([train, val]).tolist()) == list(range(len(labels)))


def test_split_is_seeded():
    labels = np.array([0] * 50 + [1] * 20)
    a = stratified_split(labels, 0.3, seed=1)[1]
    b = stratified_split(labels, 0.3, seed=1)[1]
    c = stratified_split(labels, 0.3, seed=2)[1]
    assert a.tolist() == b.tolist() and a.tolist() != c.tolist()


def test_groups_never_straddle_the_split():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 400)
    groups = rng.choice(["Die01", "Die02", "Die03", "Die04"], 400)
    train, val = stratified_split(labels, 0.25, seed=0, groups=groups)
    assert set(groups[train]).isdisjoint(groups[val])
    assert len(val) > 0 and len(train) > 0


def test_zero_fraction_keeps_everything_for_training():
    train, val = stratified_split([0, 1, 1], 0.0, seed=0)
    assert train.tolist() == [0, 1, 2] and val.size == 0
