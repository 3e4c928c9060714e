"""The regularizer cost benchmark runs in --quick mode and reports one ratio per option set (no timing thresholds)."""

import json

import pytest

from tests.bench.conftest import load_bench


def test_quick_run_prints_every_option_and_writes_the_json(tmp_path, capsys):
    bench = load_bench("regularizer_cost")
    out = tmp_path / "cost.json"
    results = bench.main(["--quick", "--json", str(out)])
    assert json.loads(out.read_text()) == results
    assert list(results) == list(bench.OPTIONS)
    assert results["plain"]["vs_plain"] == 1.0
    for row in results.values():
        assert row["ms_per_step"] > 0
        assert row["vs_plain"] == pytest.approx(row["ms_per_step"] / results["plain"]["ms_per_step"])
    table = capsys.readouterr().out
    assert "| option (784-512-512-10, Adam, batch 64) | ms per step | × plain step |" in table
    assert sum(line.startswith("| ") for line in table.splitlines()) == len(bench.OPTIONS) + 1


def test_every_option_set_builds_a_model():
    from lit_reg.models import DenseClassifier

    bench = load_bench("regularizer_cost")
    heaviest = bench.OPTIONS["heaviest: all of the above"]
    assert {k for options in bench.OPTIONS.values() for k in options} == set(heaviest)  # it has every option
    for options in bench.OPTIONS.values():
        model_options = {k: v for k, v in options.items() if k != "weight_averaging"}
        DenseClassifier(input_size=784, num_classes=10, hidden_sizes=[8], **model_options)
