"""FashionMNIST: the lecture's 784-512-512-10 net against the 265-64-32 net with BatchNorm and Dropout(0.5).

    python examples/fashion_mnist.py --data-dir /usr/share/datasets/fashion-mnist    # Debian's package
    python examples/fashion_mnist.py --data-dir data      # downloads FashionMNIST (30 MB) on first use

Trains both nets (RMSprop, lr 1e-3, batch 64, label smoothing 0.01 as in the lecture) with early stopping, prints
each net's layers with their parameter counts (Lightning's model summary, two levels deep, as the lecture shows),
prints the test accuracy of each restored best checkpoint and writes ``fashion_mnist.png`` with both runs'
training and validation accuracy per epoch. Without the files and without network it stops with one line
saying what to do.
"""

from __future__ import annotations

import pytorch_lightning as pl
from _common import example_parser, exit_with, output_dir, print_table, save_figure
from matplotlib.figure import Figure
from pytorch_lightning.callbacks import ModelSummary

from datamodules import FashionMNISTDataModule
from datamodules.fakes import write_fashion_mnist
from lit_reg import DenseClassifier, default_callbacks, default_logger
from lit_reg.callbacks import LearningCurves
from lit_reg.defaults import MODEL_SUMMARY_DEPTH

NETS = {
    "784-512-512-10": {"hidden_sizes": [512, 512]},
    "784-265-64-32-10 BN+Dropout(0.5)": {"hidden_sizes": [265, 64, 32], "batchnorm": True, "dropout": 0.5},
}


def fit(name: str, net: dict, data: FashionMNISTDataModule, out: str, max_epochs: int) -> dict:
    pl.seed_everything(0)
    model = DenseClassifier(input_size=data.input_size, num_classes=data.num_classes, optimizer="rmsprop",
                            lr=1e-3, label_smoothing=0.01, **net)
    callbacks = default_callbacks()
    trainer = pl.Trainer(max_epochs=max_epochs, logger=default_logger(name.split()[0], save_dir=out),
                         callbacks=[*callbacks, ModelSummary(max_depth=MODEL_SUMMARY_DEPTH)])  # each layer's params
    trainer.fit(model, datamodule=data)
    (test,) = trainer.test(model, datamodule=data, ckpt_path="best", verbose=False)
    curves = next(c for c in callbacks if isinstance(c, LearningCurves))
    return {"net": name, "epochs": trainer.current_epoch, "best epoch": curves.best_epoch,
            "test acc (best checkpoint)": test["test_acc"], "curves": curves}


def plot(results: list[dict]) -> Figure:
    figure = Figure(figsize=(6, 4))
    axes = figure.subplots()
    for result, color in zip(results, ("tab:blue", "tab:orange"), strict=False):
        history = result["curves"].history
        for key, style in (("train_acc", "-"), ("val_acc", "--")):
            epochs = [e for e in sorted(history) if key in history[e]]
            axes.plot(epochs, [history[e][key] for e in epochs], style, color=color,
                      label=f"{result['net']} ({key.split('_')[0]})")
    axes.set(xlabel="epoch", ylabel="accuracy", title="FashionMNIST")
    axes.legend(fontsize="small")
    return figure


def main(argv: list[str] | None = None) -> list[dict]:
    parser = example_parser(__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="data")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--no-download", action="store_true", help="use the files in --data-dir only")
    args = parser.parse_args(argv)
    out = output_dir(args.out, "fashion_mnist")
    data_dir = args.data_dir
    if args.fast:
        data_dir = str(out / "fake_fashion_mnist")
        write_fashion_mnist(data_dir, num_train=300, num_test=100)
    data = FashionMNISTDataModule(data_dir, batch_size=64, download=not (args.fast or args.no_download))
    try:
        data.prepare_data()
        data.setup()
    except RuntimeError as error:
        exit_with(str(error))
    epochs = 2 if args.fast else args.epochs
    results = [fit(name, net, data, str(out), epochs) for name, net in NETS.items()]
    print_table([{k: v for k, v in r.items() if k != "curves"} for r in results])
    save_figure(plot(results), out / "fashion_mnist.png")
    return results


if __name__ == "__main__":
    main()
