"""The fast data path (whole-batch index, fused normalization, device cache) against a plain per-sample one."""

import pytest
import torch

from datamodules import FashionMNISTDataModule
from datamodules.base import BatchTensorDataset
from tests.helpers.reference import reference_loader


@pytest.mark.parametrize("device_cache", [False, True])
def test_fast_batches_equal_per_sample_reference_in_order_and_value(fashion_root, device_cache):
    dm = FashionMNISTDataModule(str(fashion_root), batch_size=32, download=False, device_cache=device_cache)
    dm.setup()
    torch.manual_seed(3)
    fast = [dm.on_after_batch_transfer(batch, 0) for batch in dm.train_dataloader()]
    torch.manual_seed(3)
    reference = list(reference_loader(dm, "train", shuffle=True))
    assert len(fast) == len(reference) == 6
    for (x, y), (x_ref, y_ref) in zip(fast, reference, strict=True):
        assert torch.equal(y, y_ref)
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
