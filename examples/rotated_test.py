"""FashionMNIST on a rotated test set (lecture 004, exercise 1): what regularization and augmentation win back.

    python examples/rotated_test.py                  # real FashionMNIST from /usr/share/datasets/fashion-mnist

Trains three nets with the same seed: lecture 004's plain 784-250-100-10 (``configs/fashion_mnist_004.yaml``),
our regularized MLP (``configs/fashion_mnist_best.yaml``) and that MLP trained with random rotations of up to
``--rotation`` degrees and horizontal flips. Each best checkpoint is tested on the plain test set and on
the same images rotated by seeded angles in [-25°, 25°] (``test_rotation=25``, the lecture's
``RandomRotation(25, fill=0)``). Prints the table and writes ``rotated_test.png``.
"""

from __future__ import annotations

from _common import example_parser, output_dir, print_table, save_figure
from _fashion_mnist_runs import add_data_options, config, datamodule, fit_and_test
from matplotlib.figure import Figure

SPLITS = ("test", "test_rotated")


def plot(results: list[dict]) -> Figure:
    figure = Figure(figsize=(7, 4))
    axes = figure.subplots()
    width = 0.38
    for offset, split, label in ((-width / 2, "test", "plain test set"), (width / 2, "test_rotated", "rotated ±25°")):
        values = [r[f"{split} acc"] for r in results]
        bars = axes.bar([i + offset for i in range(len(results))], values, width, label=label)
        axes.bar_label(bars, fmt="%.3f", fontsize="small")
    axes.set_xticks(range(len(results)), [r["net"] for r in results], fontsize="small")
    axes.set(ylabel="test accuracy (best checkpoint)", ylim=(0, 1), title="FashionMNIST, rotated test set")
    axes.legend(loc="lower center")
    return figure


def main(argv: list[str] | None = None) -> list[dict]:
    parser = example_parser(__doc__.splitlines()[0])
    add_data_options(parser)
    parser.add_argument("--rotation", type=float, default=25.0, help="largest training rotation of the third net")
    parser.add_argument("--test-rotation", type=float, default=25.0)
    args = parser.parse_args(argv)
    out = output_dir(args.out, "rotated_test")
    plain_model, plain_data, plain_epochs = config("fashion_mnist_004")
    best_model, best_data, best_epochs = config("fashion_mnist_best")
    best_data = {**best_data, "augment": False}
    augmented_data = {**best_data, "augment": True, "rotation": args.rotation, "hflip": True, "max_shift": 0}
    nets = [("plain", "plain", plain_model, plain_data, plain_epochs, "val_loss"),
            ("regularized", "regularized", best_model, best_data, best_epochs, "val_acc"),
            ("rotation", f"regularized + rotation ±{args.rotation:g}°", best_model, augmented_data, best_epochs,
             "val_acc")]
    results = []
    for run, name, model_kwargs, data_kwargs, epochs, monitor in nets:
        data = datamodule(args, out, test_rotation=args.test_rotation, **data_kwargs)
        result = fit_and_test(run, model_kwargs, data, out, 1 if args.fast else epochs, args.seed, SPLITS, monitor)
        results.append({**result, "net": name})
    for result in results:
        result["drop"] = result["test acc"] - result["test_rotated acc"]
    print_table(results)
    save_figure(plot(results), out / "rotated_test.png")
    return results


if __name__ == "__main__":
    main()
