"""More data regularizes (lecture 003): one FashionMNIST net trained on 1k, 5k, 20k and 54k images.

    python examples/data_size.py                     # real FashionMNIST from /usr/share/datasets/fashion-mnist

Trains lecture 004's 784-250-100-10 net (``configs/fashion_mnist_004.yaml``, Adam) on seeded, class-balanced
subsets of the training split (``train_size``), with early stopping on ``val_loss`` (patience 5, at most
``--epochs``); validation and test sets stay whole. Prints train and test accuracy of each best checkpoint and
writes ``data_size.png``: test accuracy and the train-test gap against the training-set size (log scale).
"""

from __future__ import annotations

from _common import example_parser, output_dir, print_table, save_figure
from _fashion_mnist_runs import add_data_options, config, datamodule, fit_and_test
from matplotlib.figure import Figure

SIZES = (1000, 5000, 20000, 54000)


def plot(results: list[dict]) -> Figure:
    figure = Figure(figsize=(6, 4))
    axes = figure.subplots()
    sizes = [r["train size"] for r in results]
    axes.plot(sizes, [r["train acc"] for r in results], "o--", label="training set")
    axes.plot(sizes, [r["test acc"] for r in results], "o-", label="test set")
    axes.set_xscale("log")
    axes.set(xlabel="training images", ylabel="accuracy (best checkpoint)", title="FashionMNIST: more data")
    axes.legend()
    return figure


def main(argv: list[str] | None = None) -> list[dict]:
    parser = example_parser(__doc__.splitlines()[0])
    add_data_options(parser)
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--epochs", type=int, default=30)
    args = parser.parse_args(argv)
    out = output_dir(args.out, "data_size")
    model_kwargs, data_kwargs, _ = config("fashion_mnist_004")
    sizes = [30, 100] if args.fast else args.sizes
    results = []
    for size in sizes:
        data = datamodule(args, out, train_size=size, **data_kwargs)
        result = fit_and_test(f"train_size_{size}", model_kwargs, data, out, 2 if args.fast else args.epochs,
                              args.seed, ("train", "test"))
        results.append({"train size": size, **{k: v for k, v in result.items() if k != "net"}})
    for result in results:
        result["gap"] = result["train acc"] - result["test acc"]
    print_table(results)
    save_figure(plot(results), out / "data_size.png")
    return results


if __name__ == "__main__":
    main()
