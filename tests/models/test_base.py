"""``RegularizedModule``'s checkpoint hooks: the model class and the RNG state travel in the checkpoint."""

import pytest
import torch
from pytorch_lightning.trainer.states import TrainerFn

from lit_reg.models import DenseRegressor


def rand_after_loading(model: DenseRegressor, checkpoint: dict) -> torch.Tensor:
    torch.manual_seed(0)  # the state a fresh process would have
    model.on_load_checkpoint(checkpoint)
    return torch.rand(3)


def test_rng_state_is_restored_when_a_fit_resumes_and_only_then(make_trainer):
    model = DenseRegressor(hidden_sizes=[2])
    torch.manual_seed(123)
    checkpoint: dict = {}
    model.on_save_checkpoint(checkpoint)
    continued = torch.rand(3)  # what the saved run drew next
    assert checkpoint["lit_reg"]["model_class"] == "DenseRegressor"
    torch.manual_seed(0)
    fresh = torch.rand(3)

    trainer = make_trainer()
    model._trainer = trainer
    trainer.state.fn = TrainerFn.FITTING
    assert torch.equal(rand_after_loading(model, checkpoint), continued)
    for fn in (TrainerFn.VALIDATING, TrainerFn.TESTING, TrainerFn.PREDICTING):
        trainer.state.fn = fn
        assert torch.equal(rand_after_loading(model, checkpoint), fresh), fn
    model._trainer = None  # load_from_checkpoint: no trainer
    assert torch.equal(rand_after_loading(model, checkpoint), fresh)


def test_a_checkpoint_without_lit_reg_state_loads(make_trainer):
    """A checkpoint saved by plain Lightning code has no ``lit_reg`` entry: nothing to check or restore."""
    model = DenseRegressor(hidden_sizes=[2])
    model._trainer = make_trainer()
    model._trainer.state.fn = TrainerFn.FITTING
    torch.manual_seed(0)
    fresh = torch.rand(3)
    assert torch.equal(rand_after_loading(model, {}), fresh)


def test_a_checkpoint_of_another_class_is_refused():
    with pytest.raises(ValueError, match=r"^the checkpoint was saved by DenseClassifier, not DenseRegressor"):
        DenseRegressor(hidden_sizes=[2]).on_load_checkpoint({"lit_reg": {"model_class": "DenseClassifier"}})
