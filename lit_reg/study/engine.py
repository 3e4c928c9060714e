"""The study engine: every (variant, seed) an Optuna trial, claimed once, each an ordinary ``lit-reg fit``.

How each (variant, seed) runs exactly once, on any Optuna storage that several processes share (the journal file
by default, PostgreSQL across machines):

- the study is created under the study's name and every pair is **enqueued** as a fixed trial (WAITING) that
  carries ``variant`` and ``seed`` in its user attributes (no ``GridSampler``, which can run a point twice);
- a worker **claims** a WAITING trial by moving it to RUNNING through the storage, as ``Study.ask`` does: the
  journal storage and the RDB storage (a row lock) let only one process win; the loser tries the next one;
- a claimed trial whose pair is already COMPLETE, or also held by a lower-numbered WAITING/RUNNING trial (two
  workers started at once and both enqueued it), is not run: it is told FAIL with the user attribute
  ``duplicate``;
- a worker records its host, process id and a **heartbeat** (every :data:`HEARTBEAT_S` seconds) in the trial's
  user attributes. A RUNNING trial is *stale* when its process is gone (same host) or its heartbeat is older
  than :data:`GRACE_S` (any host); :func:`recover` marks stale trials FAIL and enqueues every pair that has no
  WAITING, RUNNING or COMPLETE trial. It runs when a command starts and when a worker finds nothing to claim.

Each finished trial stores its :func:`run_trial` result (the report's ``TrialResult``) in the user attribute
``result`` and is told the best value of the study's metric, so ``--report`` rebuilds everything from storage.

A **search** (``search:`` in the study file) has no fixed trials: each worker asks Optuna's ``TPESampler`` (seeded
from the study's first seed, the worker's index and the trials so far: parallel workers and a resumed search do not
redraw the same points, a fresh one-worker search is reproducible) for a
new trial with ``Study.ask`` and runs it with the study's first seed; an :class:`~lit_reg.study.pruning.OptunaPruning`
callback reports the metric after each validation epoch to the ``MedianPruner``, stops the fit when it says so, and
the trial is then told PRUNED. ``n_trials`` is the number of finished (COMPLETE or PRUNED) trials the study should
have: a worker stops asking when finished and running trials reach it; a trial asked beyond it (two workers asked at
once) is told FAIL with the user attribute ``surplus`` before it samples anything. Dead workers' trials are failed as
above (:func:`recover`), so a rerun asks for new trials until ``n_trials`` are finished.
"""

from __future__ import annotations

import contextlib
import datetime
import inspect
import json
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import FrozenTrial, TrialState

from lit_reg.defaults import LOG_DIR
from lit_reg.study.spec import StudySpec, override_args

if TYPE_CHECKING:
    import pytorch_lightning as pl

log = logging.getLogger(__name__)

#: seconds between two heartbeats of a running trial
HEARTBEAT_S = 20
#: a RUNNING trial whose heartbeat is older than this is taken for dead (its worker killed, its machine down)
GRACE_S = 120
JOURNAL = "optuna.journal"
LIVE = (TrialState.WAITING, TrialState.RUNNING, TrialState.COMPLETE)
#: the trials a search counts as finished
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
#: Optuna's MedianPruner settings for a search: prune from the first epoch once 5 trials have finished
PRUNER_KWARGS: dict[str, int] = {"n_startup_trials": 5, "n_warmup_steps": 0}


def study_dir(name: str, root: str | Path = LOG_DIR) -> Path:
    """``<root>/studies/<name>``: the trials' run folders, the journal and the report."""
    return Path(root) / "studies" / name


def mask_url(url: str) -> str:
    """``url`` with its password replaced by ``***``.

    Example:
        >>> mask_url("postgresql+psycopg2://me:secret@db:5432/studies")
        'postgresql+psycopg2://me:***@db:5432/studies'
    """
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL sqlalchemy understands: hide everything between ':' and '@'
        head, at, tail = url.rpartition("@")
        return f"{head.split(':', 2)[0]}:***@{tail}" if at else url


def _scrub(text: str, url: str | None) -> str:
    """``text`` without the password of ``url``."""
    if url:
        try:
            from sqlalchemy.engine import make_url

            password = make_url(url).password
        except Exception:
            password = None
        if password:
            text = text.replace(str(password), "***")
    return text


