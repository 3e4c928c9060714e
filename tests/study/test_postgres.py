"""Studies on a real PostgreSQL server: two `lit-reg study` processes sharing one study, and a worker killed
mid-trial then rerun.

A throwaway cluster (``initdb`` + ``pg_ctl``, 127.0.0.1, a free port, a folder under the system's temp dir) is
started for the module and stopped afterwards. The server refuses to run as root, so as root it runs as the
``postgres`` user (``runuser``). Skipped where PostgreSQL's server programs are missing.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from lit_reg.study.engine import study_dir
from tests.study.test_engine import TINY, best_values, by_pair, kill_mid_trial_then_rerun, study_command, summary_rows

pytestmark = pytest.mark.slow  # about 40 s: two studies of four trials each, plus a server


def _server_user() -> str | None:
    """Who runs the server: ``postgres`` (through runuser when we are root), None when neither is possible."""
    me = pwd.getpwuid(os.geteuid()).pw_name
    if me == "postgres":
        return me
    if os.geteuid() == 0 and shutil.which("runuser"):
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return None
        return "postgres"
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def postgres() -> Iterator[str]:
    """A running throwaway PostgreSQL 15 cluster; yields ``postgresql+psycopg2://postgres@127.0.0.1:PORT``."""
    missing = [tool for tool in ("initdb", "pg_ctl") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"PostgreSQL's server programs {missing} are not on PATH (Debian: apt-get install postgresql)")
    user = _server_user()
    if user is None:
        pytest.skip("the PostgreSQL server refuses root and needs the `postgres` user: run as root (with a "
                    "`postgres` user and runuser) or as postgres")
    as_user = ["runuser", "-u", user, "--"] if os.geteuid() == 0 else []
    folder = Path(tempfile.mkdtemp(prefix="lit_reg_pg_"))
    folder.chmod(0o755)
    entry = pwd.getpwnam(user)
    os.chown(folder, entry.pw_uid, entry.pw_gid)
    data, port = folder / "data", _free_port()
    subprocess.run([*as_user, "initdb", "-D", str(data), "-A", "trust", "-U", "postgres"], check=True,
                   capture_output=True, text=True)
    try:
        subprocess.run([*as_user, "pg_ctl", "-D", str(data), "-o",
                        f"-p {port} -k {folder} -c listen_addresses=127.0.0.1", "-l", str(folder / "log"), "-w",
                        "start"], check=True, capture_output=True, text=True, timeout=60)
        import psycopg2

        connection = psycopg2.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres")
        connection.autocommit = True
        with connection.cursor() as cursor:
            for name in ("race", "killed"):
                cursor.execute(f"CREATE DATABASE {name}")
        connection.close()
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}"
    finally:
        subprocess.run([*as_user, "pg_ctl", "-D", str(data), "stop", "-m", "immediate"], capture_output=True,
                       timeout=60)
        shutil.rmtree(folder, ignore_errors=True)


def load(url: str) -> optuna.Study:
    return optuna.load_study(study_name="tiny", storage=url)


@pytest.fixture(scope="module")
def race(postgres: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """Two `lit-reg study` processes started together on the database ``race``, run to the end, then ``--report``
    (the report of all the trials, whichever process finished last)."""
    root = tmp_path_factory.mktemp("race")
    (root / "tiny.yaml").write_text(TINY)
    url = f"{postgres}/race"
    start = time.monotonic()
    workers = [subprocess.Popen(study_command("tiny.yaml", "--storage", url, "--workers", "1"), cwd=root,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [worker.communicate(timeout=300) for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0], [err[-3000:] for _, err in outputs]
    print(f"two workers: {time.monotonic() - start:.1f} s")
    subprocess.run(study_command("tiny.yaml", "--storage", url, "--report"), cwd=root, check=True,
                   capture_output=True, text=True)
    return root, url


def test_two_processes_share_one_study_and_run_every_pair_once(race: tuple[Path, str]) -> None:
    root, url = race
    study = load(url)
    pairs = {("plain", 0): 1, ("wd", 0): 1, ("plain", 1): 1, ("wd", 1): 1}
    assert by_pair(study) == pairs
    assert by_pair(study, TrialState.RUNNING) == by_pair(study, TrialState.WAITING) == {}
    assert len({t.user_attrs["worker"]["pid"] for t in study.trials}) == 2  # both processes claimed trials
    # a pair enqueued by both processes at start is claimed once and the copy told FAIL as a duplicate, unrun
    assert all("duplicate" in t.user_attrs for t in study.get_trials(states=(TrialState.FAIL,)))
    folder = study_dir("tiny", root / "logs")
    for trial in study.get_trials(states=(TrialState.COMPLETE,)):
        result = trial.user_attrs["result"]
        assert result["best_value"] == trial.value == min(result["curve"])
        assert (root / result["run_dir"]).parent == folder / result["variant"] / f"seed_{result['seed']}"
    summary = summary_rows(folder / "summary.csv")
    assert sorted(row["variant"] for row in summary) == ["plain", "wd"] and {row["n"] for row in summary} == {"2"}


def test_a_worker_killed_mid_trial_then_rerun_gives_the_uninterrupted_summary(
        postgres: str, race: tuple[Path, str], tmp_path: Path) -> None:
    """SIGKILL the only worker during its second trial; the rerun fails that trial, runs the three left, and the
    summary equals that of the two-process study (uninterrupted; training is deterministic)."""
    (tmp_path / "tiny.yaml").write_text(TINY)
    url = f"{postgres}/killed"
    study = kill_mid_trial_then_rerun(tmp_path, "tiny.yaml", ["--storage", url], lambda: load(url))
    assert by_pair(study) == {("plain", 0): 1, ("wd", 0): 1, ("plain", 1): 1, ("wd", 1): 1}
    race_root, race_url = race
    assert best_values(study) == best_values(load(race_url))
    assert summary_rows(study_dir("tiny", tmp_path / "logs") / "summary.csv") == summary_rows(
        study_dir("tiny", race_root / "logs") / "summary.csv")
