"""Random search draws by the study's seed and the trial's number: workers never repeat each other."""

import optuna

from earlyexit.study._sampler import TrialSeededRandomSampler

SPACE = {"lr": optuna.distributions.FloatDistribution(1e-5, 1e-2, log=True),
         "wd": optuna.distributions.FloatDistribution(0.0, 0.1),
         "layers": optuna.distributions.IntDistribution(1, 6),
         "schedule": optuna.distributions.CategoricalDistribution(["linear", "cosine", "constant"])}


def _draw(study, sampler):
    trial = study.ask()
    params = {k: sampler.sample_independent(study, trial, k, d) for k, d in SPACE.items()}
    study.tell(trial, 0.0)
    return trial.number, params


def test_two_workers_with_one_seed_draw_what_one_worker_would_and_never_the_same():
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.InMemoryStorage()
    a, b = TrialSeededRandomSampler(7), TrialSeededRandomSampler(7)  # two processes, one spec
    shared = optuna.create_study(storage=storage, study_name="s")
    draws = dict(_draw(shared, a if i % 2 else b) for i in range(20))
    alone = optuna.create_study()
    single = dict(_draw(alone, TrialSeededRandomSampler(7)) for _ in range(20))
    assert draws == single  # the same configurations whichever worker drew which trial
    assert len({tuple(p.values()) for p in draws.values()}) == 20
    for p in draws.values():
        assert 1e-5 <= p["lr"] <= 1e-2 and 0 <= p["wd"] <= 0.1 and 1 <= p["layers"] <= 6
        assert p["schedule"] in SPACE["schedule"].choices
    other = optuna.create_study()
    assert dict(_draw(other, TrialSeededRandomSampler(8)) for _ in range(3)) != {k: draws[k] for k in range(3)}


def test_tpe_with_two_threads_runs_a_study_to_its_count_with_the_shipped_pruner(tmp_path):
    from conftest import tiny_spec
    from earlyexit.study import load_spec, run_study
    from optuna.trial import TrialState

    text = tiny_spec("tpe", grid={}, max_steps=20, steps=[0, 5], study={"sampler": "tpe", "n_trials": 6, "seed": 1},
                     pruner={"kind": "resolution"}).replace("[search.grid]\n", "")
    text += '[search]\nlearning_rate = { type = "float", low = 1e-5, high = 3e-3, log = true }\n'
    (tmp_path / "tpe.toml").write_text(text)
    study = run_study(load_spec(tmp_path / "tpe.toml"), storage=f"sqlite:///{tmp_path}/t.db", n_jobs=2,
                      show_progress=False)
    done = [t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(done) >= 6 and not [t for t in study.trials if t.state == TrialState.RUNNING]
    assert isinstance(study.sampler, optuna.samplers.TPESampler)
