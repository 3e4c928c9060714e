"""One place for a model's arguments: the base's options reach every model, its help, hparams and checkpoints."""

import inspect

import pytest
import pytorch_lightning as pl
import torch
from jsonargparse import ArgumentParser

from lit_reg.cli import build_cli
from lit_reg.models import BitmojiClassifier, DenseClassifier, DenseRegressor, RegularizedModule

MODELS = [DenseClassifier, DenseRegressor, BitmojiClassifier]
BASE = inspect.signature(RegularizedModule.__init__).parameters
BASE_OPTIONS = [name for name, p in BASE.items() if p.default is not p.empty]

#: the hyperparameters DenseClassifier's checkpoints held before its signature passed the base's options on
CHECKPOINT_KEYS_BEFORE = [
    "input_size", "num_classes", "hidden_sizes", "activation", "dropout", "batchnorm", "optimizer", "lr",
    "weight_decay", "momentum", "nesterov", "l1_penalty", "l2_penalty", "penalize_all_parameters", "lr_scheduler",
    "lr_scheduler_kwargs", "init", "label_smoothing",
]


@pytest.mark.parametrize("model_class", MODELS)
def test_a_model_names_only_the_base_options_whose_default_it_changes(model_class):
    """A base option repeated with the base's own default would be a second place to edit."""
    own = inspect.signature(model_class.__init__).parameters
    repeated = [name for name in BASE_OPTIONS if name in own and own[name].default == BASE[name].default]
    assert repeated == []
    assert any(p.kind is p.VAR_KEYWORD for p in own.values())


@pytest.mark.parametrize("model_class", MODELS)
def test_every_base_option_is_accepted_and_saved(model_class):
    model = model_class(input_size=4, hidden_sizes=[3], lr=0.02, l2_penalty=0.5, lr_scheduler="step",
                        lr_scheduler_kwargs={"step_size": 2})
    assert set(BASE_OPTIONS) <= set(model_class.accepted_arguments())
    assert sorted(model.hparams) == sorted(model_class.accepted_arguments())
    assert (model.hparams.lr, model.hparams.l2_penalty, model.hparams.lr_scheduler_kwargs) == (0.02, 0.5,
                                                                                               {"step_size": 2})
    rebuilt = model_class(**model.hparams)
    assert dict(rebuilt.hparams) == dict(model.hparams)
    assert [p.shape for p in rebuilt.parameters()] == [p.shape for p in model.parameters()]


def test_derived_arguments_stay_out_of_the_hyperparameters():
    assert "output_size" not in DenseClassifier(hidden_sizes=[2]).hparams
    assert "output_size" not in BitmojiClassifier(hidden_sizes=[2]).hparams
    assert DenseRegressor(hidden_sizes=[2], output_size=3).hparams.output_size == 3


def test_each_model_keeps_its_own_defaults():
    assert DenseRegressor().hparams.activation == "leaky_relu"
    assert (BitmojiClassifier().hparams.activation, BitmojiClassifier().hparams.dropout) == ("leaky_relu", 0.1)
    assert (DenseClassifier().hparams.activation, DenseClassifier().hparams.dropout) == ("relu", 0.0)
    assert DenseClassifier().hparams.optimizer == "adam"


def test_an_unknown_argument_is_refused():
    with pytest.raises(TypeError, match="not_an_option"):
        DenseClassifier(not_an_option=1)


def test_a_checkpoint_with_the_earlier_hyperparameters_loads(tmp_path):
    model = DenseClassifier(input_size=6, num_classes=3, hidden_sizes=[5], dropout=0.2, optimizer="sgd", momentum=0.9)
    hparams = {key: model.hparams[key] for key in CHECKPOINT_KEYS_BEFORE}
    path = tmp_path / "before.ckpt"
    torch.save({"state_dict": model.state_dict(), "hyper_parameters": hparams,
                "pytorch-lightning_version": pl.__version__}, path)
    loaded = DenseClassifier.load_from_checkpoint(path)
    added_since = {key: BASE[key].default for key in model.hparams if key not in CHECKPOINT_KEYS_BEFORE}
    assert dict(loaded.hparams) == {**hparams, **added_since}
    pairs = zip(loaded.state_dict().values(), model.state_dict().values(), strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)


@pytest.mark.parametrize("model_class", MODELS)
def test_the_parser_sees_every_option_with_the_model_default(model_class):
    """What ``lit-reg fit --model.help`` lists: jsonargparse follows ``**kwargs`` into the base's signature."""
    parser = ArgumentParser()
    parser.add_class_arguments(model_class, "model")
    defaults = parser.get_defaults().model.as_dict()
    own = inspect.signature(model_class).parameters
    expected = {name: own[name].default if name in own else BASE[name].default
                for name in model_class.accepted_arguments()}
    assert {name: defaults[name] for name in expected} == expected
    assert set(defaults) == set(expected)


def test_model_help_lists_the_base_options_with_their_descriptions(capsys):
    with pytest.raises(SystemExit):
        build_cli(["fit", "--model.help", "BitmojiClassifier"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "--model.l2_penalty L2_PENALTY λ2 >= 0 of the loss term" in help_text
    assert "--model.dropout DROPOUT, --model.dropout+ DROPOUT one rate in [0, 1)" in help_text
    assert "default: 0.1" in help_text and "--model.classes" in help_text
