"""The optimizers by name and their own arguments (``optimizer_kwargs``)."""

import pytest
import torch
import yaml

from lit_reg.cli import build_cli
from lit_reg.models import DenseClassifier, DenseRegressor

QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


def built_optimizer(**model_kwargs) -> torch.optim.Optimizer:
    return DenseRegressor(hidden_sizes=[4], **model_kwargs).configure_optimizers()


def test_adamax_is_torch_adamax_with_lr_and_weight_decay():
    optimizer = built_optimizer(optimizer="adamax", lr=0.02, weight_decay=0.1)
    assert type(optimizer) is torch.optim.Adamax
    group = optimizer.param_groups[0]
    assert (group["lr"], group["weight_decay"], group["betas"], group["foreach"]) == (0.02, 0.1, (0.9, 0.999), True)


def test_adamax_trains(make_trainer):
    from datamodules import ToyRegressionDataModule

    model = DenseRegressor(hidden_sizes=[4], optimizer="adamax", lr=0.05)
    before = [p.detach().clone() for p in model.parameters()]
    make_trainer(max_epochs=2, limit_val_batches=0).fit(model, datamodule=ToyRegressionDataModule("linear",
                                                                                                  batch_size=5))
    assert type(model.trainer.optimizers[0]) is torch.optim.Adamax
    assert all(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    assert model.trainer.optimizers[0].state[next(model.parameters())]["step"] == 4  # 2 epochs of 2 batches


@pytest.mark.parametrize(("optimizer", "kwargs", "expected"), [
    ("adam", {"betas": [0.8, 0.99], "eps": 1e-6, "amsgrad": True}, {"betas": (0.8, 0.99), "eps": 1e-6,
                                                                     "amsgrad": True}),
    ("adamw", {"betas": [0.5, 0.9]}, {"betas": (0.5, 0.9), "eps": 1e-8}),
    ("adamax", {"betas": (0.7, 0.95), "eps": 1e-4}, {"betas": (0.7, 0.95), "eps": 1e-4}),
    ("rmsprop", {"alpha": 0.9, "centered": True}, {"alpha": 0.9, "centered": True, "momentum": 0.0}),
    ("adagrad", {"lr_decay": 1e-3, "initial_accumulator_value": 0.1}, {"lr_decay": 1e-3,
                                                                       "initial_accumulator_value": 0.1}),
    ("sgd", {"dampening": 0.1}, {"dampening": 0.1, "nesterov": False}),
])
def test_optimizer_kwargs_reach_the_param_groups(optimizer, kwargs, expected):
    group = built_optimizer(optimizer=optimizer, lr=0.03, optimizer_kwargs=kwargs).param_groups[0]
    assert {key: group[key] for key in expected} == expected
    assert group["lr"] == 0.03  # lr still comes from its own argument


def test_betas_from_a_list_reach_torch_as_a_tuple_and_stay_a_list_in_the_hyperparameters():
    model = DenseRegressor(hidden_sizes=[4], optimizer_kwargs={"betas": [0.9, 0.99]})
    assert model.configure_optimizers().param_groups[0]["betas"] == (0.9, 0.99)
    assert model.hparams.optimizer_kwargs == {"betas": [0.9, 0.99]}
    rebuilt = DenseRegressor(**model.hparams)
    assert rebuilt.configure_optimizers().param_groups[0]["betas"] == (0.9, 0.99)


def test_fused_replaces_foreach_and_foreach_can_be_turned_off():
    fused = built_optimizer(optimizer="adam", optimizer_kwargs={"fused": True}).param_groups[0]
    assert fused["fused"] is True and not fused["foreach"]
    plain = built_optimizer(optimizer="adam", optimizer_kwargs={"foreach": False}).param_groups[0]
    assert plain["foreach"] is False
    assert built_optimizer(optimizer="adam").param_groups[0]["foreach"] is True


@pytest.mark.parametrize(("model_kwargs", "message"), [
    ({"optimizer_kwargs": {"lr": 0.1}},
     r"^`optimizer_kwargs` sets \['lr'\], which lit_reg sets from its own argument: pass `lr` instead"),
    ({"optimizer_kwargs": {"weight_decay": 0.1, "eps": 1e-3}},
     r"^`optimizer_kwargs` sets \['weight_decay'\], .*: pass `weight_decay` instead"),
    ({"optimizer": "sgd", "optimizer_kwargs": {"momentum": 0.9, "nesterov": True}},
     r"^`optimizer_kwargs` sets \['momentum', 'nesterov'\], .*: pass `momentum`, `nesterov` instead"),
    ({"optimizer_kwargs": {"momentum": 0.9}}, r"^`optimizer_kwargs` sets \['momentum'\]"),  # even where not taken
    ({"optimizer_kwargs": {"beta": [0.9, 0.99], "eps": 1e-7}},
     r"^`optimizer_kwargs` has \['beta'\], which optimizer='adam' \(Adam\) does not take; it takes \['betas', 'eps', "
     r"'amsgrad', .*\]$"),
    ({"optimizer": "rmsprop", "optimizer_kwargs": {"betas": [0.9, 0.99]}},
     r"^`optimizer_kwargs` has \['betas'\], which optimizer='rmsprop' \(RMSprop\) does not take; it takes \['alpha', "),
    ({"optimizer_kwargs": {"params": []}}, r"^`optimizer_kwargs` has \['params'\]"),
    ({"optimizer_kwargs": {"betas": [1.5, 0.99]}},
     r"^`optimizer_kwargs` \{'betas': \[1\.5, 0\.99\]\} refused by optimizer='adam' \(Adam\): Invalid beta parameter "
     r"at index 0: 1\.5$"),
    ({"optimizer_kwargs": {"eps": "small"}}, r"^`optimizer_kwargs` \{'eps': 'small'\} refused by optimizer='adam'"),
    ({"optimizer_kwargs": [("eps", 1e-3)]}, r"^`optimizer_kwargs` must be a dict of the optimizer's arguments"),
], ids=["lr", "weight_decay", "momentum and nesterov", "momentum with adam", "unknown key", "adam key for rmsprop",
        "params", "beta out of range", "eps not a number", "not a dict"])
def test_bad_optimizer_kwargs_raise_naming_the_argument(model_kwargs, message):
    with pytest.raises(ValueError, match=message):
        DenseClassifier(hidden_sizes=[4], **model_kwargs)


def test_optimizer_kwargs_and_warmup_from_the_command_line(in_tmp_dir):
    """jsonargparse takes the JSON dict; the run trains with it and saves it as written (a list, not a tuple)."""
    cli = build_cli(["fit", "--model", "DenseRegressor", "--data", "ToyRegressionDataModule", "--data.dataset",
                     "linear", "--data.batch_size", "5", "--model.hidden_sizes", "[4]", "--model.optimizer", "adamax",
                     "--model.optimizer_kwargs", '{"betas": [0.9, 0.99], "eps": 1e-7}', "--model.lr_warmup", "1",
                     "--trainer.max_epochs", "2", *QUIET])
    assert cli.model.hparams.optimizer_kwargs == {"betas": [0.9, 0.99], "eps": 1e-7}
    group = cli.trainer.optimizers[0].param_groups[0]
    assert type(cli.trainer.optimizers[0]) is torch.optim.Adamax
    assert (group["betas"], group["eps"], group["lr"]) == ((0.9, 0.99), 1e-7, 1e-3)  # warmed up to lr
    run = in_tmp_dir / "logs" / "DenseRegressor" / "version_0"
    saved = yaml.safe_load((run / "hparams.yaml").read_text())
    assert (saved["optimizer_kwargs"], saved["lr_warmup"]) == ({"betas": [0.9, 0.99], "eps": 1e-7}, 1)


def test_unknown_optimizer_lists_adamax():
    with pytest.raises(ValueError, match=r"`optimizer` must be one of \['adagrad', 'adam', 'adamax', 'adamw', "
                                         r"'rmsprop', 'sgd'\], got 'lbfgs'"):
        DenseRegressor(optimizer="lbfgs")
