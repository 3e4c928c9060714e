"""The benchmark runs end to end in --quick mode and reports the expected numbers (no timing thresholds)."""

import importlib.util
import json
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "throughput.py"


@pytest.fixture(scope="module")
def throughput():
    spec = importlib.util.spec_from_file_location("throughput", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quick_run_prints_the_table_and_writes_the_json(throughput, tmp_path, capsys):
    out = tmp_path / "bench.json"
    report = throughput.main(["--quick", "--rounds", "1", "--json", str(out)])
    assert json.loads(out.read_text()) == json.loads(json.dumps(report))
    assert set(report) == {"versions", "machine", "config", "results", "peak_rss_mib"}
    assert set(report["versions"]) >= {"torch", "pytorch_lightning"}
    assert report["config"]["num_train_samples"] == 360 and report["config"]["num_val_samples"] == 40
    assert set(report["results"]) == {"64", "256"}
    for row in report["results"].values():
        for pipeline in ("ours", "hand", "lecture"):
            assert row[pipeline]["train_samples_per_s"] > 0 and row[pipeline]["val_samples_per_s"] > 0
        assert row["ratio_ours_hand"] > 0 and row["ratio_ours_lecture"] > 0
    assert 0 < report["peak_rss_mib"]["ours_fit"] < 100_000
    table = capsys.readouterr().out
    assert "| batch | (a) lit_reg fit | (b) hand loop | (c) lecture | a/b | a/c |" in table
    assert table.count("x |") >= 4 and "peak RSS" in table


def test_rounds_must_be_positive(throughput):
    with pytest.raises(SystemExit):
        throughput.parse_args(["--rounds", "0"])
