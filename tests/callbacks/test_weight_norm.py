import math

import pytest
import torch
from PIL import Image
from pytorch_lightning.loggers import TensorBoardLogger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch import nn

from datamodules import ToyRegressionDataModule
from lit_reg.callbacks import WeightNormMonitor, frobenius_norm
from lit_reg.callbacks.weight_norm import module_labels
from lit_reg.models import DenseRegressor


def test_fresh_linear_seeded_2021_has_the_lectures_norm():
    torch.manual_seed(2021)
    assert round(frobenius_norm(nn.Linear(10, 1)), 4) == 0.6572


def test_norm_is_the_root_of_the_sum_of_squares_over_all_parameters():
    model = DenseRegressor(hidden_sizes=[5, 3])
    by_hand = math.sqrt(sum((p.detach() ** 2).sum().item() for p in model.parameters()))
    assert frobenius_norm(model) == pytest.approx(by_hand, rel=1e-6)
    assert frobenius_norm(list(model.parameters())) == pytest.approx(by_hand, rel=1e-6)
    assert frobenius_norm(torch.tensor([[3.0, 4.0]])) == 5.0
    assert frobenius_norm([]) == 0.0


def test_frobenius_norm_is_one_root_over_all_parameters_not_a_sum_of_layer_norms():
    assert frobenius_norm([torch.tensor([3.0]), torch.tensor([4.0])]) == pytest.approx(5.0)  # not 3 + 4 = 7
    layer = nn.Linear(1, 1)
    with torch.no_grad():
        layer.weight.fill_(3.0)
        layer.bias.fill_(4.0)
    assert frobenius_norm(layer) == pytest.approx(5.0)  # weight and bias together, not 7
    two_layers = nn.Sequential(nn.Linear(1, 1, bias=False), nn.Linear(1, 1, bias=False))
    with torch.no_grad():
        two_layers[0].weight.fill_(-6.0)
        two_layers[1].weight.fill_(8.0)
    assert frobenius_norm(two_layers) == pytest.approx(10.0)  # not 14, and not 2 from signed values


def fit_with_monitor(tmp_path, make_trainer, epochs=3, **monitor_kwargs):
    torch.manual_seed(0)
    model = DenseRegressor(hidden_sizes=[8], lr=0.05)
    monitor = WeightNormMonitor(**monitor_kwargs)
    logger = TensorBoardLogger(str(tmp_path), name="run", default_hp_metric=False)
    trainer = make_trainer(max_epochs=epochs, logger=logger, callbacks=[monitor], limit_val_batches=0)
    trainer.fit(model, datamodule=ToyRegressionDataModule("linear", batch_size=5))
    accumulator = EventAccumulator(trainer.log_dir, size_guidance={"images": 0, "scalars": 0})
    accumulator.Reload()
    return model, monitor, trainer, accumulator


def test_event_file_holds_the_norm_scalars_and_the_chart(tmp_path, make_trainer):
    model, monitor, trainer, events = fit_with_monitor(tmp_path, make_trainer)
    tags = events.Tags()
    assert {"weight_norm/total", "weight_norm/net.0.weight", "weight_norm/net.0.bias",
            "weight_norm/net.2.weight"} <= set(tags["scalars"])
    totals = events.Scalars("weight_norm/total")
    assert [t.step for t in totals] == [0, 2, 4, 6]  # at the start, then after each epoch of 2 batches
    assert totals[-1].value == pytest.approx(frobenius_norm(model), rel=1e-5)
    assert events.Scalars("weight_norm/net.2.weight")[-1].value == pytest.approx(
        frobenius_norm(model.net[2].weight), rel=1e-5)
    assert "weight_norm/layers" in tags["images"]


def test_chart_is_a_png_of_the_expected_size_with_norms_before_and_after(tmp_path, make_trainer):
    model, monitor, trainer, _ = fit_with_monitor(tmp_path, make_trainer, figsize=(4, 3))
    assert monitor.plot_path == tmp_path / "run" / "version_0" / "weight_norms.png"
    with Image.open(monitor.plot_path) as image:
        assert image.format == "PNG" and image.size == (400, 300)
    assert list(monitor.initial_norms) == list(monitor.final_norms) == ["net.0", "net.2"]
    assert monitor.final_norms["net.2"] == pytest.approx(frobenius_norm(model.net[2]), rel=1e-6)
    assert monitor.initial_norms != monitor.final_norms


