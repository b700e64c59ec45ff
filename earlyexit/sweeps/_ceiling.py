"""How well could any early signal rank a sweep's configs? The seed-to-seed noise ceiling.

A scorer sees one seed's run of a config and predicts its final accuracy. Even a
scorer that knew each config's *mean* final over the other seeds exactly would
not rank a held-out seed perfectly, because the seed itself moves the finals.
This module measures that limit from the log, leave-one-seed-out:

- ``spearman``: rank correlation, over the configs of the held-out seed, of the
  other seeds' mean final with the held-out seed's final. A scorer of early
  probes should not be expected to beat it.
- ``regret``: accuracy lost by keeping the config whose mean final over the
  other seeds is highest, against the held-out seed's own best (metric units,
  as in the replay: 0.001 is 0.1 accuracy points).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from ._load import Sweep


def seed_ceiling(sweep: Sweep) -> list[dict]:
    """Per held-out seed, one dict: ``seed``, ``configs`` (n ranked), ``spearman``, ``regret`` (metric
    units: 0.01 is one accuracy point), ``best_config`` (the held-out seed's best), ``picked_config`` (best by the other
    seeds' mean). Empty where fewer than two seeds share at least three completed configs.

    Runs that diverged or have no finite final accuracy are left out of both sides.
    """
    runs = sweep.runs[(sweep.runs["status"] == "completed") & np.isfinite(sweep.runs["final_metric"])]
    table = runs.pivot_table(index="config_id", columns="seed", values="final_metric", aggfunc="mean")
    out = []
    for seed in table.columns:
        others = table.drop(columns=seed)
        if others.shape[1] == 0:
            continue
        both = table[seed].notna() & others.notna().any(axis=1)
        if both.sum() < 3:
            continue
        held = table.loc[both, seed]
        mean_others = others.loc[both].mean(axis=1)
        rho = stats.spearmanr(mean_others, held).statistic if held.nunique() > 1 else math.nan
        picked = mean_others.idxmax()
        out.append({"seed": int(seed), "configs": int(both.sum()), "spearman": float(rho),
                    "regret": float(held.max() - held[picked]),
                    "best_config": str(held.idxmax()), "picked_config": str(picked)})
    return out


def ceiling_summary(rows: list[dict]) -> dict:
    """Means over held-out seeds of :func:`seed_ceiling`'s rows: ``spearman``, ``regret`` and ``seeds``."""
    if not rows:
        return {"seeds": 0, "spearman": math.nan, "regret": math.nan}
    return {"seeds": len(rows), "spearman": float(np.nanmean([r["spearman"] for r in rows])),
            "regret": float(np.mean([r["regret"] for r in rows]))}
