"""The fast data path (whole-batch index, fused normalization, device cache) against a plain per-sample one, the
training order (a function of the seed and the epoch only), and the label noise every classification datamodule
inherits."""

import logging

import pytest
import pytorch_lightning as pl
import torch

from datamodules import FashionMNISTDataModule
from datamodules.base import (
    BatchTensorDataset,
    EpochRandomSampler,
    InMemoryDataModule,
    balanced_subset_indices,
    noisy_labels,
    stratified_split_indices,
)
from tests.helpers.index_data import IndexData
from tests.helpers.reference import reference_loader


@pytest.mark.parametrize("device_cache", [False, True])
def test_fast_batches_equal_per_sample_reference_in_order_and_value(fashion_root, device_cache):
    """Epoch by epoch (as Lightning sets it), the fast loader gives the reference's batches in the reference's
    order, whatever the global RNG state before iterating."""
    dm = FashionMNISTDataModule(str(fashion_root), batch_size=32, download=False, device_cache=device_cache)
    dm.setup()
    fast_loader, plain_loader = dm.train_dataloader(), reference_loader(dm, "train", shuffle=True)
    for epoch in range(3):
        fast_loader.sampler.set_epoch(epoch)
        plain_loader.sampler.set_epoch(epoch)
        torch.manual_seed(3 + epoch)
        fast = [dm.on_after_batch_transfer(batch, 0) for batch in fast_loader]
        torch.manual_seed(100 + epoch)  # another global state: the order must not depend on it
        reference = list(plain_loader)
        assert len(fast) == len(reference) == 6
        for (x, y), (x_ref, y_ref) in zip(fast, reference, strict=True):
            assert torch.equal(y, y_ref), f"epoch {epoch}"
            torch.testing.assert_close(x, x_ref.squeeze(1), rtol=1e-5, atol=1e-5)


def test_device_cache_and_pin_memory_are_no_ops_on_cpu(fashion_root, make_trainer):
    dm = FashionMNISTDataModule(str(fashion_root), download=False, device_cache=True, num_workers=1)
    dm.trainer = make_trainer()
    loader = dm.train_dataloader()
    assert loader.dataset is dm.datasets["train"] and loader.dataset.inputs.device.type == "cpu"
    assert not loader.pin_memory and loader.num_workers == 1
    assert loader.persistent_workers  # workers are started once, not every epoch
    assert dm.device_cache is True  # kept for a GPU run, where it moves the whole split to the device once
    assert not FashionMNISTDataModule(str(fashion_root), download=False).val_dataloader().persistent_workers
    assert dm.target_device == torch.device("cpu")


def test_fused_normalization_matches_the_two_step_formula(fashion_root):
    dm = FashionMNISTDataModule(str(fashion_root), download=False)
    dm.setup()
    x = dm.datasets["test"].inputs
    torch.testing.assert_close(dm.transform_inputs(x), (x.float() / 255 - dm.mean) / dm.std, rtol=1e-6, atol=1e-6)
    dm.mean, dm.std = torch.tensor([0.5]), torch.tensor([0.25])  # new statistics are picked up
    torch.testing.assert_close(dm.transform_inputs(x), (x.float() / 255 - 0.5) / 0.25, rtol=1e-6, atol=1e-6)


def test_batch_dataset_to_moves_only_when_needed():
    ds = BatchTensorDataset(torch.arange(6).view(3, 2), torch.arange(3))
    assert ds.to("cpu") is ds
    x, y = ds.__getitems__([2, 0])
    assert x.tolist() == [[4, 5], [0, 1]] and y.tolist() == [2, 0]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_device_cache_keeps_the_splits_on_the_gpu(fashion_root, make_trainer):
    dm = FashionMNISTDataModule(str(fashion_root), batch_size=32, download=False, device_cache=True)
    dm.trainer = make_trainer(accelerator="gpu")
    loader = dm.train_dataloader()
    x, y = next(iter(loader))
    assert x.is_cuda and y.is_cuda and not loader.pin_memory and loader.num_workers == 0
    plain = FashionMNISTDataModule(str(fashion_root), batch_size=32, download=False)
    plain.trainer = make_trainer(accelerator="gpu")
    assert plain.train_dataloader().pin_memory
    torch.manual_seed(0)
    cached = [b[0].cpu() for b in dm.val_dataloader()]
    torch.manual_seed(0)
    host = [b[0] for b in plain.val_dataloader()]
    assert all(torch.equal(a, b) for a, b in zip(cached, host, strict=True))


