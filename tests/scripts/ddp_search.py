"""Trainer.hyperparameter_search under DDP with the shipped rule: run by ``torchrun --nproc_per_node 2`` (gloo, CPU)
from tests/test_ddp.py. Each rank writes, per trial, the step at which its training ended to ``OUT/rank<r>.txt``."""

import sys
from pathlib import Path

import optuna
import torch
from transformers import DataCollatorWithPadding, Trainer, TrainerCallback, TrainingArguments

from earlyexit.hf import ProbeCallback
from earlyexit.models import load_model, load_tokenizer
from earlyexit.pruning import ResolutionPruner

OUT = Path(sys.argv[1])
TOK = load_tokenizer("earlyexit:tiny-bert")
EASY = [(f"{w} {n}", int(w == "good")) for n in ("film", "plot", "cast", "score") for w in ("good", "bad")]


class Rows(torch.utils.data.Dataset):
    def __init__(self, rows):
        self.enc = [dict(TOK(text, truncation=True, max_length=32), labels=label) for text, label in rows]

    def __len__(self):
        return len(self.enc)

    def __getitem__(self, i):
        return self.enc[i]


class Ends(TrainerCallback):
    """Where each rank's training of each trial ended."""

    def __init__(self, trainer):
        self.trainer = trainer

    def on_train_end(self, args, state, control, **kwargs):
        trial = getattr(self.trainer, "_trial", None)
        with open(OUT / f"rank{args.process_index}.txt", "a") as f:
            f.write(f"{getattr(trial, 'number', '?')} {state.global_step}\n")


def accuracy(pred):
    return {"accuracy": float((pred.predictions.argmax(-1) == pred.label_ids).mean())}


def main():
    args = TrainingArguments(output_dir=str(OUT / "out"), per_device_train_batch_size=4, max_steps=24,
                             learning_rate=1e-3, report_to="none", save_strategy="no", logging_steps=100,
                             use_cpu=True, disable_tqdm=True, warmup_steps=0, ddp_backend="gloo")
    trainer = Trainer(model_init=lambda trial=None: load_model("earlyexit:tiny-bert", 2, seed=0), args=args,
                      train_dataset=Rows(EASY * 8), eval_dataset=Rows(EASY * 8),
                      data_collator=DataCollatorWithPadding(TOK), compute_metrics=accuracy)
    trainer.add_callback(Ends(trainer))  # before ProbeCallback: it records the end before a pruned trial raises
    ProbeCallback.attach(trainer)
    storage = f"sqlite:///{OUT}/hp.db"
    if args.process_index == 0:
        study = optuna.create_study(study_name="hp", storage=storage, direction="maximize")
        for lr in (3e-3, 1e-7, 3e-3, 1e-7):  # a learner first, so that there is a lead to resolve
            study.enqueue_trial({"learning_rate": lr})
    trainer.hyperparameter_search(
        backend="optuna", direction="maximize", n_trials=4, storage=storage, study_name="hp", load_if_exists=True,
        hp_space=lambda t: {"learning_rate": t.suggest_float("learning_rate", 1e-7, 3e-3, log=True)},
        pruner=ResolutionPruner(), compute_objective=lambda metrics: metrics["eval_accuracy"])
    torch.distributed.barrier()


if __name__ == "__main__":
    main()
