"""The study report: summary statistics, Welch's confidence interval, ranking and the files written."""

from __future__ import annotations

import csv
import json
import math
import statistics

import pytest
from scipy import stats

from lit_reg.study.report import average_curves, epoch_points, format_markdown, summarize, write_report

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def trial(variant: str, seed: int, best: float, mode: str = "min", **extra) -> dict:
    result = {"variant": variant, "seed": seed, "overrides": {}, "metric": "val_loss" if mode == "min" else "val_acc",
              "mode": mode, "best_value": best, "best_epoch": seed + 1, "epochs": seed + 3, "test": None,
              "wall_s": 1.5 + seed, "run_dir": f"logs/studies/s/{variant}/seed_{seed}/version_0",
              "curve": [1.0, best], "weight_norms": [3.0, 3.1]}
    return {**result, **extra}


def trials_of(values: dict[str, list[float]], mode: str = "min") -> list[dict]:
    return [trial(variant, seed, x, mode) for variant, xs in values.items() for seed, x in enumerate(xs)]


def welch_interval(a: list[float], b: list[float]) -> tuple[float, float]:
    """95 % CI of mean(a) - mean(b) by hand: Welch's standard error and Welch-Satterthwaite degrees of freedom."""
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    half = stats.t.ppf(0.975, df) * math.sqrt(va + vb)
    diff = statistics.mean(a) - statistics.mean(b)
    return diff - half, diff + half


BASE = [0.50, 0.52, 0.55]
BETTER = [0.30, 0.33, 0.31]  # far below the baseline: significant
NOISE = [0.49, 0.56, 0.51]  # within the seed noise: not significant


def test_means_stds_and_test_metrics_equal_statistics() -> None:
    trials = trials_of({"plain": BASE, "wd": BETTER})
    for t, (loss, acc) in zip(trials, [(0.6, 0.8), (0.7, 0.82), (0.65, 0.79), (0.4, 0.9), (0.42, 0.91), (0.41, 0.93)],
                              strict=True):
        t["test"] = {"test_loss": loss, "test_acc": acc}
    rows = {row["variant"]: row for row in summarize(trials, "plain")}
    wd = rows["wd"]
    assert wd["n"] == 3
    assert wd["best_mean"] == statistics.mean(BETTER)
    assert wd["best_std"] == statistics.stdev(BETTER)
    assert wd["test_loss_mean"] == statistics.mean([0.4, 0.42, 0.41])
    assert wd["test_acc_std"] == statistics.stdev([0.9, 0.91, 0.93])
    assert wd["best_epoch_mean"] == statistics.mean([1, 2, 3]) + 1  # stored 0-based, reported 1-based
    assert wd["epochs_mean"] == statistics.mean([3, 4, 5])
    assert wd["wall_s_mean"] == statistics.mean([1.5, 2.5, 3.5])
    assert rows["plain"]["best_mean"] == statistics.mean(BASE)


def test_training_accuracy_generalization_gap_and_final_weight_norm() -> None:
    trials = trials_of({"plain": BASE, "wd": BETTER})
    for t, (train_acc, test_acc) in zip(trials, [(0.99, 0.8), (0.97, 0.82), (0.98, 0.79), (0.9, 0.88), (0.91, 0.9),
                                                 (0.92, 0.89)], strict=True):
        t["train"], t["test"] = {"train_acc": train_acc, "train_loss": 0.1}, {"test_acc": test_acc}
        t["weight_norms"] = [3.0, 3.0 + t["seed"]]
    rows = {row["variant"]: row for row in summarize(trials, "plain")}
    assert rows["plain"]["train_acc_mean"] == pytest.approx(statistics.mean([0.99, 0.97, 0.98]))
    assert rows["plain"]["gap_mean"] == pytest.approx(statistics.mean([0.19, 0.15, 0.19]))
    assert rows["wd"]["gap_std"] == pytest.approx(statistics.stdev([0.02, 0.01, 0.03]))
    assert rows["wd"]["weight_norm_mean"] == statistics.mean([3.0, 4.0, 5.0])  # the last norm of each trial
    table = format_markdown(summarize(trials, "plain"), "plain")
    assert "| Δ test_acc [95% CI] | train_acc | gap (train − test acc) | final weight norm |" in table
    assert "0.1767 ± 0.023" in table  # plain's gap
    low, high = welch_interval([0.88, 0.9, 0.89], [0.8, 0.82, 0.79])
    diff = statistics.mean([0.88, 0.9, 0.89]) - statistics.mean([0.8, 0.82, 0.79])
    assert rows["wd"]["test_acc_vs_baseline"] == f"{diff:+.4g} [{low:+.4g}, {high:+.4g}] *"
    assert rows["plain"]["test_acc_vs_baseline"] == "baseline"


