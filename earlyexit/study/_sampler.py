"""Random search whose draws depend on the study's seed and the trial's number only.

Optuna's ``RandomSampler(seed=s)`` draws from one stream per process: every worker of a shared study, started
from the same spec, proposes the same sequence, and configurations are trained twice (seen with four
``earlyexit run`` workers on one journal). Here trial ``n``'s value of parameter ``p`` is drawn from a
generator seeded with ``(seed, n, p)``: the same study gives the same configurations whichever worker runs
which trial, and no two trials share a draw.
"""

from __future__ import annotations

import math
import zlib

import numpy as np
import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution


class TrialSeededRandomSampler(optuna.samplers.BaseSampler):
    """Independent uniform draws (log-uniform where the distribution says so), seeded per trial and parameter."""

    def __init__(self, seed: int = 0):
        self.seed = int(seed)

    def infer_relative_search_space(self, study, trial):
        return {}

    def sample_relative(self, study, trial, search_space):
        return {}

    def sample_independent(self, study, trial, param_name, distribution):
        rng = np.random.default_rng([self.seed, trial.number, zlib.crc32(param_name.encode())])
        if isinstance(distribution, CategoricalDistribution):
            return distribution.choices[int(rng.integers(len(distribution.choices)))]
        low, high = distribution.low, distribution.high
        if isinstance(distribution, FloatDistribution):
            if distribution.log:
                return float(math.exp(rng.uniform(math.log(low), math.log(high))))
            if distribution.step is not None:
                k = int(rng.integers(int(round((high - low) / distribution.step)) + 1))
                return float(min(low + k * distribution.step, high))
            return float(rng.uniform(low, high))
        if isinstance(distribution, IntDistribution):
            if distribution.log:
                value = int(round(math.exp(rng.uniform(math.log(low - 0.5 if low > 0.5 else low),
                                                        math.log(high + 0.5)))))
                return int(min(max(value, low), high))
            k = int(rng.integers((high - low) // distribution.step + 1))
            return int(low + k * distribution.step)
        raise TypeError(f"no draw for {type(distribution).__name__} ({param_name})")
