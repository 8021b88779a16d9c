"""Studies shared by many workers (labkit.studies, `labkit search --workers`, `labkit search status`).

The PostgreSQL tests run against a real server: `.ci/run` starts one (Debian's PostgreSQL, as the
`postgres` user, on 127.0.0.1) and exports LABKIT_TEST_POSTGRES_URL; without it they skip. Each test
gets a fresh database. Most workers here measure a cheap objective (a sleep) so that the machinery,
not training, is what is timed; one test runs the real `labkit search` CLI with workers.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from labkit import search, studies

REPO = Path(__file__).resolve().parent.parent
PG_ENV = "LABKIT_TEST_POSTGRES_URL"

WORKER = """
import os, sys, time
from pathlib import Path
from labkit import search, studies

name, n, delay, barrier, count = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), Path(sys.argv[4]), int(sys.argv[5])
studies.log_to_stderr()
barrier.mkdir(exist_ok=True)
(barrier / str(os.getpid())).touch()
while len(list(barrier.iterdir())) < count:  # every worker starts at the same moment
    time.sleep(0.002)

def objective(p):
    time.sleep(delay)
    return {"loss": (p["x"] - 2) ** 2 + p["y"], "size": p["x"] + p["y"]}

study = search.open_study(name, ["minimize", "minimize"], storage=os.environ["STUDY_URL"], heartbeat_s=2)
search.run_study(study, objective, {"x": list(range(8)), "y": list(range(8))}, ["loss", "size"], n_trials=n,
                 progress=False)
