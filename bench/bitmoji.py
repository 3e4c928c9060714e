"""Bitmoji benchmark: train each config over several seeds through the ``lit-reg`` CLI and print a table.

For every (config, seed) it runs ``lit-reg fit --config <config> --seed_everything <seed>``, then
``trainer.validate(ckpt_path="best")`` so the accuracy is the restored best checkpoint's (the one
``ModelCheckpoint`` kept), and prints: config, seed, best epoch (1-based), val acc, wall time of ``fit``.

    python bench/bitmoji.py                       # both configs, seeds 0 1 2 (make bench-bitmoji)
    python bench/bitmoji.py --configs configs/bitmoji.yaml --seeds 0 -- --model.dropout 0.3
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from lit_reg.cli import build_cli

CONFIGS = ("configs/bitmoji_seed.yaml", "configs/bitmoji.yaml")
QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


def run(config: str, seed: int, overrides: list[str], log_dir: str) -> dict[str, float]:
    """Fit one config with one seed; return best epoch, restored-best val acc and fit wall time."""
    start = time.perf_counter()
    cli = build_cli(["fit", "--config", config, "--seed_everything", str(seed), "--trainer.logger.init_args.save_dir",
                     log_dir, *QUIET, *overrides])
    wall = time.perf_counter() - start
    best = cli.trainer.checkpoint_callback.best_model_path
    epoch = torch.load(best, map_location="cpu", weights_only=False)["epoch"] + 1
    metrics = cli.trainer.validate(cli.model, datamodule=cli.datamodule, ckpt_path="best", verbose=False)[0]
    return {"best_epoch": epoch, "val_acc": metrics["val_acc"], "wall_s": wall}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (1 is fastest on a small, shared CPU; 0 keeps torch's default)")
    parser.add_argument("overrides", nargs="*", help="extra lit-reg arguments for every run (after --)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_bitmoji_") as log_dir:
        for config in args.configs:
            for seed in args.seeds:
                rows.append((config, seed, run(config, seed, args.overrides, log_dir)))
                print(f"[done] {config} seed {seed}: {rows[-1][2]}", flush=True)
    print("\n| config | seed | best epoch | val acc | wall time (s) |\n|---|---|---|---|---|")
    for config, seed, result in rows:
        print(f"| `{Path(config).name}` | {seed} | {result['best_epoch']} | {result['val_acc']:.4f} | "
              f"{result['wall_s']:.0f} |")
    for config in args.configs:
        accs = [r["val_acc"] for c, _, r in rows if c == config]
        print(f"| `{Path(config).name}` | **mean** | | **{statistics.mean(accs):.4f}** | |")


if __name__ == "__main__":
    main()
