"""The benchmark runs end to end in --quick mode and reports the expected numbers (no timing thresholds)."""

import json

import pytest

from tests.bench.conftest import load_bench


@pytest.fixture(scope="module")
def throughput():
    return load_bench("throughput")


def test_quick_run_prints_the_table_and_writes_the_json(throughput, tmp_path, capsys):
    out = tmp_path / "bench.json"
    report = throughput.main(["--quick", "--rounds", "1", "--json", str(out)])
    assert json.loads(out.read_text()) == json.loads(json.dumps(report))
    assert set(report) == {"versions", "machine", "config", "results", "peak_rss_mib"}
    assert set(report["versions"]) >= {"torch", "pytorch_lightning"}
    assert report["config"]["num_train_samples"] == 360 and report["config"]["num_val_samples"] == 40
    assert set(report["results"]) == {"64", "256"}
    for row in report["results"].values():
        for pipeline in ("ours", "hand", "lecture", "lightning"):
            assert row[pipeline]["train_samples_per_s"] > 0 and row[pipeline]["val_samples_per_s"] > 0
            assert len(row[pipeline]["train_rounds"]) == 1
        for ratio in ("ours_hand", "ours_lecture", "lightning_hand"):
            expected = row[ratio.split("_")[0]]["train_samples_per_s"] / row[ratio.split("_")[1]]["train_samples_per_s"]
            assert row[f"ratio_{ratio}"] == pytest.approx(expected)
            assert row[f"ratio_{ratio}_per_round_median"] == pytest.approx(expected)
    assert 0 < report["peak_rss_mib"]["ours_fit"] < 100_000
    table = capsys.readouterr().out
    assert ("| batch | (a) lit_reg fit | (b) hand loop | (c) lecture | (d) bare Lightning | a/b | a/c | d/b | "
            "val (a) | val (b) | val (c) | val (d) |") in table
    rows = [line for line in table.splitlines() if line.startswith(("| 64 |", "| 256 |"))]
    assert len(rows) == 2 and all(line.count("|") == 13 and line.count("x |") == 3 for line in rows)
    assert "peak RSS" in table


def test_rounds_must_be_positive(throughput):
    with pytest.raises(SystemExit):
        throughput.parse_args(["--rounds", "0"])
