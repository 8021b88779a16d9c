"""Where trade-off studies live and how many workers share one (notebook 08, ``labkit search``).

A study is an Optuna database: a SQLite file by default (one machine, resumable), or a database
server shared by worker processes on many machines, e.g. PostgreSQL::

    pip install "tinyml-labkit[postgres]"       # the pinned driver (psycopg 3)
    labkit search --task kws --trials 200 --workers 2 --study kws-full \\
                  --storage postgresql://user:password@dbhost:5432/optuna     # on every machine

What this module guarantees:

* :func:`resolve_url` / :func:`check_storage`: a URL that cannot work (bad URL, missing driver, server
  down, wrong password, missing database) raises :class:`StorageError`, one sentence naming the URL
  with its password masked (:func:`mask_url`) and what to do;
* :func:`open_study`: workers that start together on a fresh database all work: Optuna's tables and
  the study are created once, under a PostgreSQL advisory lock (other databases: the creation race is
  retried);
* :func:`run_study`: every running trial sends a heartbeat; the trial of a worker that died (no
  heartbeat for three intervals) is marked failed and queued again, and every worker stops once the
  study holds the asked number of finished trials (a worker waits for the others' last trials instead
  of starting surplus ones);
* :func:`run_workers`: N local worker processes on one storage (``labkit search --workers N``);
* :func:`study_status` / :func:`format_status`: finished, running and failed trials of a study
  (``labkit search status``).
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime
import inspect
import logging
import os
import random
import re
import socket
import subprocess
import sys
import threading
import time
import warnings
import zlib
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd

from . import config

if TYPE_CHECKING:
    import optuna

log = logging.getLogger("labkit.search")
"""Worker log: one line per trial started / finished / failed / retried (the CLI shows it)."""

POSTGRES_INSTALL = 'pip install "tinyml-labkit[postgres]"'
"""How to install the pinned PostgreSQL driver (psycopg 3)."""

WORKER_ATTR = "labkit:worker"
"""Trial system attribute: ``host:pid`` of the worker process that ran the trial."""

ERROR_ATTR = "labkit:error"
"""Trial system attribute: the exception a failed trial raised."""

TARGET_ATTR = "labkit_target_trials"
"""Study user attribute: the number of finished trials last asked for."""

REFERENCE_ATTR = "labkit_reference"
"""Study user attribute: the zero-cost reference every trial is judged against (a forecasting study's
persistence scores), so that ``labkit search status`` can apply it without loading the data."""

MAX_RETRY = 3
"""How many times the trial of a dead worker is queued again (a configuration that kills its worker
every time, e.g. out of memory, must not loop forever)."""

CREATION_LOCK_TIMEOUT_S = 120.0
POLL_S = 1.0
_LOCK_KEY = 0x6C61626B69743135  # "labkit15": the advisory lock that serialises schema and study creation
_TF_NOISE = re.compile(r"I\d{4} [\d:. ]+\d+ \w+\.cc:\d+\]|WARNING: All log messages before absl::InitializeLog")
_RACE = re.compile(r"already exists|duplicate|unique|database is locked|deadlock", re.I)


class StorageError(RuntimeError):
    """A study database that cannot be used; the message names the URL (password masked) and what to do."""


# ------------------------------------------------------------------------------------------------ URLs
def default_storage(name: str) -> str:
    """SQLite URL of a study database under ``reports/search/<name>.db``. Used by notebook 08."""
    path = config.reports_dir() / "search" / f"{name}.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def mask_url(url: str) -> str:
    """``url`` with its password replaced by ``***`` (also for URLs that do not parse), for messages
    and printed results. Used by notebook 08 and ``labkit search``."""
    return re.sub(r"(^|/)([^:/@?#\s]*):[^/\s]*@", r"\1\2:***@", str(url))


def resolve_url(url: str) -> str:
    """The SQLAlchemy URL Optuna should open for ``url``, with an installed driver.

    ``postgres://`` is read as ``postgresql://``; a PostgreSQL URL without a driver gets one that is
    installed (psycopg 3, the default of SQLAlchemy 2.1 and the ``[postgres]`` extra, else psycopg2), so
    ``postgresql://user:password@host/db`` works as written whatever SQLAlchemy's default is. Raises
    :class:`StorageError` for a URL that does not parse, an unknown database type or a missing driver.
    Used by ``labkit search``.
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    text = str(url).strip()
    if text.startswith("postgres://"):
        text = "postgresql://" + text[len("postgres://"):]
    example = "e.g. sqlite:///path/to/study.db or postgresql://user:password@host:5432/dbname"
    try:
        parsed = make_url(text)
    except (ArgumentError, ValueError):
        raise StorageError(f"{mask_url(url)!r} is not a database URL; use {example}") from None
    try:
        dialect = parsed.get_dialect()
    except NoSuchModuleError:
        raise StorageError(f"unknown database type {parsed.drivername!r} in {mask_url(url)}; use {example}") from None
    if parsed.get_backend_name() == "postgresql" and "+" not in parsed.drivername:
        for driver in dict.fromkeys((dialect.driver, "psycopg", "psycopg2")):
            candidate = parsed.set(drivername=f"postgresql+{driver}")
            if _driver_installed(candidate):
                return candidate.render_as_string(hide_password=False)
        raise StorageError(f"no PostgreSQL driver is installed for {mask_url(url)}: {POSTGRES_INSTALL} "
                           f"(psycopg 3), then run the command again")
    if not _driver_installed(parsed):
        hint = POSTGRES_INSTALL if parsed.get_backend_name() == "postgresql" else f"pip install {dialect.driver}"
        raise StorageError(f"the database driver {dialect.driver!r} for {mask_url(url)} is not installed: {hint}")
    return parsed.render_as_string(hide_password=False)


