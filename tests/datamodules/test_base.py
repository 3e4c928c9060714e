"""The fast data path (whole-batch index, fused normalization, device cache) against a plain per-sample one, and
the training order: a function of the seed and the epoch only."""

import pytest
import pytorch_lightning as pl
import torch

from datamodules import FashionMNISTDataModule
from datamodules.base import (
    BatchTensorDataset,
    EpochRandomSampler,
    balanced_subset_indices,
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
