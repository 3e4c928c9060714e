"""FashionMNIST on the real test set: the lectures' nets, our regularized default and its ablations, over seeds.

Every row is a config in ``configs/`` plus dotted overrides, run through the ``lit-reg`` CLI exactly as a user
would (``lit-reg fit --config ... --seed_everything SEED``), then ``trainer.test(ckpt_path="best")``: the test
accuracy is the restored best checkpoint's. The peer row is scikit-learn's ``MLPClassifier(100,)`` fitted on
the same training split (needs ``pip install scikit-learn``). Prints one markdown table (mean ± std over the
seeds, best epoch, wall time of one fit) and writes every run to ``--json``.

    python bench/fashion_mnist.py                                  # every row, seeds 0 1 2 (hours on 2 cores)
    python bench/fashion_mnist.py --rows best best-no_dropout --seeds 0
    python bench/fashion_mnist.py --fast                           # rows 004 and best, 1 epoch, generated files
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

from lit_reg.callbacks import LearningCurves
from lit_reg.cli import build_cli

DATA_DIR = os.environ.get("LIT_REG_FASHION_MNIST", "/usr/share/datasets/fashion-mnist")
QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
BEST = "configs/fashion_mnist_best.yaml"
L004 = "configs/fashion_mnist_004.yaml"

#: row name -> (config, overrides, what it is)
ROWS: dict[str, tuple[str, list[str], str]] = {
    "softmax": (L004, ["--model.hidden_sizes", "[]"], "softmax regression (no hidden layer), Adam, 10 epochs"),
    "001": ("configs/fashion_mnist.yaml", [], "lecture 001: 784-512-512-10, RMSprop, early stopping"),
    "001-bn_dropout": ("configs/fashion_mnist_bn_dropout.yaml", [],
                       "lecture 001: 784-265-64-32-10, BatchNorm + Dropout(0.5), RMSprop, 20 epochs max"),
    "004": (L004, [], "lecture 004: 784-250-100-10, Adam, 10 epochs"),
    "004-dropout": (L004, ["--model.dropout", "[0.25, 0.0]"],
                    "lecture 004 ex. 2: + Dropout(0.25) between the hidden layers"),
    "004-hidden64": (L004, ["--model.hidden_sizes", "[64, 64]"], "lecture 004 ex. 3: 784-64-64-10"),
    "004-hidden256": (L004, ["--model.hidden_sizes", "[256, 256]"], "lecture 004 ex. 3: 784-256-256-10"),
    "best": (BEST, [], "ours: configs/fashion_mnist_best.yaml"),
    "best+flips": (BEST, ["--data.augment", "true", "--data.hflip", "true", "--data.rotation", "0",
                          "--data.max_shift", "0"], "ours with random horizontal flips of the training images"),
    "best-no_dropout": (BEST, ["--model.dropout", "0.0"], "ours without dropout"),
    "best-no_batchnorm": (BEST, ["--model.batchnorm", "false"], "ours without batch norm"),
    "best-no_weight_decay": (BEST, ["--model.weight_decay", "0.0"], "ours without weight decay"),
    "best-no_label_smoothing": (BEST, ["--model.label_smoothing", "0.0"], "ours without label smoothing"),
}
SKLEARN = "sklearn-mlp100"


def run_config(config: str, overrides: list[str], seed: int, data_dir: str, log_dir: str) -> dict[str, float]:
    """Fit one row with one seed through the CLI; test accuracy of the best checkpoint, its epoch, fit time."""
    start = time.perf_counter()
    cli = build_cli(["fit", "--config", config, "--seed_everything", str(seed), "--data.data_dir", data_dir,
                     "--trainer.logger.init_args.save_dir", log_dir, *QUIET, *overrides])
    wall = time.perf_counter() - start
    best = cli.trainer.checkpoint_callback.best_model_path
    epoch = torch.load(best, map_location="cpu", weights_only=False)["epoch"] + 1
    epochs = cli.trainer.current_epoch
    curves = next(c for c in cli.trainer.callbacks if isinstance(c, LearningCurves))
    metrics = cli.trainer.test(cli.model, datamodule=cli.datamodule, ckpt_path="best", verbose=False)[0]
    return {"test_acc": metrics["test_acc"], "best_epoch": epoch, "epochs": epochs, "wall_s": wall,
            "train_acc_by_epoch": [curves.history[e].get("train_acc") for e in sorted(curves.history)],
            "val_acc_by_epoch": [curves.history[e].get("val_acc") for e in sorted(curves.history)]}


def run_sklearn(seed: int, data_dir: str) -> dict[str, float]:
    """scikit-learn's MLPClassifier(hidden_layer_sizes=(100,)) on the same training split, pixels scaled to [0, 1]."""
    from sklearn.neural_network import MLPClassifier

    from datamodules import FashionMNISTDataModule

    data = FashionMNISTDataModule(data_dir, download=False)
    data.setup()
    flat = {split: (ds.inputs.reshape(len(ds), -1).float().numpy() / 255, ds.targets.numpy())
            for split, ds in data.datasets.items()}
    start = time.perf_counter()
    mlp = MLPClassifier(hidden_layer_sizes=(100,), random_state=seed).fit(*flat["train"])
    wall = time.perf_counter() - start
    return {"test_acc": float(mlp.score(*flat["test"])), "best_epoch": mlp.n_iter_, "epochs": mlp.n_iter_,
            "wall_s": wall}


