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
    """Four `earlyexit run` workers on PostgreSQL: four kill -9 (each followed by a restart of that worker) and
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
    for event in range(5):
        time.sleep(rng.uniform(3.0, 6.0))
        if event == 2:
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
