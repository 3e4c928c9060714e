"""bench/fashion_mnist.py in --fast mode: every row it runs is the CLI's fit + test of the best checkpoint."""

import json
import statistics
from pathlib import Path

import pytest

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
