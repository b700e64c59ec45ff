"""ProbeCallback inside a real (tiny, offline) Trainer run and Trainer.hyperparameter_search."""

import optuna
import pytest
import torch

pytest.importorskip("accelerate")
from transformers import DataCollatorWithPadding, Trainer, TrainingArguments  # noqa: E402

from earlyexit.data import load_task
from earlyexit.training import collate  # noqa: E402
from earlyexit.hf import ProbeCallback  # noqa: E402
from earlyexit.models import load_model, load_tokenizer  # noqa: E402
from earlyexit.pruning import GeometricPruner  # noqa: E402
from earlyexit.names import CONTEXT_NAMES  # noqa: E402

TASK = load_task("sst2", "earlyexit:sst2-2k", max_train=64)
TOK = load_tokenizer("earlyexit:tiny-bert")


class Rows(torch.utils.data.Dataset):
    def __init__(self, rows):
        self.enc = [dict(TOK(r[0], truncation=True, max_length=32), labels=r[2]) for r in rows]

    def __len__(self):
        return len(self.enc)

    def __getitem__(self, i):
        return self.enc[i]


def _args(tmp_path, **kw):
    return TrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=8, max_steps=6,
                             learning_rate=1e-3, report_to="none", save_strategy="no", logging_steps=100,
                             use_cpu=True, disable_tqdm=True, **kw)


def _probe_batches():
    return [collate(TOK, TASK.train[i:i + 4], 32) for i in (0, 4)]


def test_callback_measures_and_logs_through_the_trainer(tmp_path):
    trainer = Trainer(model=load_model("earlyexit:tiny-bert", 2), args=_args(tmp_path),
                      train_dataset=Rows(TASK.train), data_collator=DataCollatorWithPadding(TOK))
    cb = ProbeCallback.attach(trainer, _probe_batches(), steps=(0, 3, 6),
                              names=["loss", "gradient_norm", "critical_sharpness"])
    trainer.train()
    assert sorted(cb.history) == [0, 3, 6]
    logged = [h for h in trainer.state.log_history if "probe/loss" in h]
    assert len(logged) == 3
    assert {"probe/loss", "probe/gradient_norm", "probe/critical_sharpness"} <= set(logged[0])
    assert cb.history[6]["loss"] != cb.history[0]["loss"]


def test_hyperparameter_search_with_the_geometric_pruner(tmp_path):
    def model_init(trial=None):
        return load_model("earlyexit:tiny-bert", 2, seed=0)

    trainer = Trainer(model_init=model_init, args=_args(tmp_path), train_dataset=Rows(TASK.train),
                      eval_dataset=Rows(TASK.dev[:32]), data_collator=DataCollatorWithPadding(TOK))
    ProbeCallback.attach(trainer, _probe_batches(), steps=(0, 3), names=["loss", "gradient_norm"])
    def hp_space(trial):
        return {"learning_rate": trial.suggest_float("learning_rate", 1e-6, 1e-2, log=True)}

    storage = f"sqlite:///{tmp_path}/hp.db"
    best = trainer.hyperparameter_search(
        backend="optuna", direction="minimize", n_trials=5, hp_space=hp_space,
        sampler=optuna.samplers.RandomSampler(seed=0), storage=storage, study_name="hp",
        pruner=GeometricPruner(decision_steps=[3], keep_top=1, n_startup_trials=1),
        compute_objective=lambda metrics: metrics["eval_loss"])
    study = optuna.load_study(study_name="hp", storage=storage)
    states = [t.state for t in study.trials]
    assert states.count(optuna.trial.TrialState.PRUNED) >= 1
    assert states.count(optuna.trial.TrialState.COMPLETE) >= 1
    for t in study.trials:
        assert "probes@0" in t.user_attrs and 3 in t.intermediate_values
    pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    assert all(t.user_attrs["pruned_reason"].startswith("geometric pruner at step 3") for t in pruned)
    assert best.run_id is not None


def _accuracy(pred):
    return {"accuracy": float((pred.predictions.argmax(-1) == pred.label_ids).mean())}


