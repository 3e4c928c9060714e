from types import SimpleNamespace

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from lit_reg.callbacks.mistakes import Mistakes
from lit_reg.callbacks.split_predictions import SplitPredictions, evaluating, predict_split
from lit_reg.models import BitmojiClassifier, DenseClassifier, DenseRegressor
from tests.helpers import figures
from tests.helpers.figures import assert_png, bitmoji, fashion, outputs_of
from tests.helpers.figures import fit_logged as fit


def by_hand(model, datamodule, split, binary=False):
    """Probability of the predicted class and wrongness of every sample, computed without the callback's code."""
    logits, targets = outputs_of(model, datamodule, split)
    if binary:
        positive = logits.sigmoid()
        preds = (positive > 0.5).long()
        confidence = torch.where(preds.bool(), positive, 1 - positive)
    else:
        probs = logits.softmax(dim=1)
        confidence, preds = probs.max(dim=1)
    return preds, confidence, targets


def check_top_wrong(mistakes, stage, preds, confidence, targets, count):
    wrong = torch.nonzero(preds != targets).flatten().tolist()
    expected = sorted(wrong, key=lambda i: -confidence[i].item())[:count]
    chosen = mistakes.indices[stage].tolist()
    assert len(chosen) == min(count, len(wrong)) > 0
    assert all(preds[i] != targets[i] for i in chosen)  # every image shown is misclassified
    probabilities = mistakes.probabilities[stage]
    assert torch.all(probabilities[:-1] >= probabilities[1:])  # most confident first
    assert torch.allclose(probabilities, confidence[chosen], atol=1e-6)
    # the top-k wrong ones (compared by probability: ties may come in any order)
    assert torch.allclose(probabilities, confidence[expected], atol=1e-6)
    assert torch.equal(mistakes.predicted[stage], preds[chosen])
    assert torch.equal(mistakes.targets[stage], targets[chosen])
    assert mistakes.num_wrong[stage] == len(wrong) and mistakes.num_samples[stage] == len(targets)


def test_multiclass_val_and_test_show_the_most_confident_wrong_images(tmp_path, make_trainer, fashion_root):
    torch.manual_seed(0)
    model = DenseClassifier(input_size=784, num_classes=10, hidden_sizes=[16])
    dm = fashion(fashion_root)
    mistakes = Mistakes(count=6)
    trainer = fit(tmp_path, make_trainer, model, dm, [mistakes])

    for stage, split in (("val", "val"), ("test", "test")):
        check_top_wrong(mistakes, stage, *by_hand(model, dm, split), count=6)
        assert mistakes.plot_paths[stage] == tmp_path / "run" / "version_0" / f"mistakes_{stage}.png"
    assert_png(mistakes.plot_paths["test"], mistakes.last_figure)

    # the last figure is the test one: one image panel per shown mistake, titled with true and predicted label
    panels = [axes for axes in mistakes.last_figure.axes if axes.images]
    assert len(panels) == len(mistakes.indices["test"]) == 6
    first = mistakes.indices["test"][0].item()
    true, pred = dm.classes[dm.datasets["test"].targets[first]], dm.classes[mistakes.predicted["test"][0]]
    assert panels[0].get_title() == f"true: {true}\npred: {pred} ({mistakes.probabilities['test'][0]:.2f})"
    assert np.array_equal(panels[0].images[0].get_array(), dm.datasets["test"].inputs[first].numpy())
    assert "run/version_0" in mistakes.last_figure.get_suptitle()
    # titles start with a capital and name the split in words
    assert mistakes.last_figure.get_suptitle().startswith(
        f"Test split: the 6 most confidently wrong of {mistakes.num_samples['test']} images\n")
    assert mistakes.plot("val").get_suptitle().startswith(
        f"Validation split: the 6 most confidently wrong of {mistakes.num_samples['val']} images\n")

    events = EventAccumulator(trainer.log_dir, size_guidance={"images": 0})
    events.Reload()
    assert {"mistakes/val", "mistakes/test"} <= set(events.Tags()["images"])


def test_binary_one_logit_model_on_an_image_folder(tmp_path, make_trainer):
    torch.manual_seed(0)
    dm = bitmoji(tmp_path, {"not_tom": 24, "tom": 24})
    model = BitmojiClassifier(input_size=144, hidden_sizes=[4], classes=dm.classes)
    mistakes = Mistakes(count=5, stages=["test"])
    fit(tmp_path, make_trainer, model, dm, [mistakes])

    assert "val" not in mistakes.indices  # only the stages asked for
    preds, confidence, targets = by_hand(model, dm, "test", binary=True)
    if (preds == targets).all():
        pytest.skip("the tiny net classifies every image right")
    check_top_wrong(mistakes, "test", preds, confidence, targets, count=5)
    assert (mistakes.probabilities["test"] >= 0.5).all()  # the probability of the (wrong) predicted class
    title = [axes for axes in mistakes.last_figure.axes if axes.images][0].get_title()
    assert title.startswith("true: ") and ("pred: tom" in title or "pred: not_tom" in title)
    assert_png(mistakes.plot_paths["test"], mistakes.last_figure)


def test_a_rotated_test_split_is_the_one_evaluated(tmp_path, make_trainer, fashion_root):
    torch.manual_seed(0)
    model = DenseClassifier(input_size=784, num_classes=10, hidden_sizes=[8])
    dm = fashion(fashion_root, test_rotation=30)
    mistakes = Mistakes(count=4, stages=["test"])
    fit(tmp_path, make_trainer, model, dm, [mistakes])
    check_top_wrong(mistakes, "test", *by_hand(model, dm, "test_rotated"), count=4)
    assert mistakes.last_figure.get_suptitle().startswith("The test_rotated split: ")


