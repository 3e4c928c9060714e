"""A tiny study on the toy data: trial folders, stored results, resume, refusal of a changed study, --new,
two racing workers, recovery of a trial left RUNNING by a dead worker, and a worker killed mid-trial then rerun."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from lit_reg.cli import cli_main
from lit_reg.study.engine import claim, open_storage, open_study, recover, run_study, study_dir
from lit_reg.study.spec import StudySpec

TOY = Path(__file__).resolve().parents[2] / "configs" / "toy_regression.yaml"
TINY = (f"base: {TOY}\nvariants: {{plain: {{}}, wd: {{model.weight_decay: 0.05}}}}\nseeds: [0, 1]\n"
        "overrides: {model.hidden_sizes: [4], trainer.max_epochs: 3}\n")


def load(folder: Path, name: str = "tiny") -> optuna.Study:
    return optuna.load_study(study_name=name, storage=open_storage(None, folder))


def study_command(study_file: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "lit_reg", "study", study_file, *args]


def summary_rows(path: Path) -> list[dict[str, str]]:
    """``summary.csv``'s rows without the wall time (the only column two identical studies differ in)."""
    with open(path, newline="") as file:
        return [{k: v for k, v in row.items() if k != "wall_s_mean"} for row in csv.DictReader(file)]


def best_values(study: optuna.Study) -> dict[tuple[str, int], tuple[float, list[float]]]:
    """(variant, seed) → (best value, the metric per epoch) of the study's COMPLETE trials."""
    return {(t.user_attrs["variant"], t.user_attrs["seed"]): (t.value, t.user_attrs["result"]["curve"])
            for t in study.get_trials(states=(TrialState.COMPLETE,))}


