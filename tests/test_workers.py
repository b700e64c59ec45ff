"""Several `earlyexit run` workers on one study: a real PostgreSQL server, and Optuna's journal file."""

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from conftest import tiny_spec

SPEC = tiny_spec("workers", grid={"learning_rate": [3e-3, 1e-3, 3e-4, 1e-4, 3e-5, 1e-5]}, max_steps=40,
                 steps=[0, 10, 20], study={"n_trials": 6},
                 pruner={"kind": "geometric", "keep_top": 2, "n_startup_trials": 2})


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_server(tmp_path_factory):
    """``(url, restart)``: a real PostgreSQL server for this module, and a function that stops it for a given
    number of seconds and starts it again."""
    initdb = shutil.which("initdb") or next(iter(sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))), None)
    if initdb is None:
        pytest.skip("PostgreSQL server binaries are not installed (Debian: apt-get install postgresql)")
    pytest.importorskip("psycopg", reason="psycopg is not installed (pip install 'earlyexit[postgres]')")
    bindir = os.path.dirname(os.path.realpath(initdb))
    # Not under pytest's tmp dirs: those are private to root, and the server runs as another user.
    root = Path(tempfile.mkdtemp(prefix="earlyexit-pg-"))
    os.chmod(root, 0o777)
    as_user = []
    if os.geteuid() == 0:  # the server refuses to run as root
        if shutil.which("runuser") is None:
            pytest.skip("running as root without runuser: cannot start PostgreSQL as another user")
        as_user = ["runuser", "-u", "postgres", "--"]
    data, port = root / "data", _free_port()
    subprocess.run([*as_user, f"{bindir}/initdb", "-D", str(data), "-A", "trust", "-U", "postgres"], check=True,
                   capture_output=True)
    subprocess.run([*as_user, f"{bindir}/pg_ctl", "-D", str(data), "-l", str(root / "log"), "-w", "-o",
                    f"-p {port} -k {root} -c listen_addresses=127.0.0.1", "start"], check=True, capture_output=True)
    try:
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres",
                             autocommit=True) as conn:
            conn.execute("CREATE DATABASE earlyexit")
            conn.execute("CREATE DATABASE chaos")
            conn.execute("CREATE DATABASE ledger")

        def restart(down_seconds: float) -> None:
            subprocess.run([*as_user, f"{bindir}/pg_ctl", "-D", str(data), "-m", "fast", "stop"], check=True,
                           capture_output=True)
            time.sleep(down_seconds)
            subprocess.run([*as_user, f"{bindir}/pg_ctl", "-D", str(data), "-l", str(root / "log"), "-w", "-o",
                            f"-p {port} -k {root} -c listen_addresses=127.0.0.1", "start"], check=True,
                           capture_output=True)

        yield f"postgresql://postgres@127.0.0.1:{port}/earlyexit", restart
    finally:
        subprocess.run([*as_user, f"{bindir}/pg_ctl", "-D", str(data), "-m", "fast", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def postgres_url(postgres_server):
    return postgres_server[0]


def _two_workers(tmp_path, storage):
    spec = tmp_path / "workers.toml"
    spec.write_text(SPEC)
    procs = []
    for _ in range(2):
        procs.append(subprocess.Popen([sys.executable, "-m", "earlyexit", "run", str(spec), "--storage", storage,
                                       "--no-progress"], cwd=tmp_path, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True))
        time.sleep(1.0)  # the first creates the study
    for p in procs:
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-2000:]


def _check(study):
    finished = [t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    lrs = [t.params["learning_rate"] for t in finished]
    assert sorted(lrs) == sorted(set(lrs)) and len(lrs) == 6  # every grid point once, none twice
    workers = {t.user_attrs["earlyexit:worker"] for t in finished}
    assert len(workers) == 2, workers  # both workers trained trials
    pruned = [t for t in study.trials if t.state == TrialState.PRUNED]
    assert pruned  # the pruner compared trials across the workers
    assert all("ranked" in t.user_attrs["pruned_reason"] for t in pruned)


def test_two_workers_on_postgresql(tmp_path, postgres_url):
    _two_workers(tmp_path, postgres_url)
    _check(optuna.load_study(study_name="workers", storage=postgres_url))


def test_two_workers_on_a_journal_file(tmp_path):
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    url = f"journal:{tmp_path}/study.log"
    _two_workers(tmp_path, url)
    _check(optuna.load_study(study_name="workers",
                             storage=JournalStorage(JournalFileBackend(f"{tmp_path}/study.log"))))


def test_four_workers_survive_kills_and_a_database_restart(tmp_path, postgres_server):
    """Four `earlyexit run` workers on PostgreSQL: eight kill -9 (each followed by a restart of that worker) and
    the server stopped for 4 s and started again mid-study. No worker dies of the outage (each waits, saying so
    in one line), every planned trial finishes, none stays RUNNING, no configuration trains to the end twice."""
    import random

    from test_chaos import SPEC as CHAOS

    url = postgres_server[0].rsplit("/", 1)[0] + "/chaos"
    spec = tmp_path / "chaos.toml"
    spec.write_text(CHAOS.replace('seed = 3\n', 'seed = 3\nheartbeat_seconds = 2\n'))
    logs = [open(tmp_path / f"w{i}.log", "w") for i in range(4)]

    def start(i):
        return subprocess.Popen([sys.executable, "-m", "earlyexit", "run", str(spec), "--storage", url,
                                 "--no-progress", "--threads", "1"], cwd=tmp_path, stdout=logs[i],
                                stderr=subprocess.STDOUT, text=True)

    rng = random.Random(1)
    workers = [start(0)]
    time.sleep(4.0)
    workers += [start(i) for i in range(1, 4)]
    kills = 0
    for event in range(9):
        time.sleep(rng.uniform(3.0, 6.0))
        if event == 4:
            postgres_server[1](8.0)  # the database goes away and comes back
            continue
        i = rng.randrange(4)
        if workers[i].poll() is None:
            workers[i].kill()
            workers[i].wait()
            kills += 1
        workers[i] = start(i)
    codes = [w.wait(timeout=500) for w in workers]
    for f in logs:
        f.close()
    assert kills >= 6, f"only {kills} kills landed before the study ended"
    text = "".join((tmp_path / f"w{i}.log").read_text() for i in range(4))
    assert codes == [0, 0, 0, 0], text[-6000:]
    time.sleep(5)  # past the heartbeat's grace period: a killed worker's trial is stale now
    again = subprocess.run([sys.executable, "-m", "earlyexit", "run", str(spec), "--storage", url, "--no-progress",
                            "--threads", "1"], cwd=tmp_path, capture_output=True, text=True, timeout=500)
    assert again.returncode == 0, again.stderr[-2000:]
    trials = optuna.load_study(study_name="chaos", storage=url).trials
    assert not [t.number for t in trials if t.state == TrialState.RUNNING]
    assert len([t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]) >= 12
    trained = [tuple(sorted(t.params.items())) for t in trials if t.state == TrialState.COMPLETE]
    assert len(trained) == len(set(trained))
    # Each kill costs at most its trial in progress, and an outage longer than the heartbeat's grace period (8 s
    # against 4 here) at most the four trials in progress, which other workers fail as stale and queue again.
    assert len([t for t in trials if t.state == TrialState.FAIL]) <= kills + 4
    assert text.count("unreachable") >= 1  # a worker met the outage, waited, and said so in one line
    print(f"postgres chaos: {kills} kills, 1 restart; outage lines: "
          f"{text.count('unreachable')} waited, {text.count('storage back')} back")


def test_a_storage_call_waits_for_the_database_and_says_so_once():
    from sqlalchemy.exc import OperationalError

    from earlyexit.study._storage import with_retries

    class Flaky:
        calls = 0

        def get_trial(self, trial_id):
            Flaky.calls += 1
            if Flaky.calls <= 3:
                raise OperationalError("SELECT", {}, Exception("connection refused"))
            return trial_id

        def set_trial_user_attr(self, *args):
            raise ValueError("a bad request is not retried")

        def get_all_trials(self, *args):
            if Flaky.calls < 6:
                Flaky.calls += 1
                try:  # as Optuna's RDBStorage wraps it
                    raise OperationalError("SELECT", {}, Exception("server closed the connection"))
                except OperationalError as exc:
                    raise optuna.exceptions.StorageInternalError("an exception during the commit") from exc
            return []

    said = []
    storage = with_retries(Flaky(), say=said.append)
    assert storage.get_trial(7) == 7 and Flaky.calls == 4
    assert len(said) == 2 and said[0].startswith("storage unreachable") and said[1].startswith("storage back")
    with pytest.raises(ValueError):
        storage.set_trial_user_attr(1, "k", "v")
    assert storage.get_all_trials(0) == [] and Flaky.calls == 6  # through Optuna's wrapping too


LEDGER_SPEC = tiny_spec("ledger", grid={"learning_rate": [3e-3, 1e-3, 3e-4, 1e-4, 3e-5, 1e-5]}, max_steps=80,
                        steps=[0, 10, 40], study={"heartbeat_seconds": 4})


def test_three_machines_log_one_sweep_through_postgresql(tmp_path, postgres_server):
    """`earlyexit sweep --storage postgresql://...`: three workers, each with its own folder (as on three machines
    that share no file system), one of them killed with kill -9 mid-run and restarted, then the database stopped
    for 5 s and started again. Every run is trained to the end once, the killed worker's run is taken over, no
    worker dies of the outage, and every folder ends with the whole sweep."""
    from earlyexit.study._ledger import ROWS_ATTR, RUN_ID_ATTR
    from earlyexit.sweeps import load

    url = postgres_server[0].rsplit("/", 1)[0] + "/ledger"
    spec = tmp_path / "ledger.toml"
    spec.write_text(LEDGER_SPEC)
    logs = [open(tmp_path / f"m{i}.log", "a") for i in range(3)]

    def start(i):
        return subprocess.Popen([sys.executable, "-m", "earlyexit", "sweep", str(spec), "--storage", url,
                                 "--out", str(tmp_path / f"machine{i}"), "--threads", "1"], cwd=tmp_path,
                                stdout=logs[i], stderr=subprocess.STDOUT, text=True)

    workers = [start(0)]
    time.sleep(4.0)  # the first worker seeds the ledger; the others join it
    workers += [start(1), start(2)]
    deadline = time.monotonic() + 120
    while "step 20/80" not in (tmp_path / "m0.log").read_text() and time.monotonic() < deadline:
        time.sleep(0.2)
    workers[0].kill()  # mid-run
    workers[0].wait()
    workers[0] = start(0)
    time.sleep(3.0)
    postgres_server[1](5.0)  # the database goes away mid-sweep and comes back
    codes = [w.wait(timeout=400) for w in workers]
    for f in logs:
        f.close()
    text = "".join((tmp_path / f"m{i}.log").read_text() for i in range(3))
    assert codes == [0, 0, 0], text[-6000:]
    assert "storage unreachable" in text and "storage back" in text  # met the outage, waited, said so
    trials = optuna.load_study(study_name="sweep:ledger", storage=url).trials
    done = [t.user_attrs[RUN_ID_ATTR] for t in trials if t.state == TrialState.COMPLETE]
    assert sorted(done) == [f"r{i:03d}" for i in range(6)]  # each run trained to the end once
    assert all(ROWS_ATTR in t.user_attrs for t in trials if t.state == TrialState.COMPLETE)
    assert [t for t in trials if t.state == TrialState.FAIL], "the killed worker's run was failed as stale"
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    finals = None
    for i in range(3):
        sweep = load(tmp_path / f"machine{i}", require_complete=True)
        got = dict(zip(sweep.runs["run_id"], sweep.runs["final_accuracy"]))
        assert finals is None or got == finals  # the same sweep in every folder
        finals = got
    assert len(finals) == 6


def test_a_killed_worker_of_a_journal_ledger_is_taken_over_on_its_host(tmp_path):
    """A journal-file ledger has no heartbeat: the run of a worker killed on this host is failed and queued again
    by the next worker there, and trained once."""
    from earlyexit.study._ledger import RUN_ID_ATTR

    spec = tmp_path / "ledger.toml"
    spec.write_text(LEDGER_SPEC)
    command = [sys.executable, "-m", "earlyexit", "sweep", str(spec), "--storage", f"journal:{tmp_path}/l.log",
               "--out", str(tmp_path / "sweep"), "--threads", "1"]
    with open(tmp_path / "first.log", "w") as log:
        first = subprocess.Popen(command, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 120
        while "step 20/80" not in (tmp_path / "first.log").read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        first.kill()
        first.wait()
    again = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=400)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    trials = optuna.load_study(study_name="sweep:ledger",
                               storage=JournalStorage(JournalFileBackend(str(tmp_path / "l.log")))).trials
    done = sorted(t.user_attrs[RUN_ID_ATTR] for t in trials if t.state == TrialState.COMPLETE)
    assert done == [f"r{i:03d}" for i in range(6)]
    assert [t.state for t in trials].count(TrialState.FAIL) == 1
    assert len(open(tmp_path / "sweep" / "runs.csv").read().splitlines()) == 7