def open_storage(url: str | None, folder: Path) -> optuna.storages.BaseStorage:
    """The journal file ``<folder>/optuna.journal`` (``url`` None) or the database at ``url``.

    Raises:
        RuntimeError: the database cannot be reached (within about 10 s) or the URL is not one Optuna takes; the
            message shows the URL without its password.
    """
    if url is None:
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        folder.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(folder / JOURNAL)))
    engine_kwargs: dict[str, Any] = {}
    if url.startswith("postgresql") or url.startswith("mysql"):
        engine_kwargs["connect_args"] = {"connect_timeout": 10}
    for attempt in range(5):
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, skip_compatibility_check=False)
        except Exception as err:  # sqlalchemy and the drivers raise many types
            if attempt < 4 and _schema_race(err):  # another worker is creating Optuna's tables right now
                time.sleep(0.2 * (attempt + 1))
                continue
            error = err
            break
    detail = _scrub(" ".join(str(error).split()), url)[:300]
    raise RuntimeError(f"--storage {mask_url(url)}: cannot open the database ({type(error).__name__}: {detail}); "
                       "check the URL, the server and the credentials") from None


def _schema_race(error: Exception) -> bool:
    """Whether ``error`` comes from two processes creating Optuna's tables in an empty database at once (the
    loser's ``CREATE TABLE`` or first ``INSERT`` collides with the winner's): opening again then succeeds."""
    from sqlalchemy import exc

    return isinstance(error, exc.IntegrityError) or (isinstance(error, exc.ProgrammingError)
                                                     and "already exists" in str(error))


# ---------------------------------------------------------------------------------------------------- study setup


