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
def postgres_url(tmp_path_factory):
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
        yield f"postgresql://postgres@127.0.0.1:{port}/earlyexit"
    finally:
        subprocess.run([*as_user, f"{bindir}/pg_ctl", "-D", str(data), "-m", "fast", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


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