def kill_mid_trial_then_rerun(cwd: Path, study_file: str, storage_args: list[str],
                              load_study: Callable[[], optuna.Study], timeout_s: float = 120) -> optuna.Study:
    """Start one `lit-reg study` worker, SIGKILL it while its second trial is RUNNING (the first one COMPLETE),
    check the storage shows that, rerun the same command to the end and return the finished study."""
    worker = subprocess.Popen(study_command(study_file, *storage_args, "--workers", "1"), cwd=cwd,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and worker.poll() is None:
            with contextlib.suppress(Exception):  # no study yet (KeyError), or its storage is being set up
                trials = load_study().get_trials(deepcopy=False)
                states = [t.state for t in trials]
                running = [t for t in trials if t.state == TrialState.RUNNING and "heartbeat" in t.user_attrs]
                if states.count(TrialState.COMPLETE) == 1 and running:
                    break
            time.sleep(0.05)
        else:
            pytest.fail(f"no second trial started within {timeout_s} s (worker exit status {worker.poll()})")
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()
    killed = load_study()
    running = killed.get_trials(states=(TrialState.RUNNING,))
    assert len(running) == 1 and running[0].user_attrs["worker"]["pid"] == worker.pid
    assert len(killed.get_trials(states=(TrialState.COMPLETE,))) == 1
    rerun = subprocess.run(study_command(study_file, *storage_args, "--workers", "1"), cwd=cwd, capture_output=True,
                           text=True, timeout=timeout_s)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "1 trial(s) left running by a dead worker will run again" in rerun.stdout
    assert "1 done, 3 to run" in rerun.stdout
    study = load_study()
    assert [t.user_attrs.get("error") for t in study.get_trials(states=(TrialState.FAIL,))] == [
        "its worker died (process gone or no heartbeat)"]
    return study


def by_pair(study: optuna.Study, state: TrialState = TrialState.COMPLETE) -> dict[tuple[str, int], int]:
    counts: dict[tuple[str, int], int] = {}
    for trial in study.get_trials(states=(state,)):
        key = (trial.user_attrs["variant"], trial.user_attrs["seed"])
        counts[key] = counts.get(key, 0) + 1
    return counts


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished 2 variants x 2 seeds study (1 worker), run through `lit-reg study` in a fresh folder."""
    root = tmp_path_factory.mktemp("study")
    (root / "tiny.yaml").write_text(TINY)
    subprocess.run([sys.executable, "-m", "lit_reg", "study", "tiny.yaml", "--workers", "1"], cwd=root, check=True,
                   capture_output=True, text=True)
    shutil.copy(study_dir("tiny", root / "logs") / "summary.csv", root / "reference_summary.csv")  # later tests
    (root / "reference_values.json").write_text(json.dumps(  # change the study: keep what it first gave
        [[*pair, *values] for pair, values in best_values(load(study_dir("tiny", root / "logs"))).items()]))
    return root


def test_every_trial_completes_once_with_its_folder(finished: Path) -> None:
    folder = study_dir("tiny", finished / "logs")
    study = load(folder)
    assert by_pair(study) == {("plain", 0): 1, ("wd", 0): 1, ("plain", 1): 1, ("wd", 1): 1}
    assert len(study.trials) == 4
    for trial in study.trials:
        result = trial.user_attrs["result"]
        variant, seed = result["variant"], result["seed"]
        assert (finished / result["run_dir"]) == folder / variant / f"seed_{seed}" / "version_0"
        assert (finished / result["run_dir"] / "learning_curves.png").is_file()
        assert result["best_value"] == min(result["curve"]) == trial.value
        assert result["curve"][result["best_epoch"]] == result["best_value"]
        assert result["epochs"] == len(result["curve"]) == 3
        assert len(result["weight_norms"]) == 4  # before training, then one per epoch
        assert result["overrides"] == ({"model.weight_decay": 0.05} if variant == "wd" else {})
        assert result["test"] is None and result["wall_s"] > 0


def test_report_files_and_rerun_trains_nothing(finished: Path) -> None:
    folder = study_dir("tiny", finished / "logs")
    trials = json.loads((folder / "trials.json").read_text())
    assert sorted((t["variant"], t["seed"]) for t in trials) == [("plain", 0), ("plain", 1), ("wd", 0), ("wd", 1)]
    assert (folder / "summary.md").is_file() and (folder / "summary.csv").is_file()
    rerun = subprocess.run([sys.executable, "-m", "lit_reg", "study", "tiny.yaml", "--report"], cwd=finished,
                           check=True, capture_output=True, text=True)
    assert "| `plain` |" in rerun.stdout and "[1/4]" not in rerun.stdout
    rerun = subprocess.run([sys.executable, "-m", "lit_reg", "study", "tiny.yaml"], cwd=finished,
                           check=True, capture_output=True, text=True)
    assert "4 done, 0 to run" in rerun.stdout and re.search(r"^\[\d+/4\]", rerun.stdout, re.MULTILINE) is None
    assert len(load(folder).trials) == 4
    assert not (folder / "plain" / "seed_0" / "version_1").exists()


def test_changed_variants_are_refused_then_new_keeps_the_old(finished: Path, capsys: pytest.CaptureFixture,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(finished)
    (finished / "tiny.yaml").write_text(TINY.replace("wd: {model.weight_decay: 0.05}", "wd: {model.weight_decay: 0.5}")
                                        .replace("seeds: [0, 1]", "seeds: [0]"))
    with pytest.raises(SystemExit):
        cli_main(["study", "tiny.yaml"])
    error = capsys.readouterr().err
    assert "differs from the stored study 'tiny'" in error
    assert "changed wd: {'model.weight_decay': 0.05} -> {'model.weight_decay': 0.5}" in error
    assert "seeds [0, 1] -> [0]" in error and "--new" in error
    folder = study_dir("tiny", finished / "logs")
    assert len(load(folder).trials) == 4  # nothing written
    cli_main(["study", "tiny.yaml", "--new", "--workers", "1"])
    out = capsys.readouterr().out
    assert "previous study 'tiny' is kept as" in out and "[2/2]" in out
    kept = list(folder.glob("optuna.journal.*"))
    assert len(kept) == 1
    old = optuna.load_study(study_name="tiny", storage=optuna.storages.journal.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(kept[0]))))
    assert len(old.trials) == 4
    assert by_pair(load(folder)) == {("plain", 0): 1, ("wd", 0): 1}
    assert (folder / "wd" / "seed_0" / "version_1").is_dir()  # the old run folder is kept too
    (finished / "tiny.yaml").write_text(TINY)


def test_a_study_file_that_only_adds_variants_or_seeds_runs_just_the_new_pairs(
        tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    small = TINY.replace("seeds: [0, 1]", "seeds: [0]").replace("max_epochs: 3", "max_epochs: 1")
    (tmp_path / "tiny.yaml").write_text(small)
    cli_main(["study", "tiny.yaml", "--workers", "1"])
    folder = study_dir("tiny", tmp_path / "logs")
    before = {(t.user_attrs["variant"], t.user_attrs["seed"]): t.value for t in load(folder).trials}
    (tmp_path / "tiny.yaml").write_text(small.replace("wd: {model.weight_decay: 0.05}",
                                                      "wd: {model.weight_decay: 0.05}, drop: {model.dropout: 0.1}")
                                        .replace("seeds: [0]", "seeds: [0, 1]"))
    capsys.readouterr()
    cli_main(["study", "tiny.yaml", "--workers", "1"])
    out = capsys.readouterr().out
    assert "adds variants added ['drop']; seeds [0] -> [0, 1]" in out and "2 done, 4 to run" in out
    after = {(t.user_attrs["variant"], t.user_attrs["seed"]): t.value for t in load(folder).trials}
    assert by_pair(load(folder)) == {(v, s): 1 for v in ("plain", "wd", "drop") for s in (0, 1)}
    assert {pair: after[pair] for pair in before} == before  # the finished trials are kept, not rerun
    assert not (folder / "plain" / "seed_0" / "version_1").exists()


def test_two_workers_run_every_pair_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny.yaml").write_text(TINY.replace("seeds: [0, 1]", "seeds: [0, 1, 2]"))
    spec = StudySpec.from_file(tmp_path / "tiny.yaml")
    results = run_study(spec, workers=2, root=tmp_path / "logs")
    study = load(study_dir("tiny", tmp_path / "logs"))
    assert by_pair(study) == {pair: 1 for pair in spec.pairs()}
    assert sorted((r["variant"], r["seed"]) for r in results) == sorted(spec.pairs())
    workers = {t.user_attrs["worker"]["pid"] for t in study.trials}
    assert len(workers) == 2  # both processes took trials


def test_dead_workers_trial_is_failed_and_enqueued_again(tmp_path: Path) -> None:
    spec = StudySpec.from_dict({"base": {}, "variants": {"a": {}, "b": {}}, "seeds": [0]}, name="dead")
    storage = open_storage(None, tmp_path)
    study = open_study(spec, storage)
    assert recover(study, spec) == (0, 2)
    assert recover(study, spec) == (0, 0)  # enqueued once
    trial = claim(study)
    assert trial is not None and trial.state == TrialState.RUNNING
    assert recover(study, spec) == (0, 0)  # its worker (this process) is alive
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    storage.set_trial_user_attr(trial._trial_id, "worker", {**trial.user_attrs["worker"],
                                                          "pid": int(dead.stdout)})
    assert recover(study, spec) == (1, 1)
    pair = (trial.user_attrs["variant"], trial.user_attrs["seed"])
    assert by_pair(study, TrialState.FAIL) == {pair: 1}
    assert by_pair(study, TrialState.WAITING) == {("a", 0): 1, ("b", 0): 1}


def test_a_duplicate_enqueue_runs_once(tmp_path: Path) -> None:
    """Two workers that started at once both enqueued the pair: the second claimed copy is not run."""
    spec = StudySpec.from_dict({"base": {}, "variants": {"a": {}}, "seeds": [0]}, name="dup")
    study = open_study(spec, open_storage(None, tmp_path))
    for _ in range(2):
        study.enqueue_trial({}, user_attrs={"variant": "a", "seed": 0})
    first = claim(study)
    assert first is not None and first.number == 0
    assert claim(study) is None  # trial 1 is a copy of the pair trial 0 holds
    assert study.trials[1].state == TrialState.FAIL and study.trials[1].user_attrs["duplicate"] == 0


@pytest.mark.slow
def test_a_worker_killed_mid_trial_then_rerun_gives_the_uninterrupted_summary(finished: Path, tmp_path: Path) -> None:
    """SIGKILL the only worker during its second trial; the rerun fails that trial, runs the three left, and the
    summary equals the uninterrupted study's (training is deterministic)."""
    (tmp_path / "tiny.yaml").write_text(TINY)
    folder = study_dir("tiny", tmp_path / "logs")
    study = kill_mid_trial_then_rerun(tmp_path, "tiny.yaml", [], lambda: load(folder))
    assert by_pair(study) == {("plain", 0): 1, ("wd", 0): 1, ("plain", 1): 1, ("wd", 1): 1}
    reference = {(v, s): (value, curve) for v, s, value, curve in
                 json.loads((finished / "reference_values.json").read_text())}
    assert best_values(study) == reference
    assert summary_rows(folder / "summary.csv") == summary_rows(finished / "reference_summary.csv")


def test_score_training_split_is_the_checkpoints_accuracy_on_the_training_data_in_eval_mode(fashion_root,
                                                                                           make_trainer):
    import torch

    from datamodules import FashionMNISTDataModule
    from lit_reg.models import DenseClassifier
    from lit_reg.study.engine import score_training_split

    torch.manual_seed(0)
    dm = FashionMNISTDataModule(data_dir=str(fashion_root), batch_size=50, download=False)
    model = DenseClassifier(hidden_sizes=[16], dropout=0.5)
    trainer = make_trainer(max_epochs=1)
    trainer.fit(model, datamodule=dm)
    scores = score_training_split(trainer, model, dm, ckpt_path=None)
    assert dm.test_split == "test"  # put back
    x, y = dm.datasets["train"].inputs, dm.datasets["train"].targets
    with torch.no_grad():
        by_hand = (model.eval()(dm.transform_inputs(x)).argmax(-1) == y).float().mean().item()
    assert scores["train_acc"] == pytest.approx(by_hand, abs=1e-6)
    assert set(scores) == {"train_loss", "train_acc"}