def test_callback_follows_a_fitted_scorers_plan_and_reads_the_trainers_dev_accuracy(tmp_path):
    import numpy as np

    from earlyexit.scoring import FeatureSchema, FittedScorer, SignatureRegressor

    # A scorer that reads the loss at step 2, and the loss and the dev accuracy at step 4.
    schemas = {2: FeatureSchema(("loss",), (2,)), 4: FeatureSchema(("loss", "dev_accuracy"), (4,))}
    rng = np.random.default_rng(0)
    fitted = {}
    for p, schema in schemas.items():
        X = rng.normal(size=(8, len(schema.columns)))
        fitted[p] = SignatureRegressor().fit(X, X[:, 0])
    scorer = FittedScorer(schemas, fitted)
    assert scorer.reads([2, 4]) == {2: ("loss",), 4: ("loss", "dev_accuracy")}

    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.NopPruner())
    trial = study.ask()
    trainer = Trainer(model=load_model("earlyexit:tiny-bert", 2), args=_args(tmp_path),
                      train_dataset=Rows(TASK.train), eval_dataset=Rows(TASK.dev[:32]),
                      data_collator=DataCollatorWithPadding(TOK), compute_metrics=_accuracy)
    pruner = GeometricPruner(decision_steps=[4, 2])
    cb = ProbeCallback.attach(trainer, _probe_batches(), scorer=scorer, trial=trial,
                              decision_steps=pruner.decision_steps)
    trainer.train()
    assert sorted(cb.history) == [2, 4]
    # Only what the scorer reads (no Hessian probes paid for), beside the free names of the schedule.
    assert set(cb.history[2]) - set(CONTEXT_NAMES) == {"loss"}
    assert set(cb.history[4]) - set(CONTEXT_NAMES) == {"loss", "dev_accuracy", "dev_metric", "dev_loss"}
    assert 0 < cb.history[2]["lr_progress"] < cb.history[4]["lr_progress"] <= 1
    assert study.trials[0].user_attrs["lr_progress@4"] == cb.history[4]["lr_progress"]
    # The dev metric where the Trainer evaluated (what a pruner with dev_ties compares), none where it did not.
    assert study.trials[0].user_attrs["dev_metric@4"] == cb.history[4]["dev_metric"]
    assert "dev_metric@2" not in study.trials[0].user_attrs
    evaluated = [h for h in trainer.state.log_history if "eval_accuracy" in h]
    assert [h["step"] for h in evaluated] == [4]  # the Trainer evaluated because the scorer reads dev there
    assert cb.history[4]["dev_accuracy"] == evaluated[0]["eval_accuracy"]
    reported = study.trials[0].intermediate_values
    assert sorted(reported) == [2, 4]  # reported at the decision steps only, each with the scorer's score
    assert reported[2] == pytest.approx(scorer.score({2: cb.history[2]}, 2))
    assert reported[4] == pytest.approx(scorer.score(cb.history, 4))


def test_decision_steps_need_a_scorer_that_says_what_it_reads():
    with pytest.raises(TypeError, match="reads"):
        ProbeCallback(_probe_batches(), scorer=object(), decision_steps=[4])
    with pytest.raises(ValueError, match="metric_keys"):
        ProbeCallback(_probe_batches(), metric_keys={"accuracy": "eval_accuracy"})


# A task the tiny model can learn in a few dozen steps (the label is one word) and a dev set of 64: a trial
# that learns it leads one that cannot (a learning rate of 1e-7) by far more than the dev set's noise.
EASY = [(f"{w} {n}", None, int(w == "good")) for n in ("film", "plot", "cast", "score") for w in ("good", "bad")]


