import math

import pytest
import torch

from datamodules.toy_classification import ToyClassificationDataModule, make_points


def splits(**kwargs):
    dm = ToyClassificationDataModule(**kwargs)
    dm.setup()
    return dm, {s: (dm.datasets[s].inputs, dm.datasets[s].targets) for s in ("train", "val", "test")}


def test_class_attributes_are_set_before_setup():
    dm = ToyClassificationDataModule()
    assert (dm.input_size, dm.num_classes, dm.classes) == (2, 2, ["0", "1"])
    assert dm.datasets == {}
    assert dm.hparams["dataset"] == "moons" and dm.hparams["num_samples"] == 100 and dm.hparams["noise"] == 0.25


@pytest.mark.parametrize("dataset", ["moons", "circles"])
def test_shapes_dtypes_and_balanced_classes(dataset):
    _, data = splits(dataset=dataset, num_samples=60, val_samples=20, test_samples=31)
    for split, n in (("train", 60), ("val", 20), ("test", 31)):
        x, y = data[split]
        assert x.shape == (n, 2) and x.dtype == torch.float32
        assert y.shape == (n,) and y.dtype == torch.long
        assert y.bincount().tolist() == [n // 2, n - n // 2]


def test_default_splits_have_num_samples_each_and_differ():
    _, data = splits()
    assert [len(data[s][0]) for s in ("train", "val", "test")] == [100, 100, 100]
    assert not torch.equal(data["train"][0], data["val"][0])
    assert not torch.equal(data["val"][0], data["test"][0])


def test_same_seed_same_points_other_seed_other_points():
    _, first = splits(seed=7)
    _, again = splits(seed=7)
    _, other = splits(seed=8)
    for split in ("train", "val", "test"):
        assert torch.equal(first[split][0], again[split][0]) and torch.equal(first[split][1], again[split][1])
        assert not torch.allclose(first[split][0], other[split][0])


def test_generation_leaves_the_global_rng_alone():
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    splits(seed=1)
    assert torch.equal(torch.rand(3), expected)


def test_moons_without_noise_lie_on_the_two_half_circles():
    _, data = splits(num_samples=200, noise=0.0)
    x, y = data["train"]
    upper, lower = x[y == 0].double(), x[y == 1].double()
    torch.testing.assert_close(upper.norm(dim=1), torch.ones(100, dtype=torch.float64), atol=1e-6, rtol=0)
    assert float(upper[:, 1].min()) >= -1e-6  # the upper half circle around (0, 0)
    centred = lower - torch.tensor([1.0, 0.5], dtype=torch.float64)
    torch.testing.assert_close(centred.norm(dim=1), torch.ones(100, dtype=torch.float64), atol=1e-6, rtol=0)
    assert float(lower[:, 1].max()) <= 0.5 + 1e-6  # the lower half circle around (1, 0.5)
    # class means: (0, 2/π) for the upper moon, (1, 1/2 - 2/π) for the lower one (up to the sampling of t)
    torch.testing.assert_close(upper.mean(0), torch.tensor([0.0, 2 / math.pi], dtype=torch.float64), atol=0.01,
                               rtol=0)
    torch.testing.assert_close(lower.mean(0), torch.tensor([1.0, 0.5 - 2 / math.pi], dtype=torch.float64),
                               atol=0.01, rtol=0)


def test_noisy_moons_keep_their_class_means_and_spread_by_the_noise():
    _, data = splits(num_samples=4000, noise=0.25, seed=0)
    x, y = data["train"]
    torch.testing.assert_close(x[y == 0].mean(0), torch.tensor([0.0, 2 / math.pi]), atol=0.03, rtol=0)
    torch.testing.assert_close(x[y == 1].mean(0), torch.tensor([1.0, 0.5 - 2 / math.pi]), atol=0.03, rtol=0)
    _, clean = splits(num_samples=4000, noise=0.0, seed=0)
    offsets = x - clean["train"][0]  # the same shuffle, then the noise
    assert torch.equal(y, clean["train"][1])
    assert float(offsets.std()) == pytest.approx(0.25, rel=0.05)


def test_circles_have_radius_one_and_factor():
    _, data = splits(dataset="circles", num_samples=50, noise=0.0, factor=0.3)
    x, y = data["train"]
    torch.testing.assert_close(x[y == 0].norm(dim=1), torch.ones(25), atol=1e-6, rtol=0)
    torch.testing.assert_close(x[y == 1].norm(dim=1), torch.full((25,), 0.3), atol=1e-6, rtol=0)
    torch.testing.assert_close(x.mean(0), torch.zeros(2), atol=1e-6, rtol=0)  # evenly spaced around the circle


def test_make_points_shuffles_the_classes():
    _, y = make_points("moons", 100, 0.1, torch.Generator().manual_seed(0))
    assert 0 < int(y[:50].sum()) < 50


def test_batches_pass_to_the_model_unchanged():
    dm, data = splits(batch_size=10)
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (10, 2) and y.shape == (10,)
    torch.testing.assert_close(dm.on_after_batch_transfer((x, y), 0)[0], x)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"dataset": "spirals"}, r"`dataset` must be one of \['moons', 'circles'\], got 'spirals'"),
    ({"num_samples": 1}, r"`num_samples` must be an integer >= 2"),
    ({"num_samples": 0}, r"`num_samples` must be a positive integer"),
    ({"num_samples": 10.0}, r"`num_samples` must be a positive integer"),
    ({"val_samples": 1}, r"`val_samples` must be an integer >= 2"),
    ({"test_samples": -3}, r"`test_samples` must be a positive integer"),
    ({"noise": -0.1}, r"`noise` must be a finite number >= 0, got -0.1"),
    ({"noise": float("nan")}, r"`noise` must be a finite number >= 0"),
    ({"factor": 1.0}, r"`factor` must be in \(0, 1\)"),
    ({"batch_size": 0}, r"`batch_size` must be a positive integer"),
])
def test_bad_arguments_name_the_argument(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ToyClassificationDataModule(**kwargs)
