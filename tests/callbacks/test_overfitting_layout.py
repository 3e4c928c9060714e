import json
import re
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import warnings

import pytest
import torch
from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger
from torch import nn

from datamodules import FashionMNISTDataModule
from lit_reg.callbacks import WeightNormMonitor
from lit_reg.callbacks.overfitting_layout import OverfittingLayout, exact_tag
from lit_reg.callbacks.step_curves import StepCurves
from lit_reg.callbacks.weight_histograms import WeightHistograms
from lit_reg.models import BitmojiClassifier, DenseClassifier, DenseRegressor

CLASSIFIER_CHARTS = {"loss: train vs validation": ["Multiline", ["train_loss$", "val_loss$"]],
                     "acc: train vs validation": ["Multiline", ["train_acc$", "val_acc$"]]}


def test_charts_pair_every_metric_the_model_logs_for_both_stages():
    assert OverfittingLayout().charts(DenseClassifier(input_size=4, num_classes=3, hidden_sizes=[2])) == \
        CLASSIFIER_CHARTS
    regressor = OverfittingLayout().charts(DenseRegressor(hidden_sizes=[2]))
    assert list(regressor) == ["loss: train vs validation", "mae: train vs validation", "r2: train vs validation"]
    assert regressor["r2: train vs validation"] == ["Multiline", ["train_r2$", "val_r2$"]]
    binary = OverfittingLayout().charts(BitmojiClassifier(input_size=4, hidden_sizes=[2]))
    assert list(binary) == list(CLASSIFIER_CHARTS)  # val_f1 and val_auroc have no training counterpart


def test_penalized_models_also_draw_the_data_loss_and_callbacks_add_their_charts():
    model = DenseClassifier(input_size=4, num_classes=3, hidden_sizes=[2], l1_penalty=1e-4)
    charts = OverfittingLayout(extra_charts={"learning rate": ["lr"]}).charts(
        model, [WeightNormMonitor(), WeightHistograms()])
    assert charts == {"loss: train vs validation": ["Multiline", ["train_loss$", "train_data_loss$", "val_loss$"]],
                      "acc: train vs validation": CLASSIFIER_CHARTS["acc: train vs validation"],
                      "weight norm": ["Multiline", ["weight_norm/total$"]],
                      "weight sparsity": ["Multiline", ["weight_sparsity/total$"]],
                      "learning rate": ["Multiline", ["lr$"]]}
    l2_only = DenseClassifier(input_size=4, num_classes=3, hidden_sizes=[2], l2_penalty=1e-4)
    assert OverfittingLayout().charts(l2_only)["loss: train vs validation"][1] == [
        "train_loss$", "train_data_loss$", "val_loss$"]


def test_given_metrics_and_modules_that_do_not_say_what_they_log():
    assert list(OverfittingLayout().charts(nn.Linear(2, 2))) == list(CLASSIFIER_CHARTS)
    assert list(OverfittingLayout(metrics=["mae"]).charts(DenseRegressor(hidden_sizes=[2]))) == [
        "mae: train vs validation"]


def test_tag_patterns_match_the_whole_tag_only():
    pattern = re.compile(exact_tag("train_loss"))
    assert pattern.match("train_loss") and not pattern.match("train_loss_step") and not pattern.match("train_lossy")
    assert re.compile(exact_tag("weight_norm/total")).match("weight_norm/total")
    assert not re.compile(exact_tag("a.b")).match("aXb")


def fit(tmp_path, fashion_root, make_trainer, callbacks, logger=None):
    torch.manual_seed(0)
    model = DenseClassifier(hidden_sizes=[16], lr=0.01, dropout=0.3)
    trainer = make_trainer(max_epochs=2, logger=logger if logger is not None else False, callbacks=callbacks)
    trainer.fit(model, datamodule=FashionMNISTDataModule(str(fashion_root), batch_size=32, download=False))
    return model, trainer