# -- the training order: a function of the seed and the epoch only ---------------------------------
def epoch_order(sampler: EpochRandomSampler, epoch: int) -> list[int]:
    """The order ``sampler`` gives for ``epoch``, set as Lightning sets it."""
    sampler.set_epoch(epoch)
    return list(sampler)


def test_each_epoch_is_a_permutation_and_consecutive_epochs_differ():
    sampler = EpochRandomSampler(range(50), seed=7)
    orders = [epoch_order(sampler, epoch) for epoch in range(4)]
    assert all(sorted(order) == list(range(50)) for order in orders)
    assert len({tuple(order) for order in orders}) == 4


def test_fresh_sampler_at_epoch_k_equals_one_that_ran_through_epochs_0_to_k():
    running = EpochRandomSampler(range(30), seed=5)
    for epoch in range(5):
        ran = epoch_order(running, epoch)
        assert epoch_order(EpochRandomSampler(range(30), seed=5), epoch) == ran, epoch
    assert list(EpochRandomSampler(range(30), seed=5)) == epoch_order(running, 0)  # no set_epoch: epoch 0


def test_other_seed_other_order():
    for epoch in range(3):
        assert epoch_order(EpochRandomSampler(range(30), seed=0), epoch) != epoch_order(
            EpochRandomSampler(range(30), seed=1), epoch)


def test_order_ignores_the_global_rng_state():
    orders = []
    for seed in (0, 1):
        pl.seed_everything(seed, verbose=False)
        torch.rand(3)
        orders.append([epoch_order(EpochRandomSampler(range(30), seed=9), epoch) for epoch in range(3)])
    assert orders[0] == orders[1]


