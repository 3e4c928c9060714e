"""`search:` studies: the range forms and their errors, a tiny TPE search on the toy data with its report, resume,
the pruning callback, pruned trials, and a dead worker's search trial."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from lit_reg.callbacks import LearningCurves
from lit_reg.cli import build_cli, cli_main
from lit_reg.study import engine
from lit_reg.study.engine import open_storage, open_study, run_study, study_dir, work_search
from lit_reg.study.pruning import OptunaPruning, active_trial
from lit_reg.study.spec import StudySpec, parse_range

TOY = Path(__file__).resolve().parents[2] / "configs" / "toy_regression.yaml"
SEARCH = (f"base: {TOY}\nsearch:\n  model.weight_decay: log [1e-5, 1e-1]\n  model.lr: [0.01, 0.1]\n"
          "overrides: {model.hidden_sizes: [4], trainer.max_epochs: 3}\n")
FAST = ["--model.hidden_sizes", "[4]", "--trainer.enable_progress_bar", "false", "--trainer.logger", "false",
        "--trainer.enable_checkpointing", "false", "--early_stopping", "null"]


def load(folder: Path, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=open_storage(None, folder))


@pytest.mark.parametrize(("value", "expected"), [
    ([0.0, 0.6], {"kind": "float", "low": 0.0, "high": 0.6, "log": False}),
    ("log [1e-6, 1e-2]", {"kind": "float", "low": 1e-6, "high": 1e-2, "log": True}),
    ({"low": 1e-6, "high": 0.01, "log": True}, {"kind": "float", "low": 1e-6, "high": 0.01, "log": True}),
    ({"low": 0, "high": 1}, {"kind": "float", "low": 0.0, "high": 1.0, "log": False}),
    ("int [1, 4]", {"kind": "int", "low": 1, "high": 4, "log": False}),
    ("int log [2, 64]", {"kind": "int", "low": 2, "high": 64, "log": True}),
    ({"low": 1, "high": 4, "int": True}, {"kind": "int", "low": 1, "high": 4, "log": False}),
    ("choice [relu, tanh, 0.5]", {"kind": "choice", "choices": ["relu", "tanh", 0.5]}),
    ({"choices": [True, False]}, {"kind": "choice", "choices": [True, False]}),
])
def test_range_forms(value: object, expected: dict) -> None:
    assert parse_range(value) == expected


def test_search_spec_in_a_file(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(SEARCH + "seeds: [7, 8]\nn_trials: 6\n")
    spec = StudySpec.from_file(path)
    assert spec.search == {"model.weight_decay": {"kind": "float", "low": 1e-5, "high": 0.1, "log": True},
                           "model.lr": {"kind": "float", "low": 0.01, "high": 0.1, "log": False}}
    assert spec.n_trials == 6 and spec.variants == {} and spec.pairs() == [] and spec.baseline == ""
    assert spec.fingerprint() == {"search": spec.search, "seed": 7, "metric": "val_loss", "mode": "min"}
    assert spec.search_points() == {"search (low)": {"model.weight_decay": 1e-5, "model.lr": 0.01},
                                    "search (high)": {"model.weight_decay": 0.1, "model.lr": 0.1}}


@pytest.mark.parametrize(("text", "match"), [
    ("search: {model.lr: 'log [0, 1]'}\n", r"`search.model.lr` `log` needs low > 0, got \[0, 1\]"),
    ("search: {model.lr: [0.5, 0.1]}\n", r"`search.model.lr` needs low < high, got \[0.5, 0.1\]"),
    ("search: {model.lr: [0.1]}\n", r"`search.model.lr` must be \[low, high\] with two numbers"),
    ("search: {model.lr: [a, b]}\n", r"`search.model.lr` must be \[low, high\] with two numbers"),
    ("search: {model.lr: 'sqrt [1, 2]'}\n", r"`search.model.lr` must be a range: \[low, high\] \(float\), 'log"),
    ("search: {model.lr: 0.1}\n", r"`search.model.lr` must be a range"),
    ("search: {model.hidden_sizes: 'int [0.5, 2]'}\n", r"`search.model.hidden_sizes` `int` needs whole-number bounds"),
    ("search: {model.activation: 'choice []'}\n", r"`search.model.activation` `choice` takes a non-empty list"),
    ("search: {model.lr: {low: 0.1}}\n", r"`search.model.lr` must be \[low, high\] with two numbers"),
    ("search: {model.lr: {low: 0.1, high: 1, spread: 2}}\n", r"`search.model.lr` must have `low` and `high`"),
    ("search: {model.lr: {low: 0.1, high: 1, log: yes please}}\n", r"`log` and `int` must be true or false"),
    ("search: {}\n", r"`search` must map dotted keys to ranges"),
    ("search: {model.lr: [0.1, 1]}\nvariants: {a: {}}\n",
     r"`variants` or `grid` must be given, not both and not neither \(or `search` alone: exactly one of the three; "
     r"the file has `variants` and `search`\)"),
    ("search: {model.lr: [0.1, 1]}\nn_trials: 0\n", r"`n_trials` must be a positive integer, got 0"),
    ("variants: {a: {}}\nn_trials: 3\n", r"`n_trials` only goes with `search`"),
    ("search: {model.lr: [0.1, 1]}\nbaseline: a\n", r"`baseline` does not go with `search`"),
])
def test_bad_search_names_the_file_and_key(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("base: {}\n" + text)
    with pytest.raises(ValueError, match=match) as info:
        StudySpec.from_file(path)
    assert str(info.value).startswith(f"study file {path}: ")


def test_a_misspelled_search_key_fails_before_training(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(SEARCH.replace("model.lr:", "model.lrr:"))
    with pytest.raises(ValueError, match=r"variant 'search \(low\)' .*lrr"):
        StudySpec.from_file(path).check_overrides()


def test_a_search_needs_n_trials_and_n_trials_needs_a_search(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "s.yaml").write_text(SEARCH)
    (tmp_path / "v.yaml").write_text(f"base: {TOY}\nvariants: {{a: {{}}}}\n")
    for args, message in [(["s.yaml"], r"study file s.yaml is a search: give the number of trials with --n-trials N"),
                          (["v.yaml", "--n-trials", "3"], r"--n-trials only goes with a study file with `search:`"),
                          (["s.yaml", "--n-trials", "0"], r"--n-trials must be at least 1, got 0")]:
        with pytest.raises(SystemExit):
            cli_main(["study", *args])
        assert re.search(message, capsys.readouterr().err)
    assert not (tmp_path / "logs").exists()


def test_a_tiny_search_finishes_with_its_report_and_resumes(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(SEARCH)
    run = subprocess.run([sys.executable, "-m", "lit_reg", "study", "s.yaml", "--n-trials", "4", "--workers", "1"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    folder = study_dir("s", tmp_path / "logs")
    study = load(folder, "s")
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 4
    trials = json.loads((folder / "trials.json").read_text())
    assert [t["number"] for t in trials] == [0, 1, 2, 3]
    for trial, stored in zip(study.trials, trials, strict=True):
        assert stored["params"] == stored["overrides"] == trial.params
        assert 1e-5 <= trial.params["model.weight_decay"] <= 0.1 and 0.01 <= trial.params["model.lr"] <= 0.1
        assert stored["best_value"] == trial.value == min(stored["curve"]) and stored["epochs"] == 3
        assert stored["pruned"] is False and stored["seed"] == 0
        assert (tmp_path / stored["run_dir"]) == folder / f"trial_{trial.number}" / "seed_0" / "version_0"
        assert dict(trial.intermediate_values) == dict(enumerate(stored["curve"]))  # reported after each epoch
    assert len({tuple(t.params.values()) for t in study.trials}) == 4
    best = study.best_trial
    report = (folder / "search.md").read_text()
    assert report in run.stdout
    assert "Search: 4 finished trials (0 pruned by the median pruner)" in report
    params = ", ".join(f"`{key}` = {value:.4g}" for key, value in best.params.items())
    assert f"Best: trial {best.number}, `val_loss` = {best.value:.4g} with {params}" in report
    assert f"| 1 | {best.number} | {best.value:.4g} |" in report
    assert re.search(r"^\| `model\.(lr|weight_decay)` \| 0\.\d{3} \|$", report, re.MULTILINE)
    assert "PedAnovaImportanceEvaluator" in report and "over the 4 complete trials" in report

    rerun = subprocess.run([sys.executable, "-m", "lit_reg", "study", "s.yaml", "--n-trials", "5", "--workers", "1"],
                           cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "4 done, 1 to run" in rerun.stdout and "[5/5] trial 4 (" in rerun.stdout
    study = load(folder, "s")
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 5
    assert study.trials[4].params not in [t.params for t in study.trials[:4]]  # a resumed sampler draws anew
    assert not (folder / "trial_0" / "seed_0" / "version_1").exists()  # nothing finished ran again


class FakeTrial:
    """Records reports; ``should_prune()`` is True from report number ``prune_at`` on (0-based), or never."""

    def __init__(self, prune_at: int | None) -> None:
        self.prune_at = prune_at
        self.reports: list[tuple[int, float]] = []

    def report(self, value: float, step: int) -> None:
        self.reports.append((step, value))

    def should_prune(self) -> bool:
        return self.prune_at is not None and len(self.reports) > self.prune_at


@pytest.mark.parametrize(("prune_at", "epochs"), [(1, 2), (None, 4)])
def test_the_pruning_callback_stops_the_fit_when_the_pruner_says_so(prune_at: int | None, epochs: int, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Through the command line as the study adds it: the trial comes from `active_trial`."""
    monkeypatch.chdir(tmp_path)  # no logger: the callbacks' plots and the saved config go to the working folder
    trial = FakeTrial(prune_at)
    with active_trial(trial):
        cli = build_cli(["fit", "--config", str(TOY), *FAST, "--trainer.max_epochs", "4",
                         "--trainer.callbacks+=lit_reg.study.pruning.OptunaPruning",
                         "--trainer.callbacks.init_args.monitor", "val_loss"])
    pruning = next(c for c in cli.trainer.callbacks if isinstance(c, OptunaPruning))
    curves = next(c for c in cli.trainer.callbacks if isinstance(c, LearningCurves))
    assert cli.trainer.current_epoch == epochs
    assert pruning.trial is trial and pruning.pruned is (prune_at is not None) and pruning.pruned_epoch == prune_at
    assert trial.reports == [(epoch, curves.history[epoch]["val_loss"]) for epoch in range(epochs)]  # no sanity check