class TensorBoardServer:
    """A real TensorBoard on 127.0.0.1 (a free port of its choosing) serving ``logdir``, stopped on exit."""

    def __init__(self, logdir, stderr_path) -> None:
        self.logdir, self.stderr_path = str(logdir), stderr_path

    def __enter__(self) -> "TensorBoardServer":
        self._stderr = open(self.stderr_path, "w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tensorboard.main", "--logdir", self.logdir, "--host", "127.0.0.1", "--port", "0",
             "--load_fast", "false", "--reload_interval", "1"],
            stdout=subprocess.DEVNULL, stderr=self._stderr)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            found = re.search(r"http://127\.0\.0\.1:\d+/", self.stderr_path.read_text())
            if found:
                self.url = found.group(0)
                return self
            assert self.process.poll() is None, self.stderr_path.read_text()
            time.sleep(0.1)
        self.__exit__()
        raise TimeoutError(f"TensorBoard did not start: {self.stderr_path.read_text()}")

    def get(self, route: str, until=bool, **params):
        """GET ``route`` as JSON, again until ``until(answer)`` (TensorBoard reads the logdir in the background)."""
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        deadline = time.monotonic() + 10
        while True:
            with urllib.request.urlopen(self.url + route + query, timeout=5) as response:
                answer = json.load(response)
            if until(answer) or time.monotonic() > deadline:
                return answer
            time.sleep(0.2)

    def __exit__(self, *exc_info) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._stderr.close()


def test_tensorboard_serves_the_layout_and_its_charts_draw_train_and_validation(tmp_path, fashion_root,
                                                                                make_trainer):
    layout = OverfittingLayout()
    logger = TensorBoardLogger(str(tmp_path / "logs"), name="clf", default_hp_metric=False)
    with warnings.catch_warnings():  # StepCurves, for the tags train_loss_step...; it may warn about the accuracy
        warnings.simplefilter("ignore", UserWarning)
        fit(tmp_path, fashion_root, make_trainer, [WeightNormMonitor(), StepCurves(every_n_steps=2), layout],
            logger=logger)
    with TensorBoardServer(tmp_path / "logs", tmp_path / "tensorboard.log") as server:
        served = server.get("data/plugin/custom_scalars/layout")
        assert [c["title"] for c in served["category"]] == ["overfitting"]
        charts = {c["title"]: c["multiline"]["tag"] for c in served["category"][0]["chart"]}
        assert charts == {"loss: train vs validation": ["train_loss$", "val_loss$"],
                          "acc: train vs validation": ["train_acc$", "val_acc$"],
                          "weight norm": ["weight_norm/total$"]}
        assert layout.layout == {"overfitting": {title: ["Multiline", tags] for title, tags in charts.items()}}
        # what the loss chart draws: the run's train_loss alone (not train_loss_step...), one point per epoch
        drawn = server.get("data/plugin/custom_scalars/scalars", until=lambda a: a.get("tag_to_events"),
                           run="clf/version_0", tag="train_loss$")
        assert drawn["regex_valid"] and list(drawn["tag_to_events"]) == ["train_loss"]
        assert len(drawn["tag_to_events"]["train_loss"]) == 2
        val = server.get("data/plugin/custom_scalars/scalars", until=lambda a: a.get("tag_to_events"),
                         run="clf/version_0", tag="val_loss$")
        assert len(val["tag_to_events"]["val_loss"]) == 2
    assert server.process.poll() is not None


def test_other_loggers_get_one_warning_and_no_logger_nothing(tmp_path, fashion_root, make_trainer, recwarn):
    layout = OverfittingLayout()
    with pytest.warns(UserWarning, match="no TensorBoardLogger") as caught:
        fit(tmp_path, fashion_root, make_trainer, [layout], logger=CSVLogger(str(tmp_path)))
    assert len([w for w in caught if "OverfittingLayout" in str(w.message)]) == 1
    assert layout.layout == {}
    recwarn.clear()
    fit(tmp_path, fashion_root, make_trainer, [layout])
    assert not [w for w in recwarn if "OverfittingLayout" in str(w.message)] and layout.layout == {}


def test_training_is_the_same_with_and_without_the_callback(tmp_path, fashion_root, make_trainer):
    plain, _ = fit(tmp_path, fashion_root, make_trainer, [], logger=TensorBoardLogger(str(tmp_path), name="a"))
    laid_out, _ = fit(tmp_path, fashion_root, make_trainer, [OverfittingLayout()],
                      logger=TensorBoardLogger(str(tmp_path), name="b"))
    for a, b in zip(plain.state_dict().values(), laid_out.state_dict().values(), strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"category": ""}, "`category` must be a non-empty string, got ''"),
    ({"metrics": []}, r"`metrics` must be None or a list of at least one metric name, got \[\]"),
    ({"metrics": "loss"}, "`metrics` must be None or a list of at least one metric name, got 'loss'"),
    ({"extra_charts": {"lr": "lr"}}, "^`extra_charts` must be a dict of chart titles and non-empty lists"),
    ({"extra_charts": {"lr": []}}, "`extra_charts` must be a dict of chart titles and non-empty lists"),
])
def test_bad_arguments_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        OverfittingLayout(**kwargs)