def _driver_installed(url: Any) -> bool:
    try:
        url.get_dialect().import_dbapi()
    except ImportError:
        return False
    except Exception:  # noqa: BLE001  (an unknown driver name: NoSuchModuleError)
        return False
    return True


def _engine_kwargs(url: str) -> dict[str, Any]:
    """Connection settings: a bounded connect timeout (a dead server fails fast), connections checked
    before use (a worker that trained for an hour reconnects), a long SQLite busy timeout (several
    local workers write to one file)."""
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": 60}}
    if url.startswith("postgresql"):
        return {"pool_pre_ping": True, "connect_args": {"connect_timeout": 10}}
    return {"pool_pre_ping": True}


def describe_error(exc: BaseException, url: str) -> str:
    """One sentence for a database error: what went wrong with ``url`` (password masked) and what to do.

    Used by ``labkit search`` (the traceback is shown with ``--debug`` only).
    """
    from sqlalchemy.engine import make_url

    if isinstance(exc, StorageError):
        return str(exc)
    masked = mask_url(url)
    try:
        parsed = make_url(url)
        host, port, user, db, password = parsed.host, parsed.port, parsed.username, parsed.database, parsed.password
    except Exception:  # noqa: BLE001
        host = port = user = db = password = None
    detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    detail = detail[0] if detail else type(exc).__name__
    if password:
        detail = detail.replace(str(password), "***")
    low = str(exc).lower()
    where = f"{host or 'localhost'}:{port or 5432}"
    if "password authentication failed" in low or "no password supplied" in low or "access denied" in low:
        return f"the database server refused user {user!r}: wrong user name or password in {masked}; fix them in the URL"
    if re.search(r'database "[^"]*" does not exist|unknown database', low):
        return (f"database {db!r} does not exist on the server of {masked}: create it (`createdb {db}` or "
                f"`CREATE DATABASE {db};`) or fix the URL")
    if re.search(r"connection refused|could not connect|is the server running|timeout expired|timed out|"
                 r"no route to host|could not translate host name|name or service not known|"
                 r"no such file or directory.*socket|connection to server .* failed", low):
        return (f"cannot reach the database server of {masked} at {where} ({detail}): start PostgreSQL there "
                f"(on a laptop or Colab `pip install pgserver` starts one) or fix host and port in the URL")
    if "unable to open database file" in low:
        return f"cannot open the SQLite file of {masked}: does its folder exist, and may you write there?"
    if "permission denied" in low:
        return f"the user of {masked} may not create Optuna's tables: grant it CREATE on the database ({detail})"
    return f"cannot use the study database {masked}: {detail}"


