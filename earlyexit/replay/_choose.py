"""The config a replay of a sweep would choose: what ``earlyexit export`` exports from a sweep folder."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from ..names import Scorer
from ..sweeps import Sweep
from ._fit import HeldOut, scorers_for
from ._simulate import scorer_at, screen


def chosen_config(sweep: Sweep, *, scorer: Scorer | None = None, fit_on: Sequence[Sweep] = (), prefix: int = 100,
                  progress=lambda m: None) -> tuple[str, dict]:
    """The config the ``earlyexit`` policy (keep top 1 at ``prefix``) picks, by majority over held-out seeds.

    Returns ``(config_id, detail)``; ties go to the higher mean final metric.
    """
    if prefix not in sweep.probe_steps:
        raise ValueError(f"--prefix {prefix} is not a probe step of {sweep.path} {sweep.probe_steps}.")
    held = HeldOut.of(sweep, fit_on=fit_on, prefixes=(prefix,), progress=progress)
    scorers, protocol = scorers_for(held, scorer)
    votes: dict[str, list] = defaultdict(list)
    for seed, rs in held.by_seed.items():
        res = screen(prefix, 1, scorer_at(scorers[seed]))(rs, 0)
        for run_id in res.kept:
            votes[next(r.config_id for r in rs if r.run_id == run_id)].append(seed)
    if not votes:
        raise ValueError(f"{sweep.path}: the policy kept no config (every candidate diverged).")
    runs = held.runs
    mean_final = {c: sum(r.final for r in runs if r.config_id == c and r.final == r.final) /
                  max(1, sum(1 for r in runs if r.config_id == c and r.final == r.final)) for c in votes}
    best = max(votes, key=lambda c: (len(votes[c]), mean_final[c]))
    return best, {"protocol": protocol, "prefix": prefix, "votes": {c: v for c, v in votes.items()},
                  "mean_final": mean_final[best]}
