"""The Trainer path under DDP (torchrun, 2 processes, gloo on the CPU): rank 0 decides, every rank stops at the
same step, the study records the pruned trials, and nothing hangs (before this was handled, the other rank
waited forever on rank 0, which had left the trial)."""

import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import torch

pytest.importorskip("accelerate")
SCRIPT = Path(__file__).parent / "scripts" / "ddp_search.py"


@pytest.mark.skipif(not (torch.distributed.is_available() and torch.distributed.is_gloo_available()),
                    reason="torch.distributed with gloo is not available")
def test_a_pruned_trial_stops_every_rank_at_the_step_rank_0_decided(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                          "--standalone", str(SCRIPT), str(tmp_path)],
                         capture_output=True, text=True, timeout=300, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    ends = [(tmp_path / f"rank{r}.txt").read_text().split("\n") for r in (0, 1)]
    assert ends[0] == ends[1]  # every trial ended at the same step on both ranks
    study = optuna.load_study(study_name="hp", storage=f"sqlite:///{tmp_path}/hp.db")
    assert len(study.trials) == 4
    pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    assert [t.number for t in pruned] == [1, 3] and all(t.params["learning_rate"] < 1e-6 for t in pruned)
    ended = dict(line.split() for line in ends[0] if line)
    for t in study.trials:
        assert int(ended[str(t.number)]) == (t.last_step if t in pruned else 24)
        assert t.state != optuna.trial.TrialState.FAIL
    for t in pruned:
        assert "ahead by > 1 SE" in t.user_attrs["pruned_reason"]