class RecordBatches(pl.LightningModule):
    """Records the sample indices of every training batch, per epoch."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(1, 1)
        self.seen: dict[int, list[int]] = {}

    def training_step(self, batch, batch_idx):
        x, _ = batch
        self.seen.setdefault(self.current_epoch, []).extend(x.flatten().long().tolist())
        return self.layer(x).mean()  # nothing to learn (lr 0): only the order matters

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)


def fit_orders(make_trainer, global_seed: int, seed: int = 3, epochs: int = 3) -> dict[int, list[int]]:
    pl.seed_everything(global_seed, verbose=False)
    model = RecordBatches()
    data = IndexData(size=12, batch_size=4, seed=seed)
    make_trainer(max_epochs=epochs, limit_val_batches=0).fit(model, datamodule=data)
    return model.seen


def test_fit_sees_a_new_order_every_epoch_set_by_seed_and_epoch_only(make_trainer):
    seen = fit_orders(make_trainer, global_seed=0)
    assert sorted(seen) == [0, 1, 2]
    assert all(sorted(order) == list(range(12)) for order in seen.values())  # every sample once per epoch
    assert len({tuple(order) for order in seen.values()}) == 3
    assert seen == {epoch: epoch_order(EpochRandomSampler(range(12), seed=3), epoch) for epoch in range(3)}
    assert fit_orders(make_trainer, global_seed=1) == seen  # another global seed: the same batches
    assert fit_orders(make_trainer, global_seed=0, seed=4) != seen


def test_batch_dataset_to_another_device_moves_inputs_and_tensor_targets_only():
    """``to`` on another device (``meta``, which needs no GPU) gives a new dataset there; file-name targets stay."""
    ds = BatchTensorDataset(torch.arange(6).view(3, 2), torch.arange(3))
    moved = ds.to("meta")
    assert moved is not ds and moved.inputs.device.type == "meta" and moved.targets.device.type == "meta"
    assert moved.inputs.shape == (3, 2) and moved.targets.shape == (3,)
    assert moved.to(torch.device("meta")) is moved
    named = BatchTensorDataset(torch.zeros(2, 1), ["a.png", "b.png"])
    moved_named = named.to("meta")
    assert moved_named.inputs.device.type == "meta" and moved_named.targets == ["a.png", "b.png"]
    assert named.to("cpu") is named


def test_stratified_split_keeps_each_class_share_with_three_classes():
    targets = torch.tensor([0] * 10 + [1] * 20 + [2] * 30)
    train, val = stratified_split_indices(targets, 0.1, seed=0)
    assert targets[val].tolist() == [0, 1, 1, 2, 2, 2]
    assert torch.bincount(targets[train]).tolist() == [9, 18, 27]
    assert sorted(torch.cat([train, val]).tolist()) == list(range(60))


def test_normalization_follows_a_new_mean_or_a_new_std_alone(fashion_root):
    dm = FashionMNISTDataModule(str(fashion_root), download=False)
    dm.setup()
    x = dm.datasets["test"].inputs
    dm.transform_inputs(x)  # the statistics are now cached
    dm.mean = torch.tensor([0.5])
    torch.testing.assert_close(dm.transform_inputs(x), (x.float() / 255 - 0.5) / dm.std, rtol=1e-6, atol=1e-6)
    dm.std = torch.tensor([0.25])
    torch.testing.assert_close(dm.transform_inputs(x), (x.float() / 255 - 0.5) / 0.25, rtol=1e-6, atol=1e-6)


def test_balanced_subset_takes_all_of_a_short_class_and_the_whole_split_at_full_size():
    targets = torch.tensor([0] * 50 + [1] * 30 + [2] * 8)
    counts = torch.bincount(targets[balanced_subset_indices(targets, 40, seed=0)]).tolist()
    assert counts == [16, 16, 8]  # class 2 gives its 8, the other two share the remaining 32
    assert balanced_subset_indices(targets, 88, seed=0).tolist() == list(range(88))  # all of an unbalanced split
    assert torch.bincount(targets[balanced_subset_indices(targets, 25, seed=0)]).tolist() == [9, 8, 8]
    with pytest.raises(ValueError, match=r"`train_size`=89 is larger than the training split, which has 88"):
        balanced_subset_indices(targets, 89, seed=0)


# -- label noise: the training split only, round(p·n) samples, seeded ---------------------------------
def noisy(size: int, **kwargs) -> IndexData:
    data = IndexData(size=size, **kwargs)
    data.setup()
    return data


@pytest.mark.parametrize("mode", ["other_class", "shuffle"])
@pytest.mark.parametrize(("size", "label_noise", "picked"), [
    (10, 0.15, 2),  # p·n = 1.5: round gives 2 (half to even), int 1
    (37, 0.15, 6),  # p·n = 5.55: round gives 6, int 5
    (41, 0.2, 8),   # p·n = 8.2: round gives 8, ceil 9
])
def test_label_noise_relabels_round_p_n_training_samples_only(mode, size, label_noise, picked):
    data = noisy(size, label_noise=label_noise, label_noise_mode=mode, seed=4)
    clean = torch.arange(size) % 3
    labels, chosen = data.datasets["train"].targets, data.relabeled_indices
    assert len(chosen) == picked and chosen.tolist() == sorted(set(chosen.tolist()))
    assert torch.equal(data.clean_train_targets, clean)
    assert torch.equal(data.datasets["train"].inputs.flatten(), torch.arange(size, dtype=torch.float32))
    untouched = torch.ones(size, dtype=torch.bool).index_fill_(0, chosen, False)
    assert torch.equal(labels[untouched], clean[untouched])
    assert torch.equal(data.noisy_indices, torch.nonzero(labels != clean).flatten())
    if mode == "other_class":  # every picked label moves to another class
        assert torch.equal(data.noisy_indices, chosen)
    else:  # the picked labels are permuted among themselves: the same labels, other places
        assert torch.equal(torch.bincount(labels[chosen], minlength=3), torch.bincount(clean[chosen], minlength=3))
    for split in ("val", "test"):  # IndexData hands every split the same label tensor: none may change
        assert torch.equal(data.datasets[split].targets, clean)
    again = noisy(size, label_noise=label_noise, label_noise_mode=mode, seed=4)
    assert torch.equal(again.datasets["train"].targets, labels) and torch.equal(again.relabeled_indices, chosen)
    assert not torch.equal(noisy(size, label_noise=label_noise, label_noise_mode=mode, seed=5).relabeled_indices,
                           chosen)


def test_shuffling_every_label_is_a_permutation_that_changes_about_1_minus_1_over_c():
    targets = torch.arange(5000) % 10
    labels, picked = noisy_labels(targets, 1.0, "shuffle", num_classes=10, seed=0)
    assert len(picked) == 5000 and torch.equal(labels.sort().values, targets.sort().values)
    assert 0.88 <= (labels != targets).float().mean().item() <= 0.92  # 1 - 1/10, a few standard deviations wide
    data = noisy(300, label_noise=1.0, label_noise_mode="shuffle")
    assert torch.bincount(data.datasets["train"].targets).tolist() == [100, 100, 100]
    assert 0.6 <= len(data.noisy_indices) / 300 <= 0.73  # 1 - 1/3


def test_other_class_moves_every_label_to_a_uniformly_drawn_other_class():
    targets = torch.arange(3000) % 3
    labels, picked = noisy_labels(targets, 1.0, "other_class", num_classes=3, seed=0)
    offsets = (labels - targets) % 3
    assert len(picked) == 3000 and (offsets != 0).all()
    assert 0.46 <= (offsets == 1).float().mean().item() <= 0.54


def test_no_label_noise_keeps_every_label_and_logs_nothing(caplog):
    with caplog.at_level(logging.INFO, logger="datamodules.base"):
        data = noisy(30)
    assert torch.equal(data.datasets["train"].targets, torch.arange(30) % 3)
    assert data.relabeled_indices.tolist() == [] and data.noisy_indices.tolist() == []
    assert [r for r in caplog.records if r.name == "datamodules.base"] == []


def test_label_noise_is_logged_once_with_its_mode_and_counts(caplog):
    with caplog.at_level(logging.INFO, logger="datamodules.base"):
        data = noisy(40, label_noise=0.5, label_noise_mode="shuffle", seed=3)
        data.setup("test")
    (record,) = [r for r in caplog.records if r.name == "datamodules.base"]
    assert record.getMessage() == (
        f"IndexData: label_noise=0.5 (shuffle) relabeled 20 of 40 training samples and changed "
        f"{len(data.noisy_indices)} labels (seed 3); their indices are in `relabeled_indices` and `noisy_indices`")


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"label_noise": 1.5}, r"`label_noise` must be a number in \[0, 1\], got 1.5"),
    ({"label_noise": -0.1}, r"`label_noise` must be a number in \[0, 1\], got -0.1"),
    ({"label_noise": True}, r"`label_noise` must be a number in \[0, 1\], got True"),
    ({"label_noise": "0.5"}, r"`label_noise` must be a number in \[0, 1\], got '0.5'"),
    ({"label_noise_mode": "permute"},
     r"`label_noise_mode` must be one of \['other_class', 'shuffle'\], got 'permute'"),
    ({"label_noise_mode": ["shuffle"]},
     r"`label_noise_mode` must be one of \['other_class', 'shuffle'\], got \['shuffle'\]"),
])
def test_bad_label_noise_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        IndexData(**kwargs)


class Regression(InMemoryDataModule):
    input_size = 1
    output_size = 1

    def load_splits(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        x = torch.linspace(0, 1, 8).unsqueeze(1)
        return {"train": (x, 2 * x), "val": (x, 2 * x), "test": (x, 2 * x)}


def test_label_noise_on_regression_targets_is_refused_and_zero_leaves_them_alone():
    plain = Regression()
    plain.setup()
    assert torch.equal(plain.datasets["train"].targets, 2 * torch.linspace(0, 1, 8).unsqueeze(1))
    assert plain.noisy_indices is None and plain.clean_train_targets is None
    with pytest.raises(ValueError, match=r"`label_noise`=0.5 relabels classes, but Regression has regression "
                                         r"targets; leave it at 0"):
        Regression(label_noise=0.5).setup()