def _set_aside(spec: StudySpec, storage: optuna.storages.BaseStorage, folder: Path, url: str | None) -> str | None:
    """Move an existing study out of the way for ``--new``; return where it went (None when there was none)."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    if url is None:
        journal = folder / JOURNAL
        if not journal.exists():
            return None
        target = journal.with_name(f"{JOURNAL}.{stamp}")
        journal.rename(target)
        return str(target)
    try:
        storage.get_study_id_from_name(spec.name)
    except KeyError:
        return None
    new_name = f"{spec.name}-{stamp}"
    optuna.copy_study(from_study_name=spec.name, from_storage=storage, to_storage=storage, to_study_name=new_name)
    optuna.delete_study(study_name=spec.name, storage=storage)
    return f"study {new_name!r} in {mask_url(url)}"


def _differences(stored: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    lines = []
    for key in wanted:
        old, new = stored.get(key), wanted[key]
        if old == new:
            continue
        if key == "variants" and isinstance(old, dict):
            added = [v for v in new if v not in old]
            removed = [v for v in old if v not in new]
            changed = [v for v in new if v in old and old[v] != new[v]]
            parts = [f"added {added}" if added else "", f"removed {removed}" if removed else "",
                     "changed " + ", ".join(f"{v}: {old[v]} -> {new[v]}" for v in changed) if changed else ""]
            lines.append("variants " + "; ".join(p for p in parts if p))
        else:
            lines.append(f"{key} {old} -> {new}")
    return lines


def grown(stored: dict[str, Any], wanted: dict[str, Any]) -> bool:
    """Whether ``wanted`` only adds variants or seeds to a stored variant study: same metric and mode, every stored
    variant unchanged, every stored seed kept.

    Example:
        >>> old = {"variants": {"a": {}}, "seeds": [0], "metric": "val_loss", "mode": "min"}
        >>> grown(old, {**old, "variants": {"a": {}, "b": {"model.dropout": 0.2}}, "seeds": [0, 1]})
        True
        >>> grown(old, {**old, "variants": {"a": {"model.dropout": 0.1}}})
        False
    """
    if "variants" not in stored or "variants" not in wanted:
        return False
    same = all(stored.get(key) == wanted.get(key) for key in ("metric", "mode"))
    kept = all(wanted["variants"].get(name) == overrides for name, overrides in stored["variants"].items())
    return same and kept and set(stored.get("seeds", [])) <= set(wanted.get("seeds", []))


def open_study(spec: StudySpec, storage: optuna.storages.BaseStorage, create: bool = True) -> optuna.Study:
    """Create the study (enqueuing every pair) or load it, refusing one whose variants, seeds or metric differ,
    unless the study file only adds variants or seeds (:func:`grown`): then the new pairs run and the finished
    trials are kept.

    Raises:
        ValueError: the stored study was made from another version of the study file (the message lists what
            differs), or ``create`` is False and there is no study.
    """
    direction = "minimize" if spec.mode == "min" else "maximize"
    fingerprint = json.loads(json.dumps(spec.fingerprint()))  # as stored: JSON types
    try:
        if not create:
            raise optuna.exceptions.DuplicatedStudyError
        study = optuna.create_study(study_name=spec.name, storage=storage, direction=direction)
        study.set_user_attr("fingerprint", fingerprint)
        study.set_user_attr("baseline", spec.baseline)
    except optuna.exceptions.DuplicatedStudyError:
        try:
            study = optuna.load_study(study_name=spec.name, storage=storage)
        except KeyError:
            raise ValueError(f"no study {spec.name!r} in the storage yet: run `lit-reg study` without --report first"
                             ) from None
        stored = study.user_attrs.get("fingerprint")
        for _ in range(50):  # a worker that created it a moment ago has not written it yet
            if stored is not None:
                break
            time.sleep(0.1)
            stored = optuna.load_study(study_name=spec.name, storage=storage).user_attrs.get("fingerprint")
        if stored is not None and stored != fingerprint and grown(stored, fingerprint):
            study.set_user_attr("fingerprint", fingerprint)  # recover() enqueues the new pairs
            print(f"lit-reg study {spec.name}: the study file adds {'; '.join(_differences(stored, fingerprint))}; "
                  "the finished trials are kept", flush=True)
        elif stored is not None and stored != fingerprint:
            where = f"study file {spec.path}" if spec.path else "the study"
            raise ValueError(f"{where} differs from the stored study {spec.name!r}: "
                             f"{'; '.join(_differences(stored, fingerprint))}. Rerun with --new to start a new study "
                             "(the old one is kept aside) or give the study another `name`") from None
    return study


def _pair(trial: FrozenTrial) -> tuple[str, int] | None:
    attrs = trial.user_attrs
    return (attrs["variant"], int(attrs["seed"])) if "variant" in attrs and "seed" in attrs else None


def _host() -> str:
    boot = Path("/proc/sys/kernel/random/boot_id")
    return f"{socket.gethostname()}:{boot.read_text().strip() if boot.exists() else ''}"


def _alive(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat")
    if Path("/proc/self/stat").exists():
        try:
            return stat.read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")  # a zombie is dead
        except (OSError, IndexError):
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_stale(trial: FrozenTrial, now: float | None = None, grace_s: float = GRACE_S) -> bool:
    """Whether the RUNNING ``trial``'s worker is gone: its process ended (same host) or its heartbeat is older than
    ``grace_s`` seconds (any host)."""
    now = time.time() if now is None else now
    worker = trial.user_attrs.get("worker") or {}
    if worker.get("host") == _host() and not _alive(int(worker.get("pid", -1))):
        return True
    started = trial.datetime_start.timestamp() if trial.datetime_start else now
    return now - float(trial.user_attrs.get("heartbeat", started)) > grace_s


def recover(study: optuna.Study, spec: StudySpec, grace_s: float = GRACE_S) -> tuple[int, int]:
    """Mark stale RUNNING trials FAIL and enqueue every pair with no WAITING, RUNNING or COMPLETE trial.

    Returns:
        (trials marked failed, trials enqueued).
    """
    storage, study_id = study._storage, study._study_id
    failed = 0
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if not is_stale(trial, grace_s=grace_s):
            continue
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
        with contextlib.suppress(UpdateFinishedTrialError):
            storage.set_trial_user_attr(trial_id, "error", "its worker died (process gone or no heartbeat)")
            storage.set_trial_state_values(trial_id, TrialState.FAIL)
            failed += 1
    live = {_pair(t) for t in study.get_trials(deepcopy=False, states=LIVE)}
    enqueued = 0
    for variant, seed in spec.pairs():
        if (variant, seed) not in live:
            study.enqueue_trial({}, user_attrs={"variant": variant, "seed": seed})
            enqueued += 1
    return failed, enqueued


def claim(study: optuna.Study) -> FrozenTrial | None:
    """Move one WAITING trial to RUNNING for this process (as ``Study.ask`` does) and return it; None if none is
    left. A trial whose pair is already taken (see the module's docstring) is told FAIL and skipped."""
    storage, study_id = study._storage, study._study_id
    while True:
        waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
        if not waiting:
            return None
        mine = None
        for trial in waiting:
            trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
            try:
                if storage.set_trial_state_values(trial_id, TrialState.RUNNING):
                    mine = trial
                    break
            except UpdateFinishedTrialError:
                continue
        if mine is None:
            continue
        storage.set_trial_user_attr(trial_id, "worker", {"host": _host(), "pid": os.getpid()})
        storage.set_trial_user_attr(trial_id, "heartbeat", time.time())
        pair = _pair(mine)
        taken = [t for t in study.get_trials(deepcopy=False, states=LIVE) if t.number != mine.number
                 and _pair(t) == pair and (t.state == TrialState.COMPLETE or t.number < mine.number)]
        if pair is not None and not taken:
            return storage.get_trial(trial_id)
        storage.set_trial_user_attr(trial_id, "duplicate", taken[0].number if taken else True)
        study.tell(mine.number, state=TrialState.FAIL)


@contextlib.contextmanager
def heartbeat(storage: optuna.storages.BaseStorage, trial_id: int, every_s: float = HEARTBEAT_S) -> Iterator[None]:
    """Record ``time.time()`` as the trial's ``heartbeat`` user attribute every ``every_s`` seconds."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(every_s):
            with contextlib.suppress(Exception):  # a missed beat is not worth killing the trial
                storage.set_trial_user_attr(trial_id, "heartbeat", time.time())

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


# ---------------------------------------------------------------------------------------------------- one trial


def _accepts_extra_hparams() -> bool:
    from lit_reg.callbacks import LearningCurves

    return "extra_hparams" in inspect.signature(LearningCurves.__init__).parameters


def trial_args(spec: StudySpec, variant: str, seed: int, folder: Path, extra: dict[str, Any] | None = None,
               params: dict[str, Any] | None = None, pruning: bool = False) -> list[str]:
    """The ``lit-reg fit`` arguments of one trial (a search trial's: its ``params``, and with ``pruning`` the
    :class:`~lit_reg.study.pruning.OptunaPruning` callback)."""
    args = ["fit", *spec.base_args(), *override_args(spec.trial_overrides(variant, extra, params)),
            "--seed_everything", str(seed),
            "--trainer.logger.init_args.save_dir", str(folder / variant),
            "--trainer.logger.init_args.name", f"seed_{seed}",
            "--learning_curves.init_args.monitor", spec.metric, "--learning_curves.init_args.mode", spec.mode]
    if _accepts_extra_hparams():
        args += ["--learning_curves.init_args.extra_hparams", json.dumps({"variant": variant, "seed": seed})]
    if pruning:
        args += ["--trainer.callbacks+=lit_reg.study.pruning.OptunaPruning",
                 "--trainer.callbacks.init_args.monitor", spec.metric]
    return args


@contextlib.contextmanager
def output_to(path: Path) -> Iterator[None]:
    """Send this process's stdout and stderr (file descriptors 1 and 2, so Lightning's logging too) to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(path, "a") as file:
        os.dup2(file.fileno(), 1)
        os.dup2(file.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def score_training_split(trainer: pl.Trainer, model: pl.LightningModule, datamodule: Any,
                         ckpt_path: str | None) -> dict[str, float] | None:
    """The checkpoint's metrics on the training split, in eval mode (no dropout, no augmentation), as ``train_<m>``:
    a ``test`` run with the datamodule's :attr:`~datamodules.base.InMemoryDataModule.test_split` pointed at
    ``"train"``. None for a datamodule without one."""
    split = getattr(datamodule, "test_split", None)
    if split is None:
        return None
    datamodule.test_split = "train"
    try:
        outputs = trainer.test(model, datamodule=datamodule, ckpt_path=ckpt_path, verbose=False)
    finally:
        datamodule.test_split = split
    return {f"train_{k.removeprefix('test_')}": float(v) for k, v in (outputs[0] if outputs else {}).items()}


def run_trial(spec: StudySpec, variant: str, seed: int, folder: Path, extra: dict[str, Any] | None = None,
              params: dict[str, Any] | None = None, trial: optuna.Trial | None = None) -> dict[str, Any]:
    """Fit one (variant, seed) through :func:`lit_reg.cli.build_cli` and return its ``TrialResult`` dict.

    A search trial gives its sampled ``params`` (the overrides instead of a variant's) and its Optuna ``trial``: the
    fit then reports to it after each validation epoch (:class:`~lit_reg.study.pruning.OptunaPruning`) and the result
    gains ``number``, ``params``, ``pruned`` and ``pruned_epoch``.

    Raises:
        ValueError: the model never logged the study's metric.
    """
    from lit_reg.callbacks import LearningCurves, WeightNormMonitor
    from lit_reg.cli import build_cli
    from lit_reg.study.pruning import OptunaPruning, active_trial

    start = time.perf_counter()
    with active_trial(trial) if trial is not None else contextlib.nullcontext():
        cli = build_cli(trial_args(spec, variant, seed, folder, extra, params, pruning=trial is not None))
    trainer = cli.trainer
    curves = next((c for c in trainer.callbacks if isinstance(c, LearningCurves)), None)
    if curves is None:
        raise ValueError("a study needs the learning_curves callback: remove `learning_curves: null`")
    epochs = sorted(e for e, values in curves.history.items() if spec.metric in values)
    if not epochs:
        logged = sorted(set().union(*curves.history.values())) if curves.history else []
        raise ValueError(f"metric {spec.metric!r} was never logged by the model; it logs {logged}: set `metric` "
                         "in the study file to one of them")
    test = train = None
    if spec.test:
        ckpt = "best" if trainer.checkpoint_callback is not None else None
        train = score_training_split(trainer, cli.model, cli.datamodule, ckpt)
        outputs = trainer.test(cli.model, datamodule=cli.datamodule, ckpt_path=ckpt, verbose=False)
        test = {k: float(v) for k, v in (outputs[0] if outputs else {}).items()}
    norms = next((c for c in trainer.callbacks if isinstance(c, WeightNormMonitor)), None)
    run_dir = Path(trainer.log_dir) if trainer.log_dir else folder / variant / f"seed_{seed}"
    with contextlib.suppress(ValueError):
        run_dir = run_dir.resolve().relative_to(Path.cwd())
    result = {"variant": variant, "seed": seed, "overrides": params if params is not None else spec.variants[variant],
              "metric": spec.metric, "mode": spec.mode,
            "best_value": float(curves.best_score), "best_epoch": int(curves.best_epoch),
              "epochs": int(trainer.current_epoch), "test": test, "train": train,
              "wall_s": round(time.perf_counter() - start, 3), "run_dir": str(run_dir),
              "curve": [curves.history[e][spec.metric] for e in epochs],
              "weight_norms": [value for _, value in norms.history] if norms is not None else []}
    if trial is not None:
        pruning = next((c for c in trainer.callbacks if isinstance(c, OptunaPruning)), None)
        pruned_epoch = pruning.pruned_epoch if pruning is not None else None
        result.update(number=trial.number, params=dict(params or {}), pruned=pruned_epoch is not None,
                      pruned_epoch=pruned_epoch)
    return result


# ---------------------------------------------------------------------------------------------------- workers


def duration(seconds: float) -> str:
    """``"12 s"``, ``"1 min 48 s"``, ``"2 h 5 min"``.

    Example:
        >>> duration(12.4), duration(108), duration(7500)
        ('12 s', '1 min 48 s', '2 h 5 min')
    """
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


def results(study: optuna.Study) -> list[dict[str, Any]]:
    """The ``TrialResult`` of every COMPLETE trial, one per (variant, seed), in trial order."""
    seen: dict[tuple[str, int], dict[str, Any]] = {}
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        result = trial.user_attrs.get("result")
        if result is not None and _pair(trial) not in seen:
            seen[_pair(trial)] = result
    return list(seen.values())


def progress_line(result: dict[str, Any], done: int, total: int, workers: int, walls: list[float]) -> str:
    """``[3/12] wd_1e-3 seed 1: val_loss=0.1234 (best epoch 7/12), 12 s; 9 left, ETA 1 min 48 s``.

    Example:
        >>> r = {"variant": "wd", "seed": 1, "metric": "val_loss", "best_value": 0.12345, "best_epoch": 6,
        ...      "epochs": 12, "wall_s": 12.0}
        >>> progress_line(r, 3, 12, 1, [12.0])
        '[3/12] wd seed 1: val_loss=0.1235 (best epoch 7/12), 12 s; 9 left, ETA 1 min 48 s'
    """
    left = total - done
    eta = f", ETA {duration(left * sum(walls) / len(walls) / max(1, min(workers, left)))}" if left and walls else ""
    return (f"[{done}/{total}] {result['variant']} seed {result['seed']}: {result['metric']}="
            f"{result['best_value']:.4f} (best epoch {result['best_epoch'] + 1}/{result['epochs']}), "
            f"{duration(result['wall_s'])}; {left} left{eta}")


def work(spec: StudySpec, url: str | None, folder: Path, extra: dict[str, Any], workers: int = 1,
         threads: int | None = None) -> int:
    """Claim and run trials until none is left; return how many this process ran.

    Raises:
        RuntimeError: a trial failed (it is marked FAIL and runs again on the next invocation).
    """
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    study = optuna.load_study(study_name=spec.name, storage=open_storage(url, folder))
    storage = study._storage
    total = len(spec.pairs())
    ran = 0
    while True:
        trial = claim(study)
        if trial is None:
            if recover(study, spec)[1]:
                continue
            return ran
        variant, seed = _pair(trial)
        trial_id = trial._trial_id
        try:
            with heartbeat(storage, trial_id), output_to(folder / variant / f"seed_{seed}" / "fit.log"):
                result = run_trial(spec, variant, seed, folder, extra)
        except BaseException as err:
            message = " ".join(str(err).split())[:500] or type(err).__name__
            with contextlib.suppress(Exception):
                storage.set_trial_user_attr(trial_id, "error", message)
                study.tell(trial.number, state=TrialState.FAIL)
            if isinstance(err, Exception):
                raise RuntimeError(f"trial {variant} seed {seed} failed: {message} (its output: "
                                   f"{folder / variant / f'seed_{seed}' / 'fit.log'})") from err
            raise
        storage.set_trial_user_attr(trial_id, "result", result)
        study.tell(trial.number, result["best_value"])
        ran += 1
        done = results(study)
        print(progress_line(result, len(done), total, workers, [r["wall_s"] for r in done]), flush=True)


# ---------------------------------------------------------------------------------------------------- search


def suggest(trial: optuna.Trial, search: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Ask ``trial`` for a value of every key of ``search`` (the ranges of :func:`lit_reg.study.spec.parse_range`)."""
    params: dict[str, Any] = {}
    for key, space in search.items():
        if space["kind"] == "choice":
            params[key] = trial.suggest_categorical(key, space["choices"])
        elif space["kind"] == "int":
            params[key] = trial.suggest_int(key, space["low"], space["high"], log=space["log"])
        else:
            params[key] = trial.suggest_float(key, space["low"], space["high"], log=space["log"])
    return params


def sampler_seed(seed: int, index: int, trials: int) -> int:
    """The ``TPESampler`` seed of worker ``index`` joining a search with ``trials`` trials: a fresh search with one
    worker is reproducible, while parallel workers and a resumed search do not redraw the points already drawn.

    Example:
        >>> sampler_seed(0, 0, 0) == sampler_seed(0, 0, 0) != sampler_seed(0, 1, 0) != sampler_seed(0, 0, 4)
        True
    """
    import numpy as np

    return int(np.random.SeedSequence([seed, index, trials]).generate_state(1)[0])


def load_search(spec: StudySpec, storage: optuna.storages.BaseStorage, index: int = 0) -> optuna.Study:
    """The stored search study with a ``MedianPruner`` and a ``TPESampler`` seeded by :func:`sampler_seed` from the
    study's first seed, the worker's ``index`` and the number of trials so far."""
    trials = len(optuna.load_study(study_name=spec.name, storage=storage).get_trials(deepcopy=False))
    sampler = optuna.samplers.TPESampler(seed=sampler_seed(spec.seeds[0], index, trials))
    return optuna.load_study(study_name=spec.name, storage=storage, sampler=sampler,
                             pruner=optuna.pruners.MedianPruner(**PRUNER_KWARGS))


def search_results(study: optuna.Study) -> list[dict[str, Any]]:
    """The ``TrialResult`` of every finished (COMPLETE or PRUNED) search trial, in trial order."""
    return [t.user_attrs["result"] for t in study.get_trials(deepcopy=False, states=FINISHED)
            if "result" in t.user_attrs]


def search_progress_line(result: dict[str, Any], done: int, total: int, workers: int, walls: list[float]) -> str:
    """:func:`progress_line` of a search trial: its number, parameters and whether it was pruned.

    Example:
        >>> r = {"number": 2, "params": {"model.lr": 0.0123456}, "pruned": True, "seed": 0, "metric": "val_loss",
        ...      "best_value": 0.5, "best_epoch": 0, "epochs": 2, "wall_s": 3.0}
        >>> search_progress_line(r, 3, 4, 1, [3.0])
        '[3/4] trial 2 (model.lr=0.01235) pruned seed 0: val_loss=0.5000 (best epoch 1/2), 3 s; 1 left, ETA 3 s'
    """
    params = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in result["params"].items())
    label = f"trial {result['number']} ({params})" + (" pruned" if result["pruned"] else "")
    return progress_line({**result, "variant": label}, done, total, workers, walls)


def work_search(spec: StudySpec, url: str | None, folder: Path, extra: dict[str, Any], n_trials: int,
                workers: int = 1, threads: int | None = None, index: int = 0) -> int:
    """Ask and run search trials until the study has ``n_trials`` finished or running ones; return how many this
    process ran.

    Raises:
        RuntimeError: a trial failed (it is marked FAIL; a rerun asks for a new one in its place).
    """
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    study = load_search(spec, open_storage(url, folder), index)
    storage = study._storage
    ran = 0
    taken_states = (*FINISHED, TrialState.RUNNING)
    while True:
        if len(study.get_trials(deepcopy=False, states=taken_states)) >= n_trials:
            if recover(study, spec)[0]:  # a dead worker's trial no longer counts: ask for another
                continue
            return ran
        trial = study.ask()
        storage.set_trial_user_attr(trial._trial_id, "worker", {"host": _host(), "pid": os.getpid()})
        storage.set_trial_user_attr(trial._trial_id, "heartbeat", time.time())
        before = [t for t in study.get_trials(deepcopy=False, states=taken_states) if t.number < trial.number]
        if len(before) >= n_trials:  # another worker asked for the last one at the same time
            storage.set_trial_user_attr(trial._trial_id, "surplus", True)
            study.tell(trial, state=TrialState.FAIL)
            return ran
        params = suggest(trial, spec.search or {})
        variant = f"trial_{trial.number}"
        log_file = folder / variant / f"seed_{spec.seeds[0]}" / "fit.log"
        try:
            with heartbeat(storage, trial._trial_id), output_to(log_file):
                result = run_trial(spec, variant, spec.seeds[0], folder, extra, params=params, trial=trial)
        except BaseException as err:
            message = " ".join(str(err).split())[:500] or type(err).__name__
            with contextlib.suppress(Exception):
                storage.set_trial_user_attr(trial._trial_id, "error", message)
                study.tell(trial, state=TrialState.FAIL)
            if isinstance(err, Exception):
                raise RuntimeError(f"search trial {trial.number} ({params}) failed: {message} (its output: "
                                   f"{log_file})") from err
            raise
        storage.set_trial_user_attr(trial._trial_id, "result", result)
        if result["pruned"]:
            study.tell(trial, state=TrialState.PRUNED)  # its value: the last reported one
        else:
            study.tell(trial, result["best_value"])
        ran += 1
        done = search_results(study)
        print(search_progress_line(result, len(done), n_trials, workers, [r["wall_s"] for r in done]), flush=True)


def param_importances(spec: StudySpec, url: str | None = None, root: str | Path = LOG_DIR
                      ) -> tuple[dict[str, float], str]:
    """Each searched parameter's importance for the study's metric over the COMPLETE trials, by Optuna's
    ``PedAnovaImportanceEvaluator`` (Optuna 5's default; fANOVA would need scikit-learn), and a line saying how they
    were computed, or why there are none.
    """
    study = open_study(spec, open_storage(url, study_dir(spec.name, root)), create=False)
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len(complete) < 2:
        return {}, f"Parameter importances need at least 2 complete (not pruned) trials; the study has {len(complete)}."
    try:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # PED-ANOVA warns on few trials; the line below says what it used
            importances = optuna.importance.get_param_importances(
                study, evaluator=optuna.importance.PedAnovaImportanceEvaluator())
    except Exception as err:  # an evaluator that cannot work with these trials
        return {}, f"Parameter importances unavailable: {type(err).__name__}: {' '.join(str(err).split())[:200]}"
    return ({k: float(v) for k, v in importances.items()},
            f"Parameter importance: `optuna.importance.get_param_importances` with `PedAnovaImportanceEvaluator` "
            f"(Optuna {optuna.__version__}; no scikit-learn needed) over the {len(complete)} complete trials (pruned "
            "ones left out); normalized to sum to 1.")


def _search_worker_main(spec: StudySpec, url: str | None, folder: Path, extra: dict[str, Any], n_trials: int,
                        workers: int, threads: int, index: int) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        work_search(spec, url, folder, extra, n_trials, workers, threads, index)
    except RuntimeError as err:
        print(f"lit-reg study: worker {os.getpid()}: {_scrub(str(err), url)}", file=sys.stderr, flush=True)
        raise SystemExit(1) from None


def _worker_main(spec: StudySpec, url: str | None, folder: Path, extra: dict[str, Any], workers: int,
                 threads: int) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        work(spec, url, folder, extra, workers, threads)
    except RuntimeError as err:
        print(f"lit-reg study: worker {os.getpid()}: {_scrub(str(err), url)}", file=sys.stderr, flush=True)
        raise SystemExit(1) from None


def default_workers() -> int:
    """One worker per core this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def run_study(spec: StudySpec, url: str | None = None, workers: int | None = None,
              extra: dict[str, Any] | None = None, new: bool = False, report_only: bool = False,
              root: str | Path = LOG_DIR, n_trials: int | None = None) -> list[dict[str, Any]]:
    """Run (or resume) the study and return the finished trials' results; ``report_only`` runs nothing. A search
    runs until ``n_trials`` (default: the study file's ``n_trials``) trials are finished.

    Raises:
        ValueError: a bad study file or override, a changed study without ``new``, ``--report`` without a study, a
            search without ``n_trials``.
        RuntimeError: the storage cannot be opened, or a trial failed.
    """
    extra = dict(extra or {})
    folder = study_dir(spec.name, root)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if report_only:
        study = open_study(spec, open_storage(url, folder), create=False)
        return search_results(study) if spec.search is not None else results(study)
    n_trials = n_trials if n_trials is not None else spec.n_trials
    if spec.search is not None and (n_trials is None or n_trials < 1):
        where = f"study file {spec.path}" if spec.path else "the study"
        raise ValueError(f"{where} is a search: give the number of trials with --n-trials N (or `n_trials:` in the "
                         f"file), a positive integer; got {n_trials!r}")
    spec.check_overrides(extra)
    storage = open_storage(url, folder)
    if new:
        aside = _set_aside(spec, storage, folder, url)
        if aside:
            print(f"lit-reg study: the previous study {spec.name!r} is kept as {aside}", flush=True)
        storage = open_storage(url, folder)
    study = open_study(spec, storage)
    failed, _ = recover(study, spec)
    if failed:
        print(f"lit-reg study: {failed} trial(s) left running by a dead worker will run again", flush=True)
    if spec.search is not None:
        return _run_search(spec, study, url, folder, extra, n_trials, workers)
    total = len(spec.pairs())
    left = len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))
    print(f"lit-reg study {spec.name}: {total} trials ({len(spec.variants)} variants x {len(spec.seeds)} seeds), "
          f"{len(results(study))} done, {left} to run; storage {mask_url(url) if url else folder / JOURNAL}",
          flush=True)
    workers = max(1, min(workers or default_workers(), left or 1))
    cores = default_workers()
    if workers == 1:
        work(spec, url, folder, extra, 1, threads=None)
    elif left:
        threads = max(1, cores // workers)
        run_processes(_worker_main, [(spec, url, folder, extra, workers, threads) for _ in range(workers)])
    return results(study)


def run_processes(target: Any, arguments: list[tuple[Any, ...]]) -> None:
    """Run ``target(*args)`` for each ``args`` in its own spawned process, wait for all, and raise
    ``RuntimeError`` when any of them failed."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=target, args=args) for args in arguments]
    for process in processes:
        process.start()
    for process in processes:
        process.join()
    failed_workers = [p.exitcode for p in processes if p.exitcode]
    if failed_workers:
        raise RuntimeError(f"{len(failed_workers)} of {len(processes)} workers failed (see their messages above); "
                           "rerun the same command to run the failed trials again")


def _run_search(spec: StudySpec, study: optuna.Study, url: str | None, folder: Path, extra: dict[str, Any],
                n_trials: int, workers: int | None) -> list[dict[str, Any]]:
    """Run the search's workers until ``n_trials`` trials are finished; return the finished trials' results."""
    finished = len(study.get_trials(deepcopy=False, states=FINISHED))
    running = len(study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))
    left = max(0, n_trials - finished - running)
    print(f"lit-reg study {spec.name}: search of {len(spec.search or {})} parameters, {n_trials} trials (TPE sampler, "
          f"median pruner, seed {spec.seeds[0]}), {finished} done, {left} to run; storage "
          f"{mask_url(url) if url else folder / JOURNAL}", flush=True)
    workers = max(1, min(workers or default_workers(), left or 1))
    if workers == 1:
        work_search(spec, url, folder, extra, n_trials)
    elif left:
        threads = max(1, default_workers() // workers)
        run_processes(_search_worker_main,
                      [(spec, url, folder, extra, n_trials, workers, threads, index) for index in range(workers)])
    return search_results(study)
