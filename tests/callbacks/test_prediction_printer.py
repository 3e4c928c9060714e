import io
import re
from pathlib import Path

import pytest
import torch

from datamodules import ImageFolderDataModule
from lit_reg.callbacks import PredictionPrinter
from lit_reg.cli import build_cli
from lit_reg.models import BitmojiClassifier
from tests.datamodules.image_trees import write_tree

QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
LINE = re.compile(r"^(\S+\.png)  (not_tom|tom)  (0\.\d\d|1\.00)$")


def data_args(root: Path, tmp_path: Path) -> list[str]:
    return ["--model", "BitmojiClassifier", "--data", "ImageFolderDataModule", "--data.train_dir", str(root),
            "--data.image_size", "10", "--data.batch_size", "4", "--data.cache_dir", str(tmp_path / "cache"),
            "--model.hidden_sizes", "[8]", *QUIET]


def test_fit_then_predict_prints_one_line_per_image(in_tmp_dir, tmp_path, capsys):
    root = write_tree(tmp_path / "train", {"not_tom": 6, "tom": 6})
    fit = build_cli(["fit", *data_args(root, tmp_path), "--data.val_fraction", "0.25", "--trainer.max_epochs", "2"])
    assert fit.model.hparams.input_size == 100 and list(fit.model.hparams.classes) == ["not_tom", "tom"]  # linked
    ckpt = fit.trainer.checkpoint_callback.best_model_path
    capsys.readouterr()
    cli = build_cli(["predict", *data_args(root, tmp_path), "--ckpt_path", ckpt,
                     "--data.predict_dir", str(root)])
    lines = [line for line in capsys.readouterr().out.splitlines() if LINE.match(line)]
    assert sorted(LINE.match(line).group(1) for line in lines) == sorted(p.name for p in root.rglob("*.png"))
    assert {LINE.match(line).group(2) for line in lines} == {"not_tom", "tom"}  # both classes predicted
    assert torch.equal(cli.datamodule.mean, fit.datamodule.mean)  # restored from the checkpoint, not refitted
    assert lines == expected_lines(cli.model, cli.datamodule)


def expected_lines(model: BitmojiClassifier, data: ImageFolderDataModule) -> list[str]:
    """``<file>  <class>  <probability of that class>`` computed here from the network's logit."""
    classes = list(model.hparams.classes)
    lines = []
    model.eval()
    with torch.no_grad():
        for batch in data.predict_dataloader():
            inputs, paths = data.on_after_batch_transfer(batch, 0)
            for path, prob in zip(paths, model(inputs).sigmoid().reshape(-1).tolist(), strict=True):
                label, confidence = (classes[1], prob) if prob > 0.5 else (classes[0], 1 - prob)  # a tie: negative
                lines.append(f"{Path(path).name}  {label}  {confidence:.2f}")
    return lines


def test_print_batch_writes_name_class_and_rounded_probability():
    out = io.StringIO()
    printer = PredictionPrinter(stream=out, digits=3)
    printer.print_batch({"labels": ["tom", "not_tom"], "confidence": torch.tensor([0.12345, 1.0])},
                        ["images/a/tom-1.png", "b.jpg"])
    assert out.getvalue() == "tom-1.png  tom  0.123\nb.jpg  not_tom  1.000\n"
    with pytest.raises(ValueError):  # one path per sample
        printer.print_batch({"labels": ["tom"], "confidence": torch.tensor([0.5])}, ["a.png", "b.png"])


def test_printer_needs_labels_and_paths():
    printer = PredictionPrinter()
    model = BitmojiClassifier(input_size=2, hidden_sizes=[2])
    with pytest.raises(ValueError, match=re.escape("PredictionPrinter needs predict_step to return a dict with "
                                                   "'labels' and 'confidence'; BitmojiClassifier returned Tensor")):
        printer.write_on_batch_end(None, model, torch.zeros(2), None, (torch.zeros(2, 2), ["a", "b"]), 0, 0)
    prediction = {"labels": ["a"], "confidence": torch.ones(1)}
    message = re.escape("PredictionPrinter needs predict batches of (inputs, paths), e.g. from "
                        "ImageFolderDataModule(predict_dir=...)")
    for batch in (torch.zeros(1, 2), (torch.zeros(1, 2),), (torch.zeros(1, 2), torch.zeros(1))):
        with pytest.raises(ValueError, match=f"^{message}$"):
            printer.write_on_batch_end(None, model, prediction, None, batch, 0, 0)