def test_regression_data_gives_one_warning_and_no_figure(tmp_path, make_trainer):
    mistakes = Mistakes()
    ours = figures.regression_warnings(tmp_path, make_trainer, mistakes)
    assert len(ours) == 1 and "needs uint8 images" in ours[0]
    assert mistakes.plot_paths == {} and mistakes.last_figure is None
    assert not list(tmp_path.rglob("mistakes_*.png"))


def test_a_regressor_on_image_data_gives_one_warning(tmp_path, make_trainer, fashion_root):
    mistakes = Mistakes()
    with pytest.warns(UserWarning, match=r"Mistakes draws nothing: needs a classifier's logits") as caught:
        fit(tmp_path, make_trainer, DenseRegressor(input_size=784, hidden_sizes=[4]), fashion(fashion_root),
            [mistakes], test=False)
    assert len([w for w in caught if "Mistakes" in str(w.message)]) == 1
    assert mistakes.plot_paths == {}


def test_training_result_is_unchanged(make_trainer, fashion_root):
    figures.assert_training_unchanged(make_trainer, lambda: fashion(fashion_root, augment=True), Mistakes())


def test_nothing_runs_per_training_step():
    figures.assert_no_hooks(Mistakes, extra=["on_validation_batch_end"])


def test_predict_split_restores_modes_and_rng(fashion_root):
    model = DenseClassifier(input_size=784, num_classes=10, hidden_sizes=[8], dropout=0.5, batchnorm=True)
    model.train()
    model.net[1].eval()  # a submodule the user froze stays frozen
    dm = fashion(fashion_root)
    dm.setup()
    rng = torch.get_rng_state()
    predictions = predict_split(model, dm, "val", batch_size=7)  # several chunks
    assert torch.equal(torch.get_rng_state(), rng)
    assert model.training and not model.net[1].training and model.net[0].training
    with evaluating(model):
        assert not model.training and not model.net[0].training and not torch.is_grad_enabled()
    assert model.training and not model.net[1].training
    preds, confidence, targets = by_hand(model, dm, "val")
    assert torch.equal(predictions.preds, preds) and torch.allclose(predictions.confidence, confidence, atol=1e-6)
    assert torch.equal(predictions.targets, targets) and predictions.probs.shape == (len(targets), 10)


@pytest.mark.parametrize("kwargs, message", [
    (dict(count=0), "`count` must be a positive integer"),
    (dict(stages=["train"]), "`stages` must be a non-empty subset"),
    (dict(stages=[]), "`stages` must be a non-empty subset"),
    (dict(batch_size=0), "`batch_size` must be a positive integer"),
    (dict(panel_size=(0, 1)), "`panel_size` must be two positive sizes"),
])
def test_arguments_are_checked(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Mistakes(**kwargs)


def test_defaults_are_sixteen_images_and_batches_of_1024():
    mistakes = Mistakes()
    assert mistakes.count == 16 and mistakes.batch_size == 1024
    assert mistakes.stages == ("val", "test") and mistakes.panel_size == (1.8, 2.0)


def collected(mistakes, preds, targets):
    """``mistakes`` after collecting the val split of ``len(targets)`` 4x4 images predicted as ``preds``."""
    preds, targets = torch.tensor(preds), torch.tensor(targets)
    probs = torch.nn.functional.one_hot(preds, 2).float() * 0.5 + 0.25
    images = torch.arange(len(targets) * 16, dtype=torch.uint8).reshape(-1, 4, 4)
    datamodule = SimpleNamespace(datasets={"val": SimpleNamespace(inputs=images)})
    mistakes.collect("val", SplitPredictions("val", probs, preds, targets, ["a", "b"], False), datamodule)
    return mistakes


def test_a_split_without_mistakes_draws_a_centred_note_on_a_default_size_figure():
    figure = collected(Mistakes(), [0, 1, 1], [0, 1, 1]).plot("val")
    assert tuple(figure.get_size_inches()) == pytest.approx((6.4, 4.8))
    assert figure.get_suptitle().startswith("Validation split: none of 3 images\n")
    note = figure.axes[0].texts[0]
    assert note.get_text() == "no misclassified images"
    assert note.get_position() == (0.5, 0.5)
    assert note.get_horizontalalignment() == "center" and note.get_verticalalignment() == "center"


def test_the_figure_grows_with_the_panels_and_the_title_counts_the_mistakes():
    preds, targets = [1, 1, 1, 0, 0], [0, 0, 0, 0, 0]  # three wrong
    figure = collected(Mistakes(), preds, targets).plot("val")  # all three: a 2x2 grid of 1.8x2 inch panels
    assert figure.get_suptitle().startswith("Validation split: all 3 wrong of 5 images\n")
    assert tuple(figure.get_size_inches()) == pytest.approx((6.4, 2 * 2.0 + 0.6))
    figure = collected(Mistakes(count=2, panel_size=(4.0, 3.0)), preds, targets).plot("val")
    assert figure.get_suptitle().startswith("Validation split: the 2 most confidently wrong of 5 images\n")
    assert tuple(figure.get_size_inches()) == pytest.approx((2 * 4.0, 3.0 + 0.6))