def check_storage(url: str) -> str:
    """Resolve ``url`` (:func:`resolve_url`) and connect once; returns the resolved URL or raises
    :class:`StorageError` with a clear message. Used by ``labkit search`` before any data is loaded."""
    import sqlalchemy as sa

    resolved = resolve_url(url)
    engine = sa.create_engine(resolved, poolclass=sa.pool.NullPool, **_engine_kwargs(resolved))
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.SQLAlchemyError as exc:
        raise StorageError(describe_error(exc, url)) from exc
    finally:
        engine.dispose()
    return resolved


@contextlib.contextmanager
def _creation_lock(url: str) -> Iterator[None]:
    """Hold a PostgreSQL advisory lock while Optuna creates its tables and the study, so workers that
    start together on a fresh database do not race (``CREATE TYPE studydirection`` twice). Other
    databases: no lock (:func:`open_study` retries the race)."""
    if not url.startswith("postgresql"):
        yield
        return
    import sqlalchemy as sa

    engine = sa.create_engine(url, poolclass=sa.pool.NullPool, isolation_level="AUTOCOMMIT", **_engine_kwargs(url))
    try:
        with engine.connect() as conn:
            deadline = time.monotonic() + CREATION_LOCK_TIMEOUT_S
            while not conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": _LOCK_KEY}).scalar():
                if time.monotonic() > deadline:
                    raise StorageError(f"another worker has held the study-creation lock of {mask_url(url)} for "
                                       f"{CREATION_LOCK_TIMEOUT_S:.0f} s; is one stuck? (it ends with its connection)")
                time.sleep(0.1)
            try:
                yield
            finally:
                with contextlib.suppress(sa.exc.SQLAlchemyError):
                    conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": _LOCK_KEY})
    finally:
        engine.dispose()


