"""Accuracy parity of bf16 mixed precision: the same configs and seeds in ``32-true`` and ``bf16-mixed``.

Every (config, seed, precision) is an ordinary ``lit-reg fit --config CONFIG --seed_everything SEED
--trainer.precision PRECISION`` through :func:`lit_reg.cli.build_cli`, then ``trainer.test(ckpt_path="best")``, each
in its own process (``--workers N`` at a time, torch on ``--threads`` threads each: by default the CPU cores shared
out). Prints one markdown table: per config and precision the mean ± std test accuracy over the seeds, then the
difference bf16 − fp32 in points (mean and std of the per-seed differences, same seed against same seed), and
whether it is within ``--tolerance`` points (0.3, the issue's bar); ``--json`` writes every run too.

The FashionMNIST configs read ``--data-dir`` (default ``$LIT_REG_FASHION_MNIST`` or
``/usr/share/datasets/fashion-mnist``). An image-folder config without a ``test_dir`` (Bitmoji: ``train`` and
``valid`` only) is tested on its ``val_dir``, the only held-out images it has: the accuracy of the best checkpoint,
which was chosen on those same images; the comparison between precisions stays like for like.

    python bench/precision_parity.py --workers 2                     # 3 configs x seeds 0 1 2 x 2 precisions
    python bench/precision_parity.py --configs configs/fashion_mnist_004.yaml --seeds 0 --json parity.json
    python bench/precision_parity.py --quick                         # generated data, 1 epoch: a check
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
CONFIGS = ("configs/fashion_mnist_004.yaml", "configs/fashion_mnist_best.yaml", "configs/bitmoji.yaml")
SEEDS = (0, 1, 2)
PRECISIONS = ("32-true", "bf16-mixed")
TOLERANCE_POINTS = 0.3
DATA_DIR = os.environ.get("LIT_REG_FASHION_MNIST", "/usr/share/datasets/fashion-mnist")
QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
IMAGE_FOLDER = "ImageFolderDataModule"
FASHION = "FashionMNISTDataModule"


def data_class(config: dict[str, Any]) -> str:
    """The datamodule class name of a parsed config (``datamodules.FashionMNISTDataModule`` → the last part)."""
    return str((config.get("data") or {}).get("class_path", "")).rsplit(".", 1)[-1]


def data_overrides(config_path: str, data_dir: str, fake_root: str | None = None) -> list[str]:
    """The ``--data.*`` arguments a config needs here: the FashionMNIST folder, the test split of an image-folder
    config without one, and with ``fake_root`` (``--quick``) the generated files instead of the real ones."""
    config = yaml.safe_load((REPO / config_path).read_text())
    kind, init_args = data_class(config), (config.get("data") or {}).get("init_args") or {}
    if kind == FASHION:
        return ["--data.data_dir", fake_root or data_dir]
    if kind != IMAGE_FOLDER:
        return []
    if fake_root is not None:
        root = Path(fake_root) / "images"
        return ["--data.train_dir", str(root / "train"), "--data.val_dir", str(root / "valid"),
                "--data.test_dir", str(root / "valid"), "--data.cache_dir", ""]
    if init_args.get("test_dir") is None and init_args.get("val_dir"):
        return ["--data.test_dir", str(init_args["val_dir"])]
    return []


def write_fake_data(root: str) -> None:
    """Tiny FashionMNIST IDX files and a two-class image folder (train and valid) under ``root``."""
    from datamodules.fakes import write_fashion_mnist, write_image_folder

    write_fashion_mnist(root, num_train=200, num_test=50)
    for split, count in (("train", 12), ("valid", 6)):
        write_image_folder(Path(root) / "images" / split, {"not_tom": count, "tom": count}, seed=len(split))


def fit_and_test(config: str, seed: int, precision: str, overrides: list[str], log_dir: str,
                 threads: int) -> dict[str, Any]:
    """One ``lit-reg fit`` and ``test`` of the best checkpoint in this process; its test metrics and wall time."""
    import torch

    from lit_reg.cli import build_cli

    torch.set_num_threads(threads)
    start = time.perf_counter()
    cli = build_cli(["fit", "--config", config, "--seed_everything", str(seed), "--trainer.precision", precision,
                     "--trainer.logger.init_args.save_dir", log_dir,
                     "--trainer.logger.init_args.name", f"{Path(config).stem}_{precision}_seed{seed}",
                     *QUIET, *overrides])
    trainer = cli.trainer
    fit_s = time.perf_counter() - start
    ckpt = "best" if trainer.checkpoint_callback is not None else None
    (metrics,) = trainer.test(cli.model, datamodule=cli.datamodule, ckpt_path=ckpt, verbose=False)
    return {"config": config, "seed": seed, "precision": precision, "trainer_precision": str(trainer.precision),
            "epochs": int(trainer.current_epoch),
            "fit_s": round(fit_s, 1), **{k: float(v) for k, v in metrics.items()}}


def run_in_subprocess(job: dict[str, Any], workdir: Path) -> dict[str, Any]:
    """``fit_and_test`` of ``job`` in a fresh Python process (its output in a log file); its result dict."""
    tag = f"{Path(job['config']).stem}_{job['precision']}_seed{job['seed']}"
    result_path, log_path = workdir / f"{tag}.json", workdir / f"{tag}.log"
    with open(log_path, "w") as log:
        done = subprocess.run([sys.executable, os.path.abspath(__file__), "--one", json.dumps(job),
                               "--result", str(result_path)], stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
    if done.returncode != 0:
        tail = log_path.read_text().strip().splitlines()[-5:]
        raise RuntimeError(f"{tag} failed (exit {done.returncode}); the end of {log_path}:\n" + "\n".join(tail))
    result = json.loads(result_path.read_text())
    print(f"{tag}: test_acc {result.get('test_acc', float('nan')):.4f} in {result['fit_s']:.0f} s", file=sys.stderr)
    return result


def summarize(runs: list[dict[str, Any]], precisions: tuple[str, ...], tolerance: float) -> list[dict[str, Any]]:
    """Per config: mean ± std test accuracy per precision, and bf16 − fp32 in points (per-seed pairs)."""
    summary = []
    for config in dict.fromkeys(r["config"] for r in runs):
        row: dict[str, Any] = {"config": config}
        by_precision = {p: {r["seed"]: r["test_acc"] for r in runs if r["config"] == config and r["precision"] == p}
                        for p in precisions}
        for precision, accs in by_precision.items():
            values = list(accs.values())
            row[precision] = {"mean": statistics.fmean(values) if values else None,
                              "std": statistics.stdev(values) if len(values) > 1 else 0.0, "n": len(values)}
        if len(precisions) == 2:
            base, other = (by_precision[p] for p in precisions)
            diffs = [100 * (other[s] - base[s]) for s in sorted(set(base) & set(other))]
            mean = 100 * (row[precisions[1]]["mean"] - row[precisions[0]]["mean"]) if diffs else None
            row["difference_points"] = {"mean": mean, "std": statistics.stdev(diffs) if len(diffs) > 1 else 0.0,
                                        "per_seed": diffs,
                                        "within_tolerance": None if mean is None else abs(mean) <= tolerance}
        summary.append(row)
    return summary


def table(summary: list[dict[str, Any]], precisions: tuple[str, ...], tolerance: float) -> str:
    compare = len(precisions) == 2
    header = "| config | " + " | ".join(f"{p} test acc" for p in precisions)
    header += f" | {precisions[1]} − {precisions[0]} (points) | within {tolerance} |" if compare else " |"
    lines = [header, "|---" + "|---:" * (len(precisions) + 2 * compare) + "|"]
    for row in summary:
        cells = [f"{100 * row[p]['mean']:.2f} ± {100 * row[p]['std']:.2f} (n={row[p]['n']})"
                 if row[p]["mean"] is not None else "n/a" for p in precisions]
        if compare:
            diff = row["difference_points"]
            cells.append("n/a" if diff["mean"] is None else f"{diff['mean']:+.2f} ± {diff['std']:.2f}")
            cells.append({True: "yes", False: "no", None: "n/a"}[diff["within_tolerance"]])
        lines.append(f"| {row['config']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), help="config files, relative to the repo")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    parser.add_argument("--precisions", nargs="+", default=list(PRECISIONS),
                        help="Trainer precisions; with two, the second is compared with the first")
    parser.add_argument("--workers", type=int, default=1, help="fits at a time, each in its own process")
    parser.add_argument("--threads", type=int, help="torch threads per fit (default: CPU cores // workers)")
    parser.add_argument("--data-dir", default=DATA_DIR, help="the FashionMNIST files of the FashionMNIST configs")
    parser.add_argument("--tolerance", type=float, default=TOLERANCE_POINTS, help="points of test accuracy")
    parser.add_argument("--log-dir", help="TensorBoard runs and per-fit logs (default: a temporary folder)")
    parser.add_argument("--json", metavar="PATH", help="also write every run and the summary here")
    parser.add_argument("--quick", action="store_true", help="generated data, 1 epoch: checks that it all runs")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error(f"--workers must be >= 1, got {args.workers}")
    for config in args.configs:
        if not (REPO / config).is_file():
            parser.error(f"config {config} not found under {REPO}")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.one:  # a worker process: one fit, its result to --result
        job = json.loads(args.one)
        result = fit_and_test(job["config"], job["seed"], job["precision"], job["overrides"], job["log_dir"],
                              job["threads"])
        Path(args.result).write_text(json.dumps(result))
        return result
    threads = args.threads or max(1, (os.cpu_count() or 1) // args.workers)
    with tempfile.TemporaryDirectory(prefix="lit_reg_parity_") as tmp:
        workdir = Path(args.log_dir or tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        fake_root = None
        if args.quick:
            fake_root = str(Path(tmp) / "data")
            write_fake_data(fake_root)
        quick = ["--trainer.max_epochs", "1"] if args.quick else []
        jobs = [{"config": config, "seed": seed, "precision": precision, "threads": threads,
                 "log_dir": str(workdir / "logs"),
                 "overrides": [*data_overrides(config, args.data_dir, fake_root), *quick]}
                for config in args.configs for seed in args.seeds for precision in args.precisions]
        start = time.perf_counter()
        with ThreadPoolExecutor(max_workers=args.workers) as pool:
            runs = list(pool.map(lambda job: run_in_subprocess(job, workdir), jobs))
        wall_s = time.perf_counter() - start
    precisions = tuple(args.precisions)
    summary = summarize(runs, precisions, args.tolerance)
    print(f"test accuracy (%) over seeds {' '.join(map(str, args.seeds))}, mean ± std; "
          f"{len(runs)} fits in {wall_s:.0f} s with {args.workers} workers x {threads} torch threads"
          + (" (--quick: generated data, 1 epoch)" if args.quick else ""))
    print(table(summary, precisions, args.tolerance))
    report = {"config": {"configs": args.configs, "seeds": args.seeds, "precisions": args.precisions,
                         "workers": args.workers, "threads": threads, "quick": args.quick,
                         "tolerance_points": args.tolerance, "wall_s": round(wall_s, 1)},
              "runs": runs, "summary": summary}
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