def test_no_training_scores_no_gap_columns() -> None:
    trials = trials_of({"plain": BASE, "wd": BETTER})
    for t in trials:
        t["weight_norms"] = []
    table = format_markdown(summarize(trials, "plain"), "plain")
    assert "gap" not in table and "train_acc" not in table and "weight norm" not in table


def test_confidence_interval_is_welchs_and_marks_significance() -> None:
    rows = {row["variant"]: row for row in summarize(trials_of({"plain": BASE, "wd": BETTER, "noise": NOISE}),
                                                          "plain")}
    for name, values, significant in (("wd", BETTER, True), ("noise", NOISE, False)):
        low, high = welch_interval(values, BASE)
        row = rows[name]
        assert row["diff"] == pytest.approx(statistics.mean(values) - statistics.mean(BASE))
        assert (row["ci_low"], row["ci_high"]) == (pytest.approx(low), pytest.approx(high))
        assert bool(low > 0 or high < 0) is significant  # the hand computation agrees on the case
        assert row["significant"] is significant
        assert row["vs_baseline"].endswith(" *") is significant
    assert rows["plain"]["vs_baseline"] == "baseline"
    assert rows["plain"]["significant"] is None


@pytest.mark.parametrize(("mode", "order"), [("min", ["wd", "noise", "plain"]), ("max", ["plain", "noise", "wd"])])
def test_ranking_follows_the_mode(mode: str, order: list[str]) -> None:
    rows = summarize(trials_of({"plain": BASE, "wd": BETTER, "noise": NOISE}, mode), "plain")
    assert [row["variant"] for row in rows] == order
    assert [row["rank"] for row in rows] == [1, 2, 3]


def test_one_seed_gives_no_interval() -> None:
    rows = {row["variant"]: row for row in summarize(trials_of({"plain": BASE, "single": [0.1]}), "plain")}
    assert rows["single"]["vs_baseline"] == "n/a"
    assert rows["single"]["best_std"] is None
    assert rows["single"]["ci_low"] is None and rows["single"]["significant"] is None
    rows = {row["variant"]: row for row in summarize(trials_of({"plain": [0.5], "wd": BETTER}), "plain")}
    assert rows["wd"]["vs_baseline"] == "n/a"


def test_no_spread_on_both_sides_gives_no_interval() -> None:
    rows = {row["variant"]: row for row in summarize(trials_of({"plain": [0.5, 0.5], "wd": [0.4, 0.4]}), "plain")}
    assert rows["wd"]["vs_baseline"] == "n/a"
    assert rows["wd"]["diff"] == pytest.approx(-0.1)
    assert rows["wd"]["ci_low"] is None