# --------------------------------------------------------------------------------------------- studies
def worker_id() -> str:
    """``host:pid`` of this process, as recorded on the trials it runs. Used by ``labkit search``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def sampler_seed(seed: int) -> int:
    """The sampler seed of this process: ``seed`` itself, except in a worker of a shared study
    (``$LABKIT_WORKER`` set, as ``labkit search`` does for ``--workers`` and ``--storage``), where it is
    mixed with the host, process and worker number: workers seeded alike would propose the same
    configurations at the same time and measure them twice. (Which worker measures what depends on
    timing, so a study run by several workers is not reproducible trial by trial anyway.)
    Used by :func:`open_study`."""
    worker = os.environ.get("LABKIT_WORKER")
    if not worker:
        return int(seed)
    return zlib.crc32(f"{int(seed)}:{worker_id()}:{worker}".encode())


class _RetryStale:
    """Heartbeat-stale callback: log the dead worker's trial and queue it again (Optuna's retry callback)."""

    def __init__(self, max_retry: int) -> None:
        import optuna

        retry = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None) or \
            optuna.storages.RetryFailedTrialCallback
        self.max_retry = max_retry
        self._retry = retry(max_retry=max_retry)

    def __call__(self, study: Any, trial: Any) -> None:
        who = trial.system_attrs.get(WORKER_ATTR, "unknown worker")
        tries = len(trial.system_attrs.get("retry_history", [])) + 1
        again = "queued again" if tries <= self.max_retry else f"not retried again (failed {tries} times)"
        log.warning("trial %d failed: its worker %s stopped sending heartbeats (killed or lost); %s",
                    trial.number, who, again)
        self._retry(study, trial)


def open_study(name: str, directions: Sequence[str], *, storage: str | None = None, seed: int = 0,
               population_size: int = 8, heartbeat_s: int = 10, max_retry: int = MAX_RETRY) -> "optuna.Study":
    """Create or reopen (resume) an Optuna multi-objective study in ``storage`` (SQLite by default).

    Safe when many workers open the same new study at once (creation under a lock, or retried). Every
    running trial sends a heartbeat every ``heartbeat_s`` seconds (the sampler is seeded with ``seed``, see
    :func:`sampler_seed` for workers of a shared study); a trial whose worker died (no
    heartbeat for 3 intervals) is marked FAILED and queued again (up to ``max_retry`` times) by the next
    worker that starts a trial or opens the study. Finished trials are never lost. Raises
    :class:`StorageError` for a database that cannot be used. Used by notebook 08 and ``labkit search``.
    """
    import optuna
    import sqlalchemy as sa

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # failed trials get one log line each (run_study)
    url = storage or default_storage(name)
    resolved = resolve_url(url)
    with warnings.catch_warnings():  # heartbeats and retries are marked experimental (stable since Optuna 2.9)
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        warnings.simplefilter("ignore", FutureWarning)
        params = inspect.signature(optuna.storages.RDBStorage).parameters
        callback = "heartbeat_stale_trial_callback" if "heartbeat_stale_trial_callback" in params \
            else "failed_trial_callback"

        def create():
            rdb = optuna.storages.RDBStorage(resolved, engine_kwargs=_engine_kwargs(resolved),
                                             heartbeat_interval=int(heartbeat_s), grace_period=3 * int(heartbeat_s),
                                             **{callback: _RetryStale(max_retry)})
            sampler = optuna.samplers.NSGAIISampler(seed=sampler_seed(seed), population_size=population_size)
            return optuna.create_study(study_name=name, storage=rdb, directions=list(directions), sampler=sampler,
                                       load_if_exists=True)

        for attempt in range(6):
            try:
                with _creation_lock(resolved):
                    study = create()
                break
            except (sa.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError) as exc:
                if attempt == 5 or not _RACE.search(str(exc)):
                    raise StorageError(describe_error(exc, url)) from exc
                log.debug("study creation raced with another worker (%s); retrying", str(exc).splitlines()[0])
                time.sleep(random.uniform(0.1, 0.5) * (attempt + 1))
    _fail_stale(study)  # a trial left running by a worker that died: failed and queued again
    return study


def _fail_stale(study: Any) -> None:
    """Fail the running trials of dead workers (no heartbeat for the grace period) and queue them again."""
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def trials_run_here(study: "optuna.Study") -> int:
    """Finished trials of ``study`` that this process measured or reused. Used by ``labkit search``."""
    me = worker_id()
    return sum(1 for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"
               and t.system_attrs.get(WORKER_ATTR) == me)


def _config_key(params: Mapping[str, Any]) -> str:
    return repr(sorted((k, str(v)) for k, v in params.items()))


def _short(values: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items())


def run_study(
    study: "optuna.Study",
    objective: Callable[[Mapping[str, Any]], Mapping[str, float]],
    space: Mapping[str, Sequence[Any]],
    objectives: Sequence[str],
    *,
    n_trials: int,
    progress: bool = True,
    catch: tuple[type[BaseException], ...] = (),
) -> pd.DataFrame:
    """Run trials until the study holds ``n_trials`` finished ones (a resumed study only runs the rest).

    ``space`` maps a parameter to its categorical choices; ``objective(params)`` returns the measured
    metrics, of which ``objectives`` (in the study's direction order) are reported to Optuna and all
    are stored as trial attributes. Identical parameter sets are measured once, also across worker
    processes sharing the storage (a finished trial of another worker is reused). With several workers,
    one that finds the study about to be complete (finished + running trials >= ``n_trials``) waits for
    the others' trials instead of starting surplus ones, and takes over a trial whose worker died, so
    every worker stops once the study holds ``n_trials`` finished trials (a couple more at most, when
    workers start their last trials at the same moment). Exceptions in ``catch`` fail the trial and the
    study goes on (e.g. ``NotImplementedError`` for a configuration that cannot be built); a whole round
    of failures stops with a warning. Each trial logs one line to ``labkit.search`` (shown by the CLI).
    Used by notebook 08 and ``labkit search``.
    """
    import optuna
    from tqdm.auto import tqdm

    complete, running = optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.RUNNING
    heartbeat = bool(getattr(study._storage, "get_heartbeat_interval", lambda: None)())
    me = worker_id()
    measured: dict[str, dict[str, Any]] = {}
    started: list[int] = []

    def refresh() -> None:
        measured.update({_config_key(t.params): dict(t.user_attrs)
                         for t in study.get_trials(deepcopy=False, states=(complete,))})

    def wait_for_twin(number: int, key: str) -> None:
        """If an earlier trial of another worker is measuring the same configuration right now, wait for it
        and reuse its measurement (a configuration is measured once, also when two workers draw it at the
        same moment); if that worker dies, its trial goes stale and this one measures it."""
        announced = False
        while key not in measured:
            twins = [t for t in study.get_trials(deepcopy=False, states=(running,))
                     if t.number < number and _config_key(t.params) == key]
            if not twins:
                return
            if not announced:
                log.info("trial %d: trial %d (worker %s) is measuring the same configuration; waiting for it",
                         number, twins[0].number, twins[0].system_attrs.get(WORKER_ATTR, "?"))
                announced = True
            time.sleep(POLL_S)
            if heartbeat:
                _fail_stale(study)
            refresh()

    def _objective(trial: "optuna.Trial") -> tuple[float, ...]:
        started.append(trial.number)
        storage, tid = trial.storage, trial._trial_id
        storage.set_trial_system_attr(tid, WORKER_ATTR, me)
        try:
            params = {k: trial.suggest_categorical(k, list(v)) for k, v in space.items()}
            retry = storage.get_trial_system_attrs(tid).get("failed_trial")
            log.info("trial %d started%s: %s", trial.number, "" if retry is None else f" (retry of trial {retry})",
                     _short(params))
            key = _config_key(params)
            if key not in measured:  # another worker may have measured it meanwhile, or be measuring it now
                refresh()
                wait_for_twin(trial.number, key)
            if key in measured:
                log.info("trial %d: configuration already measured, reusing the measurement", trial.number)
            else:  # the sampler may propose a configuration again: measure it once
                measured[key] = {k: float(v) if isinstance(v, (int, float, np.floating)) else v
                                 for k, v in dict(objective(params)).items()}
            metrics = measured[key]
            for k, v in metrics.items():
                trial.set_user_attr(k, v)
            return tuple(float(metrics[o]) for o in objectives)
        except BaseException as exc:
            with contextlib.suppress(Exception):
                storage.set_trial_system_attr(tid, ERROR_ATTR, f"{type(exc).__name__}: {exc}"[:500])
            raise

    interval = study._storage.get_heartbeat_interval() if heartbeat else None
    grace = getattr(study._storage, "grace_period", None) or 2 * (interval or 0)

    def counts() -> tuple[int, int]:
        """Finished trials, and running ones worth waiting for: a worker killed before its first heartbeat
        leaves a trial that never goes stale (no labkit worker recorded on it): it is not waited for."""
        trials = study.get_trials(deepcopy=False, states=(complete, running))
        now = datetime.datetime.now()
        alive = [t for t in trials if t.state == running and (WORKER_ATTR in t.system_attrs or t.datetime_start is None
                                                               or (now - t.datetime_start).total_seconds() < grace)]
        return sum(t.state == complete for t in trials), len(alive)

    refresh()
    if n_trials > 0:
        study.set_user_attr(TARGET_ATTR, int(n_trials))
    done, _ = counts()
    bar = tqdm(total=n_trials, initial=min(done, n_trials), desc=study.study_name, disable=not progress)
    failures, last_done, finished = 0, done, []
    try:
        while True:
            done, others = counts()
            bar.n = min(done, n_trials)
            bar.refresh()
            if done >= n_trials:
                break
            if done > last_done:
                failures, last_done = 0, done
            if heartbeat and done + others >= n_trials:  # the others' trials may complete the study: wait
                time.sleep(POLL_S)
                _fail_stale(study)  # a dead worker's trial: failed, queued again
                continue
            t0 = time.perf_counter()
            try:
                study.optimize(_objective, n_trials=1, catch=catch, show_progress_bar=False,
                               callbacks=[lambda _study, trial: finished.append(trial)])
            except (ValueError, optuna.exceptions.UpdateFinishedTrialError) as exc:
                if not started or not re.search(r"Cannot tell a FAIL trial|finished", str(exc)):
                    raise
                log.warning("trial %d was failed by another worker while this one measured it (no heartbeat "
                            "for %s s: was this machine suspended or cut off from the database?); it is retried",
                            started[-1], grace)
                continue
            trial, seconds = finished[-1], time.perf_counter() - t0
            if trial.state == complete:
                log.info("trial %d finished in %.1f s: %s; the study holds %d of %d finished trials", trial.number,
                         seconds, _short({o: trial.user_attrs.get(o) for o in objectives}), counts()[0], n_trials)
                continue
            failures += 1
            error = study._storage.get_trial_system_attrs(trial._trial_id).get(ERROR_ATTR, trial.state.name)
            log.warning("trial %d failed after %.1f s: %s", trial.number, seconds, error)
            if failures >= max(1, n_trials - done):
                warnings.warn(f"a whole round of {failures} trials failed; stopping with {done} finished trials of "
                              f"{n_trials} (check the space: every configuration may fail)", RuntimeWarning,
                              stacklevel=2)
                break
    finally:
        bar.close()
    return trials_frame(study)


def trials_frame(study: "optuna.Study") -> pd.DataFrame:
    """Finished trials as a DataFrame: number, parameters and every measured metric. Used by notebook 08."""
    import optuna

    rows = []
    for t in study.get_trials(deepcopy=False, states=[optuna.trial.TrialState.COMPLETE]):
        rows.append({"trial": t.number, **t.params, **t.user_attrs})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------- status
@dataclasses.dataclass
class StudyStatus:
    """What a study holds now: counts per trial state, the finished trials (:func:`trials_frame`), the
    running and failed trials (number, worker, start, parameters; failed: reason and retry), the
    number of finished trials last asked for, the reference the study's search recorded (or None).
    Used by ``labkit search status``."""

    name: str
    storage: str
    counts: dict[str, int]
    target: int | None
    finished: pd.DataFrame
    running: pd.DataFrame
    failed: pd.DataFrame
    reference: dict[str, Any] | None = None


def load_study(storage: str, name: str) -> "optuna.Study":
    """Open an existing study read-only (no heartbeat, nothing created); a clear :class:`StorageError`
    lists the studies the database holds when ``name`` is not one of them. Used by ``labkit search status``."""
    import optuna
    import sqlalchemy as sa

    resolved = check_storage(storage)
    if resolved.startswith("sqlite:///") and not os.path.exists(resolved[len("sqlite:///"):]):
        raise StorageError(f"no study database at {mask_url(storage)}: check the path")
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        rdb = optuna.storages.RDBStorage(resolved, engine_kwargs=_engine_kwargs(resolved), skip_table_creation=True)
        names = optuna.get_all_study_names(rdb)
    except (sa.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError) as exc:
        if re.search(r"no such table|does not exist", str(exc), re.I):
            raise StorageError(f"{mask_url(storage)} holds no Optuna studies yet") from exc
        raise StorageError(describe_error(exc, storage)) from exc
    if name not in names:
        raise StorageError(f"no study {name!r} in {mask_url(storage)}; it holds: {', '.join(sorted(names)) or 'none'}")
    return optuna.load_study(study_name=name, storage=rdb)


def study_status(storage: str, name: str) -> StudyStatus:
    """Counts per state, running trials (with their worker) and failed trials (why, and which trial
    retried them) of the study ``name`` in ``storage``. Used by ``labkit search status``."""
    study = load_study(storage, name)
    trials = study.get_trials(deepcopy=False)
    counts = {s: 0 for s in ("COMPLETE", "RUNNING", "WAITING", "FAIL", "PRUNED")}
    retried_by: dict[int, int] = {}
    for t in trials:
        counts[t.state.name] = counts.get(t.state.name, 0) + 1
        if "failed_trial" in t.system_attrs:
            retried_by[t.system_attrs.get("retry_history", [t.system_attrs["failed_trial"]])[-1]] = t.number
    now = time.time()
    running = pd.DataFrame([{"trial": t.number, "worker": t.system_attrs.get(WORKER_ATTR, "?"),
                             "started": t.datetime_start.strftime("%Y-%m-%d %H:%M:%S"),
                             "running_s": round(now - t.datetime_start.timestamp()), "params": _short(t.params)}
                            for t in trials if t.state.name == "RUNNING"])
    failed = []
    for t in trials:
        if t.state.name != "FAIL":
            continue
        reason = t.system_attrs.get(ERROR_ATTR) or "its worker stopped sending heartbeats (killed or lost)"
        again = retried_by.get(t.number)
        retry = "" if again is None else f"trial {again} ({next(x.state.name for x in trials if x.number == again)})"
        failed.append({"trial": t.number, "worker": t.system_attrs.get(WORKER_ATTR, "?"), "reason": reason,
                       "retried_as": retry, "params": _short(t.params)})
    return StudyStatus(name=name, storage=mask_url(storage), counts=counts, target=study.user_attrs.get(TARGET_ATTR),
                       finished=trials_frame(study), running=running, failed=pd.DataFrame(failed),
                       reference=study.user_attrs.get(REFERENCE_ATTR))


def format_status(status: StudyStatus) -> str:
    """The text of ``labkit search status``: counts, running and failed trials. Used by ``labkit search``."""
    c = status.counts
    target = f" of {status.target} asked" if status.target else ""
    lines = [f"study {status.name!r} in {status.storage}",
             f"trials: {c['COMPLETE']} finished{target}, {c['RUNNING']} running, {c['FAIL']} failed, "
             f"{c['WAITING']} waiting (queued retries)"]
    with pd.option_context("display.width", 200, "display.max_colwidth", 80):
        if len(status.running):
            lines += ["", "running:", status.running.to_string(index=False)]
        if len(status.failed):
            lines += ["", "failed:", status.failed.to_string(index=False)]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- workers
def log_to_stderr(level: int = logging.INFO) -> None:
    """Show the worker log (one line per trial, :data:`log`) on stderr with a time stamp. Used by
    ``labkit search``."""
    logger = logging.getLogger("labkit")
    if not any(getattr(h, "_labkit", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
        handler._labkit = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False


def run_workers(command: Sequence[str], n: int, *, env: Mapping[str, str] | None = None,
                echo: Callable[[str], None] = print) -> list[int]:
    """Start ``n`` processes of ``command`` (each with ``LABKIT_WORKER=<i>`` and ``env`` added to the
    environment), pass each output line to ``echo`` prefixed ``[worker i]``, wait for all of them and
    return their exit codes (negative: killed by that signal). TensorFlow's start-up info lines are dropped. Ctrl-C reaches every worker (their
    running trials fail and are retried on the next start); a worker still running 30 s later is
    terminated. Used by ``labkit search --workers N``.
    """
    lock = threading.Lock()
    procs, threads = [], []
    for i in range(1, n + 1):
        proc = subprocess.Popen(list(command), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
                                env={**os.environ, **(env or {}), "LABKIT_WORKER": str(i), "PYTHONUNBUFFERED": "1"})

        def pump(proc: subprocess.Popen = proc, i: int = i) -> None:
            for line in proc.stdout:  # type: ignore[union-attr]
                if _TF_NOISE.match(line):
                    continue
                with lock:
                    echo(f"[worker {i}] {line.rstrip()}")

        thread = threading.Thread(target=pump, daemon=True)
        thread.start()
        procs.append(proc)
        threads.append(thread)
    try:
        codes = [p.wait() for p in procs]
    except KeyboardInterrupt:
        deadline = time.monotonic() + 30
        for p in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            if p.poll() is None:
                p.terminate()
        raise
    for thread in threads:
        thread.join(timeout=5)
    return codes
