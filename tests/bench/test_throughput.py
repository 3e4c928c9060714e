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


def test_precision_rows_and_time_to_accuracy_in_quick_mode(throughput, tmp_path, capsys):
    report = throughput.main(["--quick", "--rounds", "1", "--batch-sizes", "64", "--precision-rows",
                              "--time-to-accuracy", "--json", str(tmp_path / "bench.json")])
    assert json.loads((tmp_path / "bench.json").read_text()) == json.loads(json.dumps(report))
    assert report["config"]["pipelines"] == ["ours", "hand", "lecture", "lightning", "hand_bf16", "ours_bf16"]
    row = report["results"]["64"]
    for pipeline in ("hand_bf16", "ours_bf16"):
        assert row[pipeline]["train_samples_per_s"] > 0 and row[pipeline]["val_samples_per_s"] > 0
    for numerator, denominator in (("hand_bf16", "hand"), ("ours_bf16", "hand"), ("ours_bf16", "ours")):
        assert row[f"ratio_{numerator}_{denominator}"] == pytest.approx(
            row[numerator]["train_samples_per_s"] / row[denominator]["train_samples_per_s"])
    assert "ratio_ours_compile_hand" not in row
    tta = report["time_to_accuracy"]
    assert tta["target"] == 0.3 and tta["batch_size"] == 64 and tta["max_epochs"] == 3
    assert tta["val_every_batches"] == 1  # 6 batches of 64 per epoch: a quarter epoch rounds down to one batch
    for name in ("ours_bf16", "hand"):
        (run,) = tta[name]["rounds"]
        assert 0 < run["epochs"] <= 3 and 0.0 <= run["val_acc"] <= 1.0
        assert run["reached"] == (run["val_acc"] >= 0.3) == (run["seconds"] is not None)
    if tta["ours_bf16"]["seconds"] and tta["hand"]["seconds"]:
        assert tta["ratio_ours_bf16_hand"] == pytest.approx(tta["ours_bf16"]["seconds"] / tta["hand"]["seconds"])
    table = capsys.readouterr().out
    assert ("| batch | (a) lit_reg fit | (b) hand loop | (c) lecture | (d) bare Lightning | a/b | a/c | d/b | "
            "val (a) | val (b) | val (c) | val (d) |") in table  # the main table is unchanged
    assert "| batch | (b) hand loop | (e) hand loop bf16 | (f) lit_reg fit bf16 | e/b | f/b | f/a |" in table
    assert "time to 0.3 validation accuracy (batch 64" in table and "f/b " in table


@pytest.mark.slow  # torch.compile builds its kernels: tens of seconds on one core
def test_compile_row_times_the_second_epoch(throughput, capsys):
    report = throughput.main(["--quick", "--rounds", "1", "--batch-sizes", "64", "--compile-rows"])
    timed = report["results"]["64"]["ours_compile"]
    assert timed["train_samples_per_s"] == pytest.approx(360 / timed["epoch_s"])
    assert timed["first_epoch_s"] > timed["epoch_s"]  # the first epoch compiles
    assert "(g) lit_reg fit compiled" in capsys.readouterr().out


def test_debians_flat_gz_files_are_unpacked_into_torchvisions_layout(throughput, tmp_path):
    import gzip

    from datamodules.fakes import write_fashion_mnist

    write_fashion_mnist(str(tmp_path / "fake"), num_train=20, num_test=10)
    raw = tmp_path / "fake" / "FashionMNIST" / "raw"
    flat = tmp_path / "flat"  # Debian's layout: the four .gz files side by side
    flat.mkdir()
    for path in raw.iterdir():
        if not path.name.endswith(".gz"):
            (flat / f"{path.name}.gz").write_bytes(gzip.compress(path.read_bytes()))
    assert throughput.torchvision_layout(str(tmp_path / "fake"), str(tmp_path / "unused")) == str(tmp_path / "fake")
    unpacked = throughput.torchvision_layout(str(flat), str(tmp_path / "tmp"))
    assert unpacked == str(tmp_path / "tmp")
    from torchvision.datasets import FashionMNIST

    assert len(FashionMNIST(unpacked, train=True, download=False)) == 20
    with pytest.raises(SystemExit, match="no train-images-idx3-ubyte"):
        throughput.torchvision_layout(str(tmp_path / "empty"), str(tmp_path / "tmp2"))