@pytest.mark.parametrize(("trials", "baseline", "match"), [
    ([], "plain", "`trials` is empty"),
    (trials_of({"plain": BASE}), "nope", r"`baseline` must be one of the variants \['plain'\], got 'nope'"),
    ([trial("plain", 0, 0.5), trial("plain", 0, 0.6)], "plain", "seed 0 appears twice"),
    ([trial("plain", 0, 0.5), trial("wd", 0, 0.5, mode="max")], "plain", "must share one metric and mode"),
    ([{"variant": "plain", "seed": 0}], "plain", r"lacks \['metric', 'mode', 'best_value'\]"),
])
def test_bad_input_names_the_culprit(trials: list[dict], baseline: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        summarize(trials, baseline)


def test_unequal_curves_are_averaged_over_the_seeds_that_reached_each_epoch() -> None:
    points = average_curves([[(1, 1.0), (2, 0.6), (3, 0.2)], [(1, 3.0), (2, 0.4)], [(1, 2.0)]])
    assert points == [(1, 2.0, statistics.stdev([1.0, 3.0, 2.0]), 3), (2, 0.5, statistics.stdev([0.6, 0.4]), 2),
                      (3, 0.2, 0.0, 1)]


def test_epoch_points_are_one_based_and_a_norm_before_training_is_epoch_zero() -> None:
    result = trial("plain", 0, 0.5, epochs=3, curve=[0.9, 0.7, 0.5], weight_norms=[3.0, 3.1, 3.2, 3.3])
    assert epoch_points(result, "curve") == [(1, 0.9), (2, 0.7), (3, 0.5)]
    assert epoch_points(result, "weight_norms") == [(0, 3.0), (1, 3.1), (2, 3.2), (3, 3.3)]
    assert epoch_points({**result, "weight_norms": [3.1, 3.2, 3.3]}, "weight_norms") == [(1, 3.1), (2, 3.2), (3, 3.3)]
    assert epoch_points({**result, "curve": None}, "curve") == []


def test_write_report_files(tmp_path) -> None:
    trials = trials_of({"plain": BASE, "wd": BETTER, "single": [0.4]})
    trials[0]["curve"] = [1.0, 0.8, 0.6, 0.5]  # early stopping: curves of unequal lengths
    trials[0]["weight_norms"] = [3.0, 3.2, 3.3, 3.4, 3.5]  # epochs + 1: starts before training
    trials[0]["epochs"] = 4
    out = tmp_path / "study" / "report"
    markdown = write_report(trials, out, "plain")
    assert [p.name for p in tmp_path.iterdir()] == ["study"]  # nothing written beside out_dir
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["summary.csv", "summary.md", "curves.png", "weight_norms.png", "trials.json"])
    assert (out / "summary.md").read_text() == markdown
    assert "`val_loss`" in markdown and "mode `min`" in markdown and "Welch" in markdown
    assert "| 1 | `wd` | 3 |" in markdown and "baseline" in markdown and "n/a" in markdown
    rows = summarize(trials, "plain")
    with open(out / "summary.csv", newline="") as file:
        parsed = list(csv.DictReader(file))
    assert [r["variant"] for r in parsed] == [row["variant"] for row in rows]
    for read, row in zip(parsed, rows, strict=True):
        assert set(read) == set(row)
        for key in ("best_mean", "diff", "best_epoch_mean", "wall_s_mean"):
            assert float(read[key]) == row[key]
        for key in ("best_std", "ci_low", "ci_high"):
            assert read[key] == ("" if row[key] is None else repr(row[key]))
        assert int(read["n"]) == row["n"] and int(read["rank"]) == row["rank"]
    for name in ("curves.png", "weight_norms.png"):
        data = (out / name).read_bytes()
        assert data.startswith(PNG_SIGNATURE) and len(data) > 1000
    assert json.loads((out / "trials.json").read_text()) == trials


def test_write_report_without_per_epoch_values(tmp_path) -> None:
    trials = [trial(v, s, x, curve=[], weight_norms=[]) for v, s, x in [("plain", 0, 0.5), ("wd", 0, 0.4)]]
    write_report(trials, tmp_path, "plain")
    assert (tmp_path / "curves.png").read_bytes().startswith(PNG_SIGNATURE)
