"""The learning-rate schedule as numbers matches the training loop's transformers scheduler."""

import math

import pytest
import torch
from transformers import get_scheduler

from earlyexit.training import HF_SCHEDULER_NAMES
from earlyexit.training._schedule import lr_multiplier, lr_progress, warmup_steps


@pytest.mark.parametrize("schedule", ["linear", "cosine", "constant"])
@pytest.mark.parametrize("max_steps,warmup_ratio", [(50, 0.0), (97, 0.1), (465, 0.29)])
def test_multipliers_match_transformers(schedule, max_steps, warmup_ratio):
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=1.0)
    sched = get_scheduler(HF_SCHEDULER_NAMES[schedule], opt, num_warmup_steps=warmup_steps(max_steps, warmup_ratio),
                          num_training_steps=max_steps)
    used = []
    for _ in range(max_steps):
        used.append(opt.param_groups[0]["lr"])  # the rate of this step's update
        opt.step()
        sched.step()
    ours = [lr_multiplier(t, max_steps, warmup_ratio, schedule) for t in range(max_steps)]
    assert ours == pytest.approx(used, abs=1e-12)
    done = [lr_progress(d, max_steps, warmup_ratio, schedule) for d in (0, max_steps // 3, max_steps)]
    assert done[0] == 0.0 and done[2] == pytest.approx(1.0)
    assert done[1] == pytest.approx(sum(used[:max_steps // 3]) / sum(used))


def test_progress_is_slow_in_a_long_warmup_and_errors_are_clear():
    # 30% warmup of 2105 steps: by step 100 a run has spent well under 1% of its learning rate.
    assert lr_progress(100, 2105, 0.3, "linear") < 0.01
    assert lr_progress(100, 2105, 0.0, "constant") == pytest.approx(100 / 2105)
    assert math.isclose(lr_progress(5000, 100, 0.0, "linear"), 1.0)
    with pytest.raises(ValueError, match="schedule must be one of"):
        lr_progress(10, 100, 0.0, "step")
    with pytest.raises(ValueError, match="max_steps must be positive"):
        lr_progress(10, 0)