def test_chart_names_the_layers_for_what_they_are_and_the_title_gives_run_and_epochs(tmp_path, make_trainer):
    _, monitor, _, events = fit_with_monitor(tmp_path, make_trainer)
    axes = monitor.plot().axes[0]
    assert [t.get_text() for t in axes.get_xticklabels()] == ["Linear 1 (1→8)", "Linear 2 (8→1)"]
    assert "run/version_0" in axes.get_title() and "after 3 epochs" in axes.get_title()
    assert [t.get_text() for t in axes.get_legend().get_texts()] == ["before training", "after 3 epochs"]
    assert axes.get_ylabel().startswith("Frobenius norm") and axes.get_xlabel().startswith("layer")
    # the scalars keep the parameters' own names
    assert "weight_norm/net.0.weight" in events.Tags()["scalars"]
    assert not any("Linear" in tag for tag in events.Tags()["scalars"])


def test_batch_norm_layers_get_a_readable_label():
    model = DenseRegressor(hidden_sizes=[6, 4], batchnorm=True)
    labels = module_labels(model)
    assert list(labels.values()) == ["Linear 1 (1→6)", "BatchNorm 1 (6)", "Linear 2 (6→4)", "BatchNorm 2 (4)",
                                     "Linear 3 (4→1)"]
    assert set(labels) == {name.rpartition(".")[0] for name, _ in model.named_parameters()}  # every layer labelled


def test_works_without_a_logger(tmp_path, make_trainer):
    monitor = WeightNormMonitor()
    make_trainer(max_epochs=1, callbacks=[monitor]).fit(DenseRegressor(hidden_sizes=[4]),
                                                        datamodule=ToyRegressionDataModule("linear", batch_size=5))
    assert monitor.plot_path == tmp_path / "weight_norms.png" and monitor.plot_path.is_file()


def test_state_dict_keeps_the_initial_norms():
    monitor = WeightNormMonitor()
    monitor.initial_norms = {"net.0": 1.5}
    restored = WeightNormMonitor()
    restored.load_state_dict(monitor.state_dict())
    assert restored.initial_norms == {"net.0": 1.5}
    restored.load_state_dict({})
    assert restored.initial_norms == {}


def test_filename_must_be_a_png():
    with pytest.raises(ValueError, match=r"`filename` must end in '.png', got 'norms.jpg'"):
        WeightNormMonitor(filename="norms.jpg")


def test_history_pairs_each_logged_total_with_its_epoch_the_start_as_minus_one(tmp_path, make_trainer):
    _, monitor, _, events = fit_with_monitor(tmp_path, make_trainer)
    assert [epoch for epoch, _ in monitor.history] == [-1, 0, 1, 2]
    assert [total for _, total in monitor.history] == pytest.approx(
        [s.value for s in events.Scalars("weight_norm/total")], rel=1e-6)


def test_chart_puts_each_layers_before_and_after_bars_side_by_side_under_slanted_labels():
    monitor = WeightNormMonitor()
    monitor.initial_norms, monitor.final_norms = {"net.0": 1.0, "net.2": 2.0}, {"net.0": 3.0, "net.2": 0.5}
    monitor.layer_labels = {"net.0": "Linear 1 (1→8)", "net.2": "Linear 2 (8→1)"}
    axes = monitor.plot().axes[0]
    before, after = axes.containers
    for bars, offset, heights in ((before, -0.2, [1.0, 2.0]), (after, 0.2, [3.0, 0.5])):
        assert [bar.get_x() + bar.get_width() / 2 for bar in bars] == pytest.approx([offset, 1 + offset])
        assert [bar.get_width() for bar in bars] == pytest.approx([0.4, 0.4])  # touching, not overlapping
        assert [bar.get_height() for bar in bars] == heights
    labels = axes.get_xticklabels()
    assert [t.get_text() for t in labels] == ["Linear 1 (1→8)", "Linear 2 (8→1)"]
    assert [(t.get_rotation(), t.get_horizontalalignment()) for t in labels] == [(20, "right")] * 2
    assert list(axes.get_xticks()) == [0, 1]


def test_a_chart_drawn_mid_fit_names_layers_by_module_and_the_bars_after_training():
    monitor = WeightNormMonitor()
    monitor.initial_norms = {"net.0": 1.0}  # on_train_start ran, on_train_end not yet
    axes = monitor.plot().axes[0]
    assert [t.get_text() for t in axes.get_xticklabels()] == ["net.0"]
    assert [t.get_text() for t in axes.get_legend().get_texts()] == ["before training", "after training"]
