"""bench/fashion_mnist.py in --fast mode: every row it runs is the CLI's fit + test of the best checkpoint."""

import json
import statistics
from pathlib import Path

import pytest
import yaml

from lit_reg.cli import build_cli
from tests.bench.conftest import load_bench

BENCH = Path(__file__).resolve().parents[2] / "bench" / "fashion_mnist.py"


@pytest.fixture(scope="module")
def bench():
    return load_bench("fashion_mnist")


def test_fast_run_prints_mean_and_std_per_row_and_writes_every_run(bench, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(BENCH.parents[1])  # the configs are found relative to the checkout, as for a user
    out = tmp_path / "runs.json"
    runs = bench.main(["--fast", "--seeds", "0", "1", "--json", str(out)])
    assert [(r["row"], r["seed"]) for r in runs] == [("004", 0), ("004", 1), ("best", 0), ("best", 1)]
    assert all(r["epochs"] == 1 and r["best_epoch"] == 1 and 0.0 <= r["test_acc"] <= 1.0 for r in runs)
    assert json.loads(out.read_text())["runs"] == json.loads(json.dumps(runs))
    table = capsys.readouterr().out
    for name in ("004", "best"):
        accs = [r["test_acc"] for r in runs if r["row"] == name]
        (line,) = [line for line in table.splitlines() if line.startswith(f"| `{name}` |")]
        assert f"**{statistics.mean(accs):.4f}** ± {statistics.stdev(accs):.4f}" in line
        assert f"{accs[0]:.4f} {accs[1]:.4f}" in line


def test_every_row_names_an_existing_config(bench):
    root = BENCH.parents[1]
    assert all((root / config).is_file() for config, _, _ in bench.ROWS.values())
    assert {"softmax", "001", "001-bn_dropout", "004", "004-dropout", "best"} <= set(bench.ROWS)


def test_each_run_keeps_its_per_epoch_accuracies(bench, monkeypatch):
    monkeypatch.chdir(BENCH.parents[1])
    (run,) = bench.main(["--fast", "--seeds", "0", "--rows", "004"])
    assert len(run["train_acc_by_epoch"]) == len(run["val_acc_by_epoch"]) == 1
    assert 0.0 <= run["train_acc_by_epoch"][0] <= 1.0


def resolved(bench, row: str, capsys) -> dict:
    """The full config a row's fit would run: its config file plus overrides, through ``--print_config``."""
    config, overrides, _ = bench.ROWS[row]
    root = BENCH.parents[1]
    with pytest.raises(SystemExit):
        build_cli(["fit", "--config", str(root / config), *overrides, "--print_config"])
    printed = yaml.safe_load(capsys.readouterr().out)
    return {**printed["model"]["init_args"], **{f"data.{k}": v for k, v in printed["data"]["init_args"].items()}}


def test_each_ablation_row_changes_exactly_what_it_names(bench, capsys):
    """An ablation row differs from ``best`` in the one setting it names (a flips row that also turned on the
    default rotation and shifts once measured 0.88 instead of 0.91)."""
    best = resolved(bench, "best", capsys)
    expected = {"best-no_batchnorm": {"batchnorm": False}, "best-no_dropout": {"dropout": 0.0},
                "best-no_weight_decay": {"weight_decay": 0.0}, "best-no_label_smoothing": {"label_smoothing": 0.0},
                # augment on, rotation and shifts off: the flips alone (hflip is already true, unused without augment)
                "best+flips": {"data.augment": True, "data.rotation": 0.0, "data.max_shift": 0}}
    assert {row for row in bench.ROWS if row.startswith("best") and row != "best"} == set(expected)
    for row, changed in expected.items():
        config = resolved(bench, row, capsys)
        assert {k: v for k, v in config.items() if best.get(k) != v} == changed, row
    assert (best["data.val_fraction"], best["data.augment"], best["data.hflip"], best["batchnorm"]) == (
        0.05, False, True, True)