def test_the_trainer_path_prunes_with_the_shipped_rule_and_no_scorer(tmp_path):
    """The README's Trainer example: ``ProbeCallback.attach(trainer)`` and ``ResolutionPruner()``."""
    from earlyexit.pruning import DEFAULT_RULE, ResolutionPruner

    def model_init(trial=None):
        return load_model("earlyexit:tiny-bert", 2, seed=0)

    def hp_space(trial):
        return {"learning_rate": trial.suggest_float("learning_rate", 1e-7, 3e-3, log=True)}

    args = TrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=8, max_steps=24,
                             learning_rate=1e-3, report_to="none", save_strategy="no", logging_steps=100,
                             use_cpu=True, disable_tqdm=True, warmup_steps=0)
    trainer = Trainer(model_init=model_init, args=args, train_dataset=Rows(EASY * 8), eval_dataset=Rows(EASY * 8),
                      data_collator=DataCollatorWithPadding(TOK), compute_metrics=_accuracy)
    ProbeCallback.attach(trainer)
    sampler = optuna.samplers.RandomSampler(seed=0)
    storage = f"sqlite:///{tmp_path}/hp.db"
    study = optuna.create_study(study_name="hp", storage=storage, direction="maximize", sampler=sampler)
    for lr in (3e-3, 1e-7, 3e-3, 1e-7):  # a learner first, so that there is a lead to resolve
        study.enqueue_trial({"learning_rate": lr})
    trainer.hyperparameter_search(
        backend="optuna", direction="maximize", n_trials=4, hp_space=hp_space, sampler=sampler,
        storage=storage, study_name="hp", load_if_exists=True, pruner=ResolutionPruner(),
        compute_objective=lambda metrics: metrics["eval_accuracy"])
    study = optuna.load_study(study_name="hp", storage=storage)
    pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    assert pruned and all(t.params["learning_rate"] < 1e-6 for t in pruned)
    rungs = DEFAULT_RULE.rung_steps(24)
    for t in study.trials:
        assert set(t.intermediate_values) <= set(rungs)  # judged only at the rule's rungs, placed on max_steps
        assert all(0 <= v <= 1 for v in t.intermediate_values.values())  # on the metric's own scale
        assert t.user_attrs["earlyexit:dev_size"] == 64
    for t in pruned:
        assert t.last_step in rungs and "ahead by > 1 SE" in t.user_attrs["pruned_reason"]


def test_transformers_default_space_judges_each_trial_at_the_rungs_of_its_own_budget(tmp_path):
    """No hp_space: transformers' default Optuna space searches epochs (1-5) and batch size (4-64), so trials run
    from 1 to 80 steps here; each is judged only at the rule's rungs of its own budget, and the reason says so."""
    from earlyexit.names import MAX_STEPS
    from earlyexit.pruning import DEFAULT_RULE, ResolutionPruner

    args = TrainingArguments(output_dir=str(tmp_path), report_to="none", save_strategy="no", logging_steps=100,
                             use_cpu=True, disable_tqdm=True, warmup_steps=0)
    trainer = Trainer(model_init=lambda trial=None: load_model("earlyexit:tiny-bert", 2, seed=0), args=args,
                      train_dataset=Rows(EASY * 8), eval_dataset=Rows(EASY * 8),
                      data_collator=DataCollatorWithPadding(TOK), compute_metrics=_accuracy)
    ProbeCallback.attach(trainer)
    storage = f"sqlite:///{tmp_path}/hp.db"
    study = optuna.create_study(study_name="hp", storage=storage, direction="maximize")
    # A learner with a long budget first (its learning rate above the default range: enqueued values are used as
    # given), then trials of other budgets that stay at chance.
    for lr, epochs, batch in ((3e-3, 5, 4), (1e-6, 2, 8), (1e-6, 5, 16), (1e-6, 4, 4)):
        study.enqueue_trial({"learning_rate": lr, "num_train_epochs": epochs, "seed": 1,
                             "per_device_train_batch_size": batch})
    trainer.hyperparameter_search(backend="optuna", direction="maximize", n_trials=4, storage=storage,
                                  study_name="hp", load_if_exists=True, pruner=ResolutionPruner(),
                                  compute_objective=lambda metrics: metrics["eval_accuracy"])
    study = optuna.load_study(study_name="hp", storage=storage)
    budgets = [t.user_attrs[MAX_STEPS] for t in study.trials]
    assert budgets == [80, 16, 20, 64]  # epochs x ceil(64 / batch size)
    for t, own in zip(study.trials, budgets):
        assert set(t.intermediate_values) <= set(DEFAULT_RULE.rung_steps(own))
    pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    assert pruned, "a trial at chance behind a learner is pruned"
    for t in pruned:
        assert f"of its {t.user_attrs[MAX_STEPS]}-step budget" in t.user_attrs["pruned_reason"]
