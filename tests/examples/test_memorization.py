"""The memorization experiment: BigAnimalNet memorizes random labels; the example script runs end to end."""

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import pytorch_lightning as pl
import torch
from PIL import Image

from datamodules import AnimalFacesDataModule
from datamodules.fakes import write_afhq
from lit_reg.models import DenseClassifier
from tests.conftest import EpochMetrics


class StopWhenMemorized(EpochMetrics):
    """Records the metrics of every epoch and stops once the training accuracy reaches 99 %."""

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        trainer.should_stop = trainer.should_stop or self.history[-1]["train_acc"] >= 0.99


SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "memorization.py"


@pytest.fixture
def memorization(example):
    return example("memorization")


def test_config_is_the_lectures_big_animal_net(memorization):
    config = memorization.load_config()
    assert config["model"] == {"hidden_sizes": [124, 64], "activation": "leaky_relu", "optimizer": "sgd",
                               "lr": 0.005, "momentum": 0.9}
    assert {k: config["data"][k] for k in ("image_size", "train_size", "val_size", "batch_size", "label_noise")} == {
        "image_size": 32, "train_size": 100, "val_size": 100, "batch_size": 128, "label_noise": 0.0}
    assert (config["epochs"], config["seed"]) == (200, 2021)


def test_big_animal_net_memorizes_random_labels_on_noise(memorization, tmp_path, make_trainer):
    """configs/memorization.yaml with every label shuffled (the lecture's random labels) on pure-noise images:
    there is nothing to learn, yet training accuracy reaches 99 % within the 200 epochs; validation stays at
    chance."""
    config = memorization.load_config()
    write_afhq(str(tmp_path), per_class=70, val_per_class=20, signal=0.0)
    pl.seed_everything(config["seed"])
    dm = AnimalFacesDataModule(**{**config["data"], "data_dir": str(tmp_path), "label_noise": 1.0,
                                  "label_noise_mode": memorization.LABEL_NOISE_MODE, "cache_dir": None,
                                  "download": False})
    model = DenseClassifier(input_size=dm.input_size, num_classes=dm.num_classes, **config["model"])
    recorder, timer = StopWhenMemorized(), memorization.TimeToMemorize()
    trainer = make_trainer(max_epochs=config["epochs"], callbacks=[recorder, timer], deterministic=True,
                           limit_val_batches=0)  # validation measured once, at the end
    trainer.fit(model, datamodule=dm)
    assert len(dm.relabeled_indices) == 100 and 50 <= len(dm.noisy_indices) <= 85  # about 2/3 of 100 change
    assert recorder.history[-1]["train_acc"] >= 0.99 and len(recorder.history) <= config["epochs"]
    first_100 = [epoch for epoch, metrics in enumerate(recorder.history) if metrics["train_acc"] >= 1.0]
    assert timer.epoch == (first_100[0] if first_100 else None)
    model.eval()

    def accuracy(split: str) -> float:
        inputs, targets = dm.datasets[split].inputs, dm.datasets[split].targets
        with torch.no_grad():
            return (model(dm.transform_inputs(inputs)).argmax(1) == targets).float().mean().item()

    assert accuracy("train") >= 0.99
    assert abs(accuracy("val") - 1 / 3) < 0.15 and abs(accuracy("test") - 1 / 3) < 0.2  # 100 and 60 images


def test_time_to_memorize_keeps_the_first_epoch_at_100_percent(memorization, monkeypatch):
    clock = iter([10.0, 13.5, 99.0])  # on_train_start, then each epoch that reaches 100 %
    monkeypatch.setattr(memorization.time, "monotonic", lambda: next(clock))
    timer = memorization.TimeToMemorize()
    trainer = SimpleNamespace(callback_metrics={}, current_epoch=0)
    timer.on_train_start(trainer, None)
    timer.on_train_epoch_end(trainer, None)  # no train_acc logged yet
    for epoch, accuracy in enumerate([0.5, 0.99, 1.0, 0.98, 1.0], start=1):
        trainer.current_epoch, trainer.callback_metrics = epoch, {"train_acc": torch.tensor(accuracy)}
        timer.on_train_epoch_end(trainer, None)
    assert (timer.epoch, timer.seconds) == (3, 3.5)


