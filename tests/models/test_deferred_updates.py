"""DeferredUpdates gives the value of immediate per-step updates, whenever it is computed."""

import pytest
import torch
from torchmetrics import MeanMetric, MetricCollection
from torchmetrics.classification import BinaryAccuracy, BinaryAUROC, MulticlassAccuracy
from torchmetrics.regression import R2Score

from lit_reg.models.base import deferred
from lit_reg.models.deferred_updates import DeferredUpdates


def batches(kind, n=7, size=16):
    generator = torch.Generator().manual_seed(0)
    for _ in range(n):
        if kind == "multiclass":
            yield torch.randn(size, 5, generator=generator), torch.randint(0, 5, (size,), generator=generator)
        elif kind == "binary":
            yield torch.rand(size, generator=generator), torch.randint(0, 2, (size,), generator=generator)
        elif kind == "regression":
            yield torch.randn(size, generator=generator), torch.randn(size, generator=generator)
        else:
            yield (torch.randn(size, generator=generator),)


@pytest.mark.parametrize(("make", "kind"), [
    (lambda: MulticlassAccuracy(num_classes=5, average="micro"), "multiclass"),
    (BinaryAUROC, "binary"),
    (R2Score, "regression"),
    (MeanMetric, "mean"),
])
def test_same_value_as_immediate_updates(make, kind):
    immediate, deferred = make(), DeferredUpdates(make(), every_n=3)
    for args in batches(kind):
        immediate.update(*args)
        deferred.defer(*args)
    assert deferred.pending == 1  # 7 steps: two flushes of 3, one step still pending
    torch.testing.assert_close(deferred.compute(), immediate.compute())
    assert deferred.pending == 0


def test_compute_sees_steps_deferred_after_an_earlier_compute():
    mean = DeferredUpdates(MeanMetric(), every_n=10)
    mean.defer(torch.tensor([1.0, 3.0]))
    assert mean.compute() == 2.0
    mean.defer(torch.tensor([8.0]))
    assert mean.compute() == 4.0


def test_reset_drops_what_is_pending():
    mean = DeferredUpdates(MeanMetric(), every_n=10)
    mean.defer(torch.tensor([100.0]))
    mean.reset()
    mean.update(torch.tensor([1.0]))  # the immediate path
    assert mean.pending == 0 and mean.compute() == 1.0


@pytest.mark.parametrize(("kwargs", "error", "message"), [
    ({"metric": torch.nn.Linear(1, 1)}, TypeError, "must be a torchmetrics Metric, got Linear"),
    ({"metric": MeanMetric(), "every_n": 0}, ValueError, "`every_n` must be a positive integer, got 0"),
])
def test_bad_arguments_raise(kwargs, error, message):
    with pytest.raises(error, match=message):
        DeferredUpdates(**kwargs)


def test_update_passes_keyword_arguments_on():
    """The immediate path is the wrapped metric's own ``update``, keyword arguments included."""
    wrapped = DeferredUpdates(MeanMetric())
    wrapped.update(torch.tensor([1.0, 3.0]), weight=torch.tensor([3.0, 1.0]))
    assert wrapped.compute().item() == pytest.approx(1.5)  # (1·3 + 3·1) / 4, not the unweighted 2.0


def test_deferred_names_each_metric_by_its_base_name_under_the_stage_prefix():
    collection = deferred(MetricCollection({"acc": BinaryAccuracy()}, prefix="custom_"), prefix="train_")
    assert list(collection.keys()) == ["train_acc"]
    assert isinstance(collection["acc"], DeferredUpdates)