def table(runs: list[dict]) -> str:
    """One markdown row per row name: mean ± std of the test accuracy over the seeds, epochs, mean fit time."""
    lines = ["| row | what | seeds | test acc (mean ± std) | per seed | best epoch / epochs | wall time per fit (s) |",
             "|---|---|---|---|---|---|---|"]
    for name in dict.fromkeys(r["row"] for r in runs):
        rows = [r for r in runs if r["row"] == name]
        accs = [r["test_acc"] for r in rows]
        spread = statistics.stdev(accs) if len(accs) > 1 else 0.0
        what = ROWS[name][2] if name in ROWS else "scikit-learn MLPClassifier(100,), same training split"
        epochs = ", ".join(f"{r['best_epoch']}/{r['epochs']}" for r in rows)
        lines.append(f"| `{name}` | {what} | {len(rows)} | **{statistics.mean(accs):.4f}** ± {spread:.4f} | "
                     f"{' '.join(f'{a:.4f}' for a in accs)} | {epochs} | "
                     f"{statistics.mean(r['wall_s'] for r in rows):.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", nargs="+", default=None, choices=[*ROWS, SKLEARN],
                        help="rows to run (default: all; with --fast: 004 and best)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--data-dir", default=DATA_DIR, help="the four FashionMNIST files (default: Debian's path "
                        "or $LIT_REG_FASHION_MNIST)")
    parser.add_argument("--json", default=None, help="write every run here")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 keeps torch's default)")
    parser.add_argument("--fast", action="store_true", help="generated files, 1 epoch, rows 004 and best: a check")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    runs: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="bench_fashion_mnist_") as scratch:
        rows, extra = args.rows or [*ROWS, SKLEARN], []
        if args.fast:
            from datamodules.fakes import write_fashion_mnist

            write_fashion_mnist(scratch, num_train=300, num_test=100)
            args.data_dir, extra = scratch, ["--trainer.max_epochs", "1"]
            rows = args.rows or ["004", "best"]
        for name in rows:
            for seed in args.seeds:
                if name == SKLEARN:
                    result = run_sklearn(seed, args.data_dir)
                else:
                    config, overrides, _ = ROWS[name]
                    result = run_config(config, [*overrides, *extra], seed, args.data_dir, scratch)
                runs.append({"row": name, "seed": seed, **result})
                print(f"[done] {name} seed {seed}: test acc {result['test_acc']:.4f}, {result['wall_s']:.0f} s",
                      flush=True)
    print(table(runs))
    if args.json:
        Path(args.json).write_text(json.dumps({"data_dir": args.data_dir, "threads": torch.get_num_threads(),
                                               "cpus": os.cpu_count(), "runs": runs}, indent=1))
    return runs


if __name__ == "__main__":
    main()