def test_the_pruning_callback_without_a_trial_does_nothing_and_checks_its_arguments(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    cli = build_cli(["fit", "--config", str(TOY), *FAST, "--trainer.max_epochs", "2",
                     "--trainer.callbacks+=lit_reg.study.pruning.OptunaPruning"])
    pruning = next(c for c in cli.trainer.callbacks if isinstance(c, OptunaPruning))
    assert pruning.trial is None and not pruning.pruned and cli.trainer.current_epoch == 2
    with pytest.raises(ValueError, match=r"`monitor` must be a logged metric's name such as val_loss, got ''"):
        OptunaPruning("")
    with pytest.raises(ValueError, match=r"`trial` must be an optuna.Trial \(with report\(\) and should_prune\(\)\)"):
        OptunaPruning("val_loss", trial=object())


def test_pruned_trials_are_told_pruned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A pruner that prunes at the first report: every trial stops after one epoch and is stored PRUNED."""
    monkeypatch.setattr(engine.optuna.pruners, "MedianPruner", lambda **_: optuna.pruners.ThresholdPruner(upper=0.0))
    path = tmp_path / "s.yaml"
    path.write_text(SEARCH + "name: pruned\n")
    spec = StudySpec.from_file(path)
    results = run_study(spec, workers=1, root=tmp_path / "logs", n_trials=2)
    study = load(study_dir("pruned", tmp_path / "logs"), "pruned")
    assert [t.state for t in study.trials] == [TrialState.PRUNED] * 2
    assert [(r["pruned"], r["pruned_epoch"], r["epochs"]) for r in results] == [(True, 0, 1)] * 2
    assert [t.value for t in study.trials] == [r["curve"][0] for r in results]
    importances, note = engine.param_importances(spec, root=tmp_path / "logs")
    assert importances == {} and note == ("Parameter importances need at least 2 complete (not pruned) trials; the "
                                          "study has 0.")


def test_a_dead_workers_search_trial_is_failed_and_replaced(tmp_path: Path) -> None:
    spec = StudySpec.from_dict({"base": str(TOY), "search": {"model.lr": [0.01, 0.1]},
                                "overrides": {"model.hidden_sizes": [4], "trainer.max_epochs": 1}}, name="dead")
    study = open_study(spec, open_storage(None, tmp_path))
    orphan = study.ask()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    study._storage.set_trial_user_attr(orphan._trial_id, "worker", {"host": engine._host(), "pid": int(dead.stdout)})
    assert work_search(spec, None, tmp_path, {}, n_trials=1) == 1
    study = load(tmp_path, "dead")
    assert [t.state for t in study.trials] == [TrialState.FAIL, TrialState.COMPLETE]
    assert study.trials[0].user_attrs["error"] == "its worker died (process gone or no heartbeat)"
    assert work_search(spec, None, tmp_path, {}, n_trials=1) == 0  # done: asks nothing more
    assert len(load(tmp_path, "dead").trials) == 2
