"""Chaos on one study: four `earlyexit run` workers on a journal file, eight kill -9 at random times, each
followed by a restart of that worker. Every planned trial ends COMPLETE or PRUNED, none stays RUNNING, no
configuration is trained to the end twice, and every kill costs at most the trial it interrupted."""

from __future__ import annotations

import random
import subprocess
import sys
import time

import optuna
from optuna.trial import TrialState

from conftest import tiny_spec

N_TRIALS, WORKERS, KILLS = 12, 4, 8
SPEC = tiny_spec("chaos", grid={}, max_steps=30, steps=[0, 10],
                 study={"sampler": "random", "n_trials": N_TRIALS, "seed": 3},
                 pruner={"kind": "resolution"}).replace("[search.grid]\n", "") + (
    '[search]\nlearning_rate = { type = "float", low = 1e-5, high = 3e-3, log = true }\n'
    'warmup_ratio = { type = "float", low = 0.0, high = 0.3 }\n')


def _worker(spec, url, cwd, log):
    return subprocess.Popen([sys.executable, "-m", "earlyexit", "run", str(spec), "--storage", url, "--no-progress",
                             "--threads", "1"], cwd=cwd, stdout=log, stderr=subprocess.STDOUT, text=True)


def _finished(study):
    return [t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]


def test_four_workers_survive_eight_kills_on_a_journal_file(tmp_path):
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    spec = tmp_path / "chaos.toml"
    spec.write_text(SPEC)
    url = f"journal:{tmp_path}/study.log"
    log = open(tmp_path / "workers.log", "w")
    rng = random.Random(0)
    started = time.time()
    workers = [_worker(spec, url, tmp_path, log)]
    time.sleep(3.0)  # the first creates the study
    workers += [_worker(spec, url, tmp_path, log) for _ in range(WORKERS - 1)]
    storage = JournalStorage(JournalFileBackend(f"{tmp_path}/study.log"))
    kills = 0
    while kills < KILLS and time.time() - started < 150:
        time.sleep(rng.uniform(2.0, 5.0))
        i = rng.randrange(WORKERS)
        if workers[i].poll() is None:
            workers[i].kill()  # SIGKILL
            workers[i].wait()
            kills += 1
        workers[i] = _worker(spec, url, tmp_path, log)  # restarted, as a supervisor would
    for w in workers:
        w.wait(timeout=400)
    # A worker killed last may leave its trial RUNNING; the same command once more retries it.
    again = subprocess.run([sys.executable, "-m", "earlyexit", "run", str(spec), "--storage", url, "--no-progress",
                            "--threads", "1"], cwd=tmp_path, capture_output=True, text=True, timeout=400)
    log.close()
    assert again.returncode == 0, again.stderr[-2000:]
    assert kills >= 4, f"only {kills} kills landed before the study ended"
    study = optuna.load_study(study_name="chaos", storage=storage)
    trials = study.trials
    assert not [t.number for t in trials if t.state == TrialState.RUNNING]
    done = _finished(study)
    assert len(done) >= N_TRIALS
    trained = [tuple(sorted(t.params.items())) for t in trials if t.state == TrialState.COMPLETE]
    assert len(trained) == len(set(trained)), "a configuration was trained to the end twice"
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert len(failed) <= kills  # each kill cost at most the trial in progress
    retried = {t.system_attrs.get("failed_trial") for t in trials}
    for t in failed:  # and that trial was tried again with the same hyperparameters
        again_t = [r for r in trials if r.system_attrs.get("failed_trial") == t.number]
        assert t.number in retried and again_t and again_t[0].params == t.params
    print(f"chaos: {kills} kills, {len(failed)} trials lost and retried, {len(done)} finished, "
          f"{time.time() - started:.0f} s")
