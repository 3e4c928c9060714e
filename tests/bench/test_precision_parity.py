"""bench/precision_parity.py: the data each config gets, one quick fit in each precision, the table, a quick run."""

import json

import pytest

from tests.bench.conftest import load_bench


@pytest.fixture(scope="module")
def parity():
    return load_bench("precision_parity")


def test_each_default_config_gets_its_data(parity, tmp_path):
    assert parity.data_overrides("configs/fashion_mnist_004.yaml", "/data/fm") == ["--data.data_dir", "/data/fm"]
    # Bitmoji has train and valid folders only: it is tested on the validation folder
    assert parity.data_overrides("configs/bitmoji.yaml", "/data/fm") == [
        "--data.test_dir", "../shared/data/bitmoji_bw/valid"]
    quick = parity.data_overrides("configs/bitmoji.yaml", "/data/fm", fake_root=str(tmp_path))
    assert quick[quick.index("--data.train_dir") + 1] == str(tmp_path / "images" / "train")
    assert quick[quick.index("--data.test_dir") + 1] == str(tmp_path / "images" / "valid")
    assert parity.data_overrides("configs/fashion_mnist_best.yaml", "/x", fake_root=str(tmp_path)) == [
        "--data.data_dir", str(tmp_path)]


@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])
def test_one_quick_fit_and_test_in_each_precision(parity, tmp_path, monkeypatch, precision):
    monkeypatch.chdir(parity.REPO)  # the configs' relative paths, as the worker processes run
    parity.write_fake_data(str(tmp_path / "data"))
    overrides = [*parity.data_overrides("configs/fashion_mnist_004.yaml", "", str(tmp_path / "data")),
                 "--trainer.max_epochs", "1"]
    torch_threads = pytest.importorskip("torch").get_num_threads()
    result = parity.fit_and_test("configs/fashion_mnist_004.yaml", 0, precision, overrides, str(tmp_path / "logs"),
                                 threads=torch_threads)
    assert result["trainer_precision"] == precision and result["epochs"] == 1
    assert 0.0 <= result["test_acc"] <= 1.0 and result["test_loss"] > 0
    assert (tmp_path / "logs" / f"fashion_mnist_004_{precision}_seed0" / "version_0" / "config.yaml").is_file()


def test_summary_and_table_give_the_difference_in_points(parity):
    runs = [{"config": "c.yaml", "seed": seed, "precision": precision, "test_acc": acc}
            for seed, precision, acc in [(0, "32-true", 0.90), (1, "32-true", 0.92), (0, "bf16-mixed", 0.905),
                                         (1, "bf16-mixed", 0.921)]]
    (row,) = parity.summarize(runs, ("32-true", "bf16-mixed"), tolerance=0.5)
    assert row["32-true"]["mean"] == pytest.approx(0.91) and row["32-true"]["n"] == 2
    assert row["difference_points"]["mean"] == pytest.approx(0.3)
    assert row["difference_points"]["per_seed"] == pytest.approx([0.5, 0.1])
    assert row["difference_points"]["within_tolerance"] is True
    table = parity.table([row], ("32-true", "bf16-mixed"), 0.5)
    assert "| c.yaml | 91.00 ± 1.41 (n=2) | 91.30 ± 1.13 (n=2) | +0.30 ± 0.28 | yes |" in table
    (far,) = parity.summarize([{**r, "test_acc": r["test_acc"] + (0.01 if r["precision"] == "bf16-mixed" else 0)}
                               for r in runs], ("32-true", "bf16-mixed"), tolerance=0.3)
    assert far["difference_points"]["mean"] == pytest.approx(1.3)
    assert far["difference_points"]["within_tolerance"] is False
    assert "| +1.30 ± 0.28 | no |" in parity.table([far], ("32-true", "bf16-mixed"), 0.3)


def test_bad_arguments_are_refused(parity):
    with pytest.raises(SystemExit):
        parity.parse_args(["--workers", "0"])
    with pytest.raises(SystemExit):
        parity.parse_args(["--configs", "configs/missing.yaml"])


@pytest.mark.slow  # 2 fits, each in a fresh Python process (about 10 s of imports each)
def test_quick_mode_runs_every_fit_in_workers_and_writes_the_json(parity, tmp_path, capsys):
    out = tmp_path / "parity.json"
    report = parity.main(["--quick", "--seeds", "0", "--workers", "2", "--configs", "configs/fashion_mnist_004.yaml",
                          "--json", str(out), "--log-dir", str(tmp_path / "runs")])
    assert json.loads(out.read_text()) == json.loads(json.dumps(report))
    assert sorted((r["config"], r["precision"]) for r in report["runs"]) == [
        ("configs/fashion_mnist_004.yaml", "32-true"), ("configs/fashion_mnist_004.yaml", "bf16-mixed")]
    assert all(r["trainer_precision"] == r["precision"] and r["epochs"] == 1 for r in report["runs"])
    assert [row["config"] for row in report["summary"]] == ["configs/fashion_mnist_004.yaml"]
    table = capsys.readouterr().out
    assert "| config | 32-true test acc | bf16-mixed test acc | bf16-mixed − 32-true (points) | within 0.3 |" in table
    assert len([line for line in table.splitlines() if line.startswith("| configs/")]) == 1