def test_fast_run_writes_the_figure_and_prints_the_table(memorization, in_tmp_dir, capsys):
    out = in_tmp_dir / "run"
    returned = memorization.main(["--fast", "--epochs", "3", "--out", str(out)])
    with Image.open(out / "memorization.png") as image:
        image.verify()
    with Image.open(out / "memorization.png") as image:
        assert image.format == "PNG" and image.size == (1500, 400)  # three 5×4 in panels at 100 dpi
    results = json.loads((out / "results.json").read_text())
    assert [(r["setting"], r["label_noise"]) for r in results] == [
        ("clean labels", 0.0), ("15 % label noise", 0.15), ("random labels", 1.0)]
    for result, same in zip(results, returned, strict=True):
        assert sorted(map(int, result["history"])) == [0, 1, 2]
        assert 0 <= result["train_acc"] <= 1 and 0 <= result["val_acc"] <= 1
        assert (result["train_acc"], result["val_acc"]) == (same["train_acc"], same["val_acc"])
    for name in ("clean", "noise_15", "random"):
        assert list((out / name / "version_0").glob("events.out.tfevents.*"))
        assert (out / name / "version_0" / "learning_curves.png").is_file()
    printed = capsys.readouterr().out
    assert "Memorization after 3 epochs (generated images):" in printed
    assert printed.split("Memorization after")[1].splitlines()[1].split() == [
        "setting", "label_noise", "epochs", "train_acc", "val_acc"]
    rows = [line for line in printed.splitlines() if line.startswith(("clean labels", "15 % label", "random labels"))]
    assert len(rows) == 3 and rows[2].split()[2:] == ["1.0000", "3", f"{results[2]['train_acc']:.4f}",
                                                      f"{results[2]['val_acc']:.4f}"]
    assert all(result["label_noise_mode"] == "shuffle" for result in results)
    timing = printed.split("\nTime to 100 % training accuracy (lecture 002: about 74 s on its machine):\n")[1]
    expected = [f"  {r['setting']}: not reached in 3 epochs" if r["epoch_100"] is None else
                f"  {r['setting']}: epoch {r['epoch_100']}, {r['seconds_to_100']:.1f} s" for r in results]
    assert timing.splitlines()[:3] == expected
    for result in results:  # reached: the first epoch whose train_acc is 100 %, after a positive time
        reached = [int(epoch) for epoch, values in sorted(result["history"].items(), key=lambda item: int(item[0]))
                   if values.get("train_acc", 0) >= 1.0]
        assert result["epoch_100"] == (reached[0] if reached else None)
        assert (result["seconds_to_100"] is None) == (result["epoch_100"] is None)
        assert result["seconds_to_100"] is None or result["seconds_to_100"] > 0
    assert not (in_tmp_dir / "logs").exists()


def test_default_run_folder_is_a_new_run_under_logs_examples(memorization, in_tmp_dir):
    memorization.main(["--fast", "--epochs", "1"])
    memorization.main(["--fast", "--epochs", "1"])
    runs = sorted(p.name for p in (in_tmp_dir / "logs" / "examples" / "memorization").iterdir())
    assert runs == ["run_0", "run_1"]
    assert (in_tmp_dir / "logs" / "examples" / "memorization" / "run_1" / "memorization.png").is_file()


def test_download_failure_is_one_line_and_exit_code_1(memorization, in_tmp_dir, capsys, no_network):
    with pytest.raises(SystemExit) as exit_info:
        memorization.main(["--data-dir", str(in_tmp_dir / "data"), "--epochs", "1", "--out", "out"])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith("error: Downloading the Animal Faces archive afhq.zip from "
                          "https://osf.io/kgfvj/download") and "download failed" in err
    assert len(no_network) >= 1


def test_missing_data_from_the_shell_is_one_line_not_a_traceback(in_tmp_dir):
    result = subprocess.run([sys.executable, str(SCRIPT), "--data-dir", "nowhere", "--no-download", "--out", "o"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert result.stderr.startswith("error: Animal Faces (AFHQ) not found in data_dir='nowhere' (download=False)")
    assert "Traceback" not in result.stderr
