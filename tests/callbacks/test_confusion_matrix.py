import csv
import math
from types import SimpleNamespace

import pytest
import torch
from matplotlib.colors import to_rgba
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from lit_reg.callbacks.confusion_matrix import ConfusionMatrix
from lit_reg.callbacks.split_predictions import SplitPredictions
from lit_reg.models import BitmojiClassifier, DenseClassifier
from tests.helpers import figures
from tests.helpers.figures import assert_png, bitmoji, fashion, outputs_of
from tests.helpers.figures import fit_logged as fit


def counted_by_hand(model, datamodule, split, binary=False):
    logits, targets = outputs_of(model, datamodule, split)
    preds = (logits.sigmoid() > 0.5).long() if binary else logits.argmax(dim=1)
    classes = len(datamodule.classes)
    return torch.bincount(targets * classes + preds, minlength=classes * classes).view(classes, classes)


def read_csv(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_multiclass_matrix_csv_text_and_figure(tmp_path, make_trainer, fashion_root):
    torch.manual_seed(0)
    model = DenseClassifier(input_size=784, num_classes=10, hidden_sizes=[16])
    dm = fashion(fashion_root)
    matrix = ConfusionMatrix()
    trainer = fit(tmp_path, make_trainer, model, dm, [matrix])
    run = tmp_path / "run" / "version_0"

    for stage in ("val", "test"):
        expected = counted_by_hand(model, dm, stage)
        assert torch.equal(matrix.matrix[stage], expected)
        assert int(matrix.matrix[stage].sum()) == len(dm.datasets[stage])
        assert matrix.accuracy[stage] == pytest.approx(expected.diagonal().sum().item() / len(dm.datasets[stage]))
        assert matrix.plot_paths[stage] == run / f"confusion_matrix_{stage}.png"
        assert matrix.csv_paths[stage] == run / f"per_class_accuracy_{stage}.csv"
        rows = read_csv(matrix.csv_paths[stage])
        assert [row["class"] for row in rows] == dm.classes
        for label, row in enumerate(rows):
            count, correct = expected[label].sum().item(), expected[label, label].item()
            assert (int(row["count"]), int(row["correct"])) == (count, correct)
            if count:
                assert float(row["accuracy"]) == pytest.approx(correct / count)
            else:  # the 20 validation images miss a class
                assert row["accuracy"] == "nan"
    assert_png(matrix.plot_paths["test"], matrix.last_figure)

    # the figure: class names on both axes, the count in every cell
    axes = matrix.last_figure.axes[0]
    assert [t.get_text() for t in axes.get_xticklabels()] == dm.classes
    assert [t.get_text() for t in axes.get_yticklabels()] == dm.classes
    assert (axes.get_xlabel(), axes.get_ylabel()) == ("predicted class", "true class")
    cells = [int(t.get_text()) for t in axes.texts]
    assert cells == matrix.matrix["test"].flatten().tolist()
    assert "run/version_0" in axes.get_title()

    events = EventAccumulator(trainer.log_dir, size_guidance={"images": 0, "tensors": 0})
    events.Reload()
    tags = events.Tags()
    assert {"confusion_matrix/val", "confusion_matrix/test"} <= set(tags["images"])
    text_tags = [tag for tag in tags["tensors"] if tag.startswith("per_class_accuracy/")]
    assert sorted(tag.split("/")[1] for tag in text_tags) == ["test", "val"]
    logged = events.Tensors(next(t for t in text_tags if "/val" in t))[0].tensor_proto.string_val[0].decode()
    assert logged == matrix.table("val") and f"| {dm.classes[0]} |" in logged


def test_binary_one_logit_model(tmp_path, make_trainer):
    torch.manual_seed(0)
    dm = bitmoji(tmp_path, {"not_tom": 24, "tom": 12})
    model = BitmojiClassifier(input_size=144, hidden_sizes=[4], classes=dm.classes)
    matrix = ConfusionMatrix(stages=["test"])
    fit(tmp_path, make_trainer, model, dm, [matrix])
    assert list(matrix.matrix) == ["test"]
    assert torch.equal(matrix.matrix["test"], counted_by_hand(model, dm, "test", binary=True))
    assert matrix.matrix["test"].sum(dim=1).tolist() == [24, 12]
    assert [row["class"] for row in read_csv(matrix.csv_paths["test"])] == ["not_tom", "tom"]


def test_normalized_plot_shows_shares_of_each_true_class_but_matrix_keeps_counts(tmp_path, make_trainer,
                                                                                  fashion_root):
    torch.manual_seed(0)
    matrix = ConfusionMatrix(normalize=True, stages=["val"], figsize=(6.4, 4.8))
    fit(tmp_path, make_trainer, DenseClassifier(input_size=784, num_classes=10, hidden_sizes=[8]),
        fashion(fashion_root), [matrix], test=False)
    counts = matrix.matrix["val"]
    assert counts.dtype == torch.long
    cells = torch.tensor([float(t.get_text()) for t in matrix.last_figure.axes[0].texts]).view(10, 10)
    shares = counts / counts.sum(dim=1, keepdim=True).clamp(min=1)
    assert torch.allclose(cells, shares.float(), atol=0.006)
    with Image.open(matrix.plot_paths["val"]) as image:
        assert image.size == (640, 480)


def test_a_class_without_samples_has_nan_accuracy():
    rows = ConfusionMatrix.per_class_rows(torch.tensor([[2, 1, 0], [0, 0, 0], [1, 0, 4]]), ["a", "b", "c"])
    assert [(r["count"], r["correct"]) for r in rows] == [(3, 2), (0, 0), (5, 4)]
    assert rows[0]["accuracy"] == pytest.approx(2 / 3) and math.isnan(rows[1]["accuracy"])


def test_regression_gives_one_warning_and_nothing_written(tmp_path, make_trainer):
    matrix = ConfusionMatrix()
    ours = figures.regression_warnings(tmp_path, make_trainer, matrix)
    assert len(ours) == 1 and "needs class labels" in ours[0]
    assert matrix.matrix == {} and matrix.last_figure is None
    assert not list(tmp_path.rglob("confusion_matrix_*.png")) and not list(tmp_path.rglob("*.csv"))


def test_works_without_a_logger(tmp_path, make_trainer, fashion_root):
    matrix = ConfusionMatrix(stages=["val"])
    trainer = make_trainer(max_epochs=1, callbacks=[matrix])
    trainer.fit(DenseClassifier(input_size=784, num_classes=10, hidden_sizes=[4]), datamodule=fashion(fashion_root))
    assert matrix.plot_paths["val"] == tmp_path / "confusion_matrix_val.png"
    assert (tmp_path / "per_class_accuracy_val.csv").is_file()


def test_training_result_is_unchanged(make_trainer, fashion_root):
    figures.assert_training_unchanged(make_trainer, lambda: fashion(fashion_root), ConfusionMatrix())


def test_nothing_runs_per_training_step():
    figures.assert_no_hooks(ConfusionMatrix, extra=["on_validation_batch_end"])


@pytest.mark.parametrize("kwargs, message", [
    (dict(stages="val"), "`stages` must be a non-empty subset"),
    (dict(batch_size=-1), "`batch_size` must be a positive integer"),
    (dict(figsize=(6.4,)), "`figsize` must be None or two positive sizes"),
])
def test_arguments_are_checked(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ConfusionMatrix(**kwargs)


def test_validate_reports_the_validation_split(tmp_path, make_trainer, fashion_root):
    model = DenseClassifier(input_size=784, num_classes=10, hidden_sizes=[4])
    dm = fashion(fashion_root)
    matrix = ConfusionMatrix()
    make_trainer(callbacks=[matrix]).validate(model, datamodule=dm, verbose=False)
    assert list(matrix.matrix) == ["val"] and torch.equal(matrix.matrix["val"], counted_by_hand(model, dm, "val"))
    assert matrix.plot_paths["val"] == tmp_path / "confusion_matrix_val.png"


def collected(targets, preds, classes, split="val", stage="val", **kwargs):
    """A ConfusionMatrix that collected ``preds`` against ``targets`` of ``split``, without a model or a fit."""
    targets, preds = torch.tensor(targets, dtype=torch.long), torch.tensor(preds, dtype=torch.long)
    probs = torch.nn.functional.one_hot(preds, len(classes)).float()
    matrix = ConfusionMatrix(**kwargs)
    matrix.collect(stage, SplitPredictions(split, probs, preds, targets, classes, False), datamodule=None)
    return matrix


def test_counts_figure_cells_colour_scale_and_slanted_class_names():
    matrix = collected([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 2, 0], ["ant", "bee", "cat"])
    assert matrix.matrix["val"].tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
    figure = matrix.plot("val")
    axes = figure.axes[0]
    image = axes.images[0]
    assert image.get_clim() == (0, 2) and image.colorbar.ax.get_ylabel() == "samples"
    # the count centred in every cell, white only where the cell is dark (above 0.6 of the largest count)
    assert [t.get_text() for t in axes.texts] == ["1", "1", "0", "0", "1", "0", "1", "0", "2"]
    assert {(t.get_ha(), t.get_va()) for t in axes.texts} == {("center", "center")}
    assert [to_rgba(t.get_color()) for t in axes.texts] == [to_rgba("black")] * 8 + [to_rgba("white")]
    # three or more class names are slanted and end under their column
    assert [(t.get_text(), t.get_rotation(), t.get_ha()) for t in axes.get_xticklabels()] == [
        ("ant", 45, "right"), ("bee", 45, "right"), ("cat", 45, "right")]
    assert axes.get_title().startswith(f"Confusion matrix (counts), val split: accuracy {4 / 6:.3f} of 6\n")


def test_normalized_figure_of_two_classes_has_a_unit_scale_and_upright_class_names():
    matrix = collected([0, 0, 0, 1], [0, 0, 1, 1], ["no", "yes"], normalize=True)
    axes = matrix.plot("val").axes[0]
    image = axes.images[0]
    assert image.get_clim() == (0, 1) and image.colorbar.ax.get_ylabel() == "share of the true class"
    assert [t.get_text() for t in axes.texts] == ["0.67", "0.33", "0.00", "1.00"]
    assert [(t.get_text(), t.get_rotation(), t.get_ha()) for t in axes.get_xticklabels()] == [
        ("no", 0, "center"), ("yes", 0, "center")]
    assert axes.get_title().startswith("Confusion matrix (shares of each true class), val split: accuracy 0.750")


def test_title_names_the_split_evaluated_and_an_empty_split_has_nan_accuracy():
    matrix = collected([], [], ["a", "b"], split="test_rotated", stage="test")
    assert matrix.matrix["test"].tolist() == [[0, 0], [0, 0]] and math.isnan(matrix.accuracy["test"])
    assert "test_rotated split: accuracy nan of 0" in matrix.plot("test").axes[0].get_title()


def test_csv_has_no_blank_rows_where_text_files_end_lines_with_crlf(tmp_path, monkeypatch):
    """csv writes its own \\r\\n line ends: the file is opened without newline translation, which on Windows
    (simulated here) would turn them into \\r\\r\\n, a blank row after every row in a spreadsheet."""
    import builtins

    import lit_reg.callbacks.confusion_matrix as module

    def windows_open(file, mode="r", newline=None, **kwargs):
        return builtins.open(file, mode, newline="\r\n" if newline is None else newline, **kwargs)

    monkeypatch.setattr(module, "open", windows_open, raising=False)
    matrix = collected([0, 1], [0, 0], ["a", "b"])
    matrix.saved(SimpleNamespace(loggers=[], global_step=0), "val", tmp_path / "confusion_matrix_val.png")
    content = (tmp_path / "per_class_accuracy_val.csv").read_bytes()
    assert content == b"class,count,correct,accuracy\r\na,1,1,1.0\r\nb,1,0,0.0\r\n"