"""


@pytest.fixture
def pg_url():
    """A fresh, empty database on the test server (dropped afterwards); skips without a server."""
    admin = os.environ.get(PG_ENV)
    if not admin:
        pytest.skip(f"no PostgreSQL server: set {PG_ENV} (.ci/run starts one)")
    import sqlalchemy as sa

    admin = studies.resolve_url(admin)
    db = f"labkit_test_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(admin, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{db}"'))
    yield sa.engine.make_url(admin).set(database=db).render_as_string(hide_password=False)
    with engine.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
    engine.dispose()


def _start_workers(tmp_path: Path, url: str, name: str, n: int, *, count: int, delay: float,
                   barrier: str = "barrier") -> list[subprocess.Popen]:
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = {**os.environ, "STUDY_URL": url}  # the URL (and its password) stays off the command line
    return [subprocess.Popen([sys.executable, str(script), name, str(n), str(delay), str(tmp_path / barrier),
                              str(count)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env={**env, "LABKIT_WORKER": str(i)})  # as `labkit search --workers` sets it
            for i in range(1, count + 1)]


def _finish(procs: list[subprocess.Popen], timeout: float = 300) -> list[tuple[int, str]]:
    out = []
    for p in procs:
        _, err = p.communicate(timeout=timeout)
        out.append((p.returncode, err))
    return out


def _check_started_together(tmp_path: Path, url: str, n: int) -> None:
    procs = _start_workers(tmp_path, url, "together", n, count=3, delay=0.25)
    results = _finish(procs)
    for code, err in results:
        assert code == 0, err[-3000:]
    study = search.open_study("together", ["minimize", "minimize"], storage=url)
    trials = study.get_trials(deepcopy=False)
    done = [t for t in trials if t.state.name == "COMPLETE"]
    assert n <= len(done) <= n + 2, [t.state.name for t in trials]  # every worker stopped at n (a couple over)
    numbers = [t.number for t in trials]
    assert sorted(numbers) == list(range(len(trials)))  # distinct, no gaps
    workers = {t.system_attrs[studies.WORKER_ATTR] for t in done}
    assert len(workers) == 3, workers  # all three shared the work (not one worker alone)
    for t in done:  # every stored metric is the one measured for its parameters
        assert t.values == [(t.params["x"] - 2) ** 2 + t.params["y"], t.params["x"] + t.params["y"]]


def test_three_workers_started_together_on_a_fresh_postgres_database(tmp_path, pg_url):
    _check_started_together(tmp_path, pg_url, 12)


def test_three_workers_started_together_on_a_fresh_sqlite_file(tmp_path):
    _check_started_together(tmp_path, f"sqlite:///{tmp_path / 'fresh.db'}", 12)


def _worker_of(trial) -> int:
    return int(trial.system_attrs.get(studies.WORKER_ATTR, ":0").rsplit(":", 1)[1])


def test_a_killed_worker_trial_fails_and_is_retried(tmp_path, pg_url):
    n = 8
    victim, survivor = _start_workers(tmp_path, pg_url, "killed", n, count=2, delay=1.5)
    study = None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # wait until the victim is inside a trial, then SIGKILL it
        try:
            study = study or studies.load_study(pg_url, "killed")
        except studies.StorageError:
            time.sleep(0.1)
            continue
        running = [t for t in study.get_trials(deepcopy=False, states=None)
                   if t.state.name == "RUNNING" and _worker_of(t) == victim.pid and len(t.params) == 2]
        if running:  # measuring: heartbeats sent, parameters drawn
            time.sleep(0.3)  # mid-measurement (it takes 1.5 s)
            victim.send_signal(signal.SIGKILL)
            killed = running[0].number
            print(f"\n{time.strftime('%H:%M:%S')} SIGKILL to worker {victim.pid} during trial {killed}")
            break
        time.sleep(0.05)
    else:
        pytest.fail("the victim never started a trial")
    (code_v, _), (code_s, log) = _finish([victim, survivor])
    print(f"\n--- log of the surviving worker (trial {killed} was killed) ---\n{log}")
    assert code_v == -signal.SIGKILL and code_s == 0, log[-3000:]
    trials = {t.number: t for t in studies.load_study(pg_url, "killed").get_trials(deepcopy=False)}
    assert trials[killed].state.name == "FAIL"
    retries = [t for t in trials.values() if t.system_attrs.get("failed_trial") == killed]
    assert len(retries) == 1 and retries[0].state.name == "COMPLETE"  # retried once, by the survivor
    assert retries[0].params == trials[killed].params and _worker_of(retries[0]) == survivor.pid
    states = [t.state.name for t in trials.values()]
    assert n <= states.count("COMPLETE") <= n + 1 and "RUNNING" not in states
    assert f"trial {killed} failed: its worker" in log and f"(retry of trial {killed})" in log

    status = studies.study_status(pg_url, "killed")
    text = studies.format_status(status)
    assert f"{states.count('COMPLETE')} finished of {n} asked" in text and "1 failed" in text
    row = status.failed.set_index("trial").loc[killed]
    assert "stopped sending heartbeats" in row["reason"] and row["retried_as"] == f"trial {retries[0].number} (COMPLETE)"


def test_a_live_worker_declared_dead_goes_on(tmp_path, caplog):
    import optuna

    study = search.open_study("busy", ["minimize", "minimize"], storage=f"sqlite:///{tmp_path / 'busy.db'}",
                              heartbeat_s=1)
    victims = []

    def objective(p):
        if not victims:  # what another worker's stale-trial check does to a trial that missed its heartbeats
            victims.append(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))[0])
            study._storage.set_trial_state_values(victims[0]._trial_id, optuna.trial.TrialState.FAIL)
        return {"loss": float(p["x"]), "size": float(p["y"])}

    with caplog.at_level("INFO", logger="labkit.search"):
        frame = search.run_study(study, objective, {"x": list(range(8)), "y": list(range(8))}, ["loss", "size"],
                                 n_trials=5, progress=False)
    assert len(frame) == 5 and [t.state.name for t in study.get_trials()].count("FAIL") == 1
    assert f"trial {victims[0].number} was failed by another worker while this one measured it" in caplog.text


def test_two_studies_in_one_database_stay_apart(tmp_path, pg_url):
    a = _start_workers(tmp_path, pg_url, "study-a", 6, count=1, delay=0.05, barrier="a")
    b = _start_workers(tmp_path, pg_url, "study-b", 4, count=1, delay=0.05, barrier="b")
    for code, err in _finish(a + b):
        assert code == 0, err[-3000:]
    sa, sb = studies.study_status(pg_url, "study-a"), studies.study_status(pg_url, "study-b")
    assert (sa.counts["COMPLETE"], sb.counts["COMPLETE"]) == (6, 4) and (sa.target, sb.target) == (6, 4)
    assert sa.finished["trial"].tolist() == list(range(6)) and sb.finished["trial"].tolist() == list(range(4))
    with pytest.raises(studies.StorageError, match=r"no study 'study-c' .*holds: study-a, study-b"):
        studies.study_status(pg_url, "study-c")


def _cli(*args: str, env: dict | None = None, prelude: str = "") -> subprocess.CompletedProcess:
    code = f"import sys\n{prelude}\nfrom labkit import cli\nsys.exit(cli.main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=600,
                          env={**os.environ, **(env or {})})


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("url, expected", [
    (f"postgresql://student:s3cret-pw@127.0.0.1:{_free_port()}/optuna", "cannot reach the database server"),
    ("postgresql//student:s3cret-pw@dbhost/optuna", "is not a database URL"),
    ("postgre://student:s3cret-pw@dbhost/optuna", "unknown database type 'postgre'"),
    ("sqlite:////no/such/folder/study.db", "cannot open the SQLite file"),
])
def test_unusable_storage_is_one_clear_error(url, expected):
    proc = _cli("search", "--task", "forecast", "--profile", "smoke", "--storage", url)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.count("\n") == 1 and expected in proc.stderr and "s3cret" not in proc.stderr, proc.stderr
    assert studies.mask_url(url) in proc.stderr  # the URL is named, its password masked
    debug = _cli("search", "--task", "forecast", "--storage", url, "--debug")
    assert debug.returncode != 0 and "Traceback" in debug.stderr and "StorageError" in debug.stderr


def test_missing_driver_says_what_to_install():
    blocked = "sys.modules['psycopg'] = None; sys.modules['psycopg2'] = None  # as if not installed"
    proc = _cli("search", "--task", "kws", "--storage", "postgresql://student:s3cret-pw@dbhost/optuna", prelude=blocked)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert 'pip install "tinyml-labkit[postgres]"' in proc.stderr and "student:***@dbhost" in proc.stderr


def test_postgresql_url_works_as_written(pg_url):
    import sqlalchemy as sa

    bare = pg_url.replace("postgresql+psycopg://", "postgresql://")
    assert bare.startswith("postgresql://") and studies.check_storage(bare).startswith("postgresql+psycopg://")
    assert studies.check_storage(bare.replace("postgresql://", "postgres://", 1)) == studies.check_storage(bare)
    user, password = sa.engine.make_url(bare).username, sa.engine.make_url(bare).password
    wrong = bare.replace(f"{user}:{password}@", f"{user}:not-the-password@")
    proc = _cli("search", "status", "--storage", wrong, "--study", "x")
    assert proc.returncode == 2 and "wrong user name or password" in proc.stderr and "not-the-password" not in proc.stderr
    missing = sa.engine.make_url(bare).set(database="labkit_no_such_db").render_as_string(hide_password=False)
    proc = _cli("search", "--task", "kws", "--storage", missing)
    assert proc.returncode == 2 and "database 'labkit_no_such_db' does not exist" in proc.stderr, proc.stderr
    assert password not in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.slow
def test_cli_search_with_workers_on_postgres_smoke(pg_url):
    env = {"LABKIT_STORAGE": pg_url}
    proc = _cli("search", "--task", "forecast", "--profile", "smoke", "--trials", "4", "--workers", "2",
                "--study", "fc-smoke", env=env)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert "starting 2 workers on study 'fc-smoke'" in out and "[worker 1]" in out and "[worker 2]" in out
    assert "Constraint presets:" in proc.stdout and pg_url.split("@")[0].split(":")[-1] not in out  # password
    status = studies.study_status(pg_url, "fc-smoke")
    assert 4 <= status.counts["COMPLETE"] <= 5 and status.counts["RUNNING"] == 0
    assert sorted(status.finished["trial"]) == sorted(set(status.finished["trial"]))
    assert set(status.finished["sparsity"]) <= {0.0, 0.8} and (status.finished["T_mae"] > 0).all()
    shown = _cli("search", "status", "--study", "fc-smoke", env=env)
    assert shown.returncode == 0, shown.stderr
    assert f"trials: {status.counts['COMPLETE']} finished of 4 asked, 0 running" in shown.stdout
    assert "forecast_a" in shown.stdout and "forecast_b" in shown.stdout
    # the search recorded persistence, so status judges trials against it without loading the data
    assert status.reference["model"] == "persistence" and status.reference["T_mae"] > 0
    assert "beats_persistence" in shown.stdout and "reference: no model" in shown.stdout
