"""The figures the README, the look-ahead page and the protocol page quote are the committed benchmark JSON's, to the digit shown."""

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _agg(name: str, policy: str) -> dict:
    return json.loads((ROOT / "benchmarks" / "nested" / name).read_text())["aggregate"][policy]["nested"]


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _pts(x: float) -> str:
    return f"{x:.2f}"


CASES = [
    # (file, the JSON file, policy, the sentence as quoted, built from the JSON)
    ("README.md", "all-policies16-w1.json", "default",
     lambda a: f"the shipped pruner saves {_pct(a['mean_compute_saved'])} of the compute"),
    ("README.md", "all-policies16-w1.json", "default",
     lambda a: f"a mean loss of {_pts(a['mean_regret'])} points of the best dev metric ({_pts(a['worst_regret'])} at worst)"),
    ("README.md", "all-policies16-w1.json", "median",
     lambda a: f"Optuna's median pruner saves {_pct(a['mean_compute_saved'])} at\n{_pts(a['mean_regret'])} "
               f"({_pts(a['worst_regret'])} at worst)"),
    ("README.md", "lookahead16-w1.json", "lookahead",
     lambda a: f"it saves {_pct(a['mean_compute_saved'])} at\na mean regret of {_pts(a['mean_regret'])} and a worst of "
               f"{_pts(a['worst_regret'])}"),
    ("README.md", "lookahead-refit16-w1.json", "lookahead_refit",
     lambda a: f"saves {_pct(a['mean_compute_saved'])} at a mean regret of\n{_pts(a['mean_regret'])} and a worst of "
               f"{_pts(a['worst_regret'])}"),
    ("docs/lookahead.md", "lookahead-study16-w1.json", "lookahead_study",
     lambda a: f"**{_pct(a['mean_compute_saved'])} saved, mean regret {_pts(a['mean_regret'])}, worst "
               f"{_pts(a['worst_regret'])}**"),
    ("docs/lookahead.md", "lookahead-refit16-w1.json", "lookahead_refit",
     lambda a: f"**{_pct(a['mean_compute_saved'])} saved, mean regret {_pts(a['mean_regret'])}, worst "
               f"{_pts(a['worst_regret'])}**"),
    ("docs/lookahead.md", "lookahead16-w4.json", "lookahead",
     lambda a: f"{_pct(a['mean_compute_saved'])} / {_pts(a['mean_regret'])} / {_pts(a['worst_regret'])}"),
    ("docs/lookahead.md", "lookahead-refit16-w4.json", "lookahead_refit",
     lambda a: f"{_pct(a['mean_compute_saved'])} / {_pts(a['mean_regret'])} / {_pts(a['worst_regret'])}"),
    ("docs/lookahead.md", "lookahead-refit16-w8.json", "lookahead_refit",
     lambda a: f"{_pct(a['mean_compute_saved'])} / {_pts(a['mean_regret'])} / {_pts(a['worst_regret'])}"),
    ("docs/lookahead.md", "lookahead-study16-w8.json", "lookahead_study",
     lambda a: f"{_pct(a['mean_compute_saved'])} / {_pts(a['mean_regret'])} / {_pts(a['worst_regret'])}"),
] + [
    (doc, "lookahead-probes16-w1.json", policy,
     lambda a: f"{_pct(a['mean_compute_saved'])} / {_pts(a['mean_regret'])} / {_pts(a['worst_regret'])}")
    for policy in ("default", "lookahead_refit", "lookahead_probes", "median") for doc in ("docs/lookahead.md",)
] + [
    ("README.md", "lookahead-probes16-w1.json", "lookahead_probes",
     lambda a: f"saves {_pct(a['mean_compute_saved'])} at {_pts(a['mean_regret'])} / {_pts(a['worst_regret'])}"),
    ("README.md", "lookahead-probes16-w1.json", "lookahead_refit",
     lambda a: f"against {_pct(a['mean_compute_saved'])} at {_pts(a['mean_regret'])} / {_pts(a['worst_regret'])}"),
]


@pytest.mark.parametrize("doc,name,policy,quote", CASES, ids=[f"{c[0]}:{c[1]}:{c[2]}" for c in CASES])
def test_a_quoted_figure_is_the_committed_jsons(doc, name, policy, quote):
    text = re.sub(r"[ \t]+\n", "\n", (ROOT / doc).read_text())
    expected = quote(_agg(name, policy))
    flat = lambda s: re.sub(r"\s+", " ", s)  # noqa: E731  (line breaks in the prose are not figures)
    assert flat(expected) in flat(text), f"{doc} does not quote {expected!r} from {name}"


def _row(name: str, policy: str) -> str:
    """A row of the README's first nested table: saved, mean, worst, test regret, best case (saved / regret)."""
    agg = json.loads((ROOT / "benchmarks" / "nested" / name).read_text())["aggregate"][policy]
    n, best = agg["nested"], agg["best_case"]
    return (f"| {_pct(n['mean_compute_saved'])} | {_pts(n['mean_regret'])} | {_pts(n['worst_regret'])} | "
            f"{_pts(n['mean_test_regret'])} | {_pct(best['mean_compute_saved'])} / {_pts(best['mean_regret'])} |")


def _triple(name: str, policy: str) -> str:
    n = _agg(name, policy)
    return f"{_pct(n['mean_compute_saved'])} / {_pts(n['mean_regret'])} / {_pts(n['worst_regret'])}"


TABLE_POLICIES = json.loads((ROOT / "benchmarks" / "nested" / "all-policies16-w1.json").read_text())["aggregate"]


@pytest.mark.parametrize("policy", sorted(TABLE_POLICIES))
def test_the_readme_nested_table_rows_are_all_policies16s(policy):
    # The README's first table: every policy over the sixteen sweeps, one trial at a time
    # (benchmarks/nested/all-policies16-w1.json).
    flat = re.sub(r"\s+", " ", (ROOT / "README.md").read_text())
    assert _row("all-policies16-w1.json", policy) in flat, f"README's {policy} row is not all-policies16-w1.json's"


@pytest.mark.parametrize("policy", ["default", "interval", "progress_match", "prefix_accuracy", "median",
                                    "successive_halving"])
def test_the_readme_all16_column_is_all16s(policy):
    # The table of the bound's clean test: sst2-8k-wide32, subj-wide64 and the mean over all 16 sweeps.
    text = (ROOT / "README.md").read_text()
    table = text[text.index("| policy | sst2-8k-wide32 |"):]
    table = table[: table.index("\n\n")]
    line = next(x for x in table.splitlines() if x.split("|")[1].strip().strip("*").split("*")[0].split(" ")[0]
                == policy)
    assert line.rstrip().endswith(f"| {_triple('all16-w1.json', policy)} |"), line


@pytest.mark.parametrize("policy,prefix", [("default", "base14"), ("interval", "interval14"), ("median", "base14")])
def test_the_readme_workers_table_is_the_committed_runs(policy, prefix):
    cells = [_triple(f"{prefix}-w{w}.json", policy) for w in (1, 4, 8)]
    flat = re.sub(r"\s+", " ", (ROOT / "README.md").read_text())
    assert f"| {' | '.join(cells)} |" in flat, f"README's workers row for {policy}: {cells}"


def _sampler_best(sampler: str, pruner: str) -> str:
    rows = json.loads((ROOT / "benchmarks" / "samplers.json").read_text())["rows"]
    best = [r["best"] for r in rows if r["sampler"] == sampler and r["pruner"] == pruner]
    return f"{sum(best) / len(best):.4f}"


def test_the_readme_sampler_figures_are_the_committed_runs():
    flat = re.sub(r"\s+", " ", (ROOT / "README.md").read_text())
    quote = (f"unpruned TPE found {_sampler_best('tpe', 'none')} against random search's "
             f"{_sampler_best('random', 'none')}, but with the shipped rule (63% of the compute saved either way) TPE "
             f"found {_sampler_best('tpe', 'resolution')} and random search {_sampler_best('random', 'resolution')}")
    assert quote in flat, quote


@pytest.mark.parametrize("policy,label", [("fraction", '`ResolutionPruner(judge_at="fraction")`'),
                                          ("step", '`ResolutionPruner(judge_at="step")`'),
                                          ("optuna median", "Optuna's `MedianPruner()`")])
@pytest.mark.parametrize("workers", [1, 4])
def test_the_judge_at_table_is_the_committed_run(policy, label, workers):
    rows = json.loads((ROOT / "benchmarks" / "budgets" / "judge-at.json").read_text())["rows"]
    r = next(r for r in rows if r["policy"] == policy and r["workers"] == workers)
    line = (f"| {label} | {workers} | {r['saved']:.1f}% | {r['mean_regret']:.2f} | {r['worst_regret']:.2f} |")
    assert line in (ROOT / "docs" / "protocol.md").read_text(), line


def test_the_probe_features_predictor_figures_are_the_benchmarks():
    d = json.loads((ROOT / "benchmarks" / "probe-features.json").read_text())
    text = re.sub(r"\s+", " ", (ROOT / "docs" / "lookahead.md").read_text())
    (m0, q0), (m1, q1) = d["mean"]["none"], d["mean"]["with_chosen"]
    assert f"falls from {q0:.3f} to {q1:.3f} headroom units on average (mean error {m0:.3f} to {m1:.3f})" in text
    for name in ("cola-6l-wide24", "mr-4l-wide24", "trec-wide64", "mpqa-wide24", "sst2-grid80"):
        row = d["sweeps"][name]
        assert f"{name} ({row['none'][1]:.3f} to {row['with_chosen'][1]:.3f})" in text, name


def test_the_lookahead_frontier_table_is_the_benchmarks():
    d = json.loads((ROOT / "benchmarks" / "lookahead-frontier.json").read_text())
    text = (ROOT / "docs" / "lookahead.md").read_text()
    rows = re.findall(r"^\| (\d+)%, z ([\d.]+) \| ([\d.]+)% \| ([\d.]+) \| ([\d.]+) \|$", text, flags=re.M)
    assert len(rows) >= 8
    for cov, z, saved, mean, worst in rows:
        s, r, w = d["mean"][f"{cov}% each side, z {z}"]
        assert (saved, mean, worst) == (f"{100 * s:.1f}", f"{r:.2f}", f"{w:.2f}"), (cov, z)


def test_the_record_features_table_is_the_benchmarks():
    d = json.loads((ROOT / "benchmarks" / "record-features.json").read_text())
    text = (ROOT / "docs" / "lookahead.md").read_text()
    for name, r in d["sweeps"].items():
        chosen = r["chosen"].replace("_", " ")
        line = (f"| {name} | {r['none'][0]:.3f} / {r['none'][1]:.3f} | {r['with_chosen'][0]:.3f} / "
                f"{r['with_chosen'][1]:.3f} | {chosen} |")
        assert line in text, line
    (m0, q0), (m1, q1) = d["mean"]["none"], d["mean"]["with_chosen"]
    assert f"| mean | {m0:.3f} / {q0:.3f} | {m1:.3f} / {q1:.3f} | |" in text


def test_the_neighbours_figures_are_the_benchmarks():
    d = json.loads((ROOT / "benchmarks" / "neighbours.json").read_text())
    text = re.sub(r"\s+", " ", (ROOT / "docs" / "lookahead.md").read_text())
    (m0, q0), (m1, q1) = d["mean"]["shipped"], d["mean"]["chosen"]
    assert f"falls from {q0:.3f} to {q1:.3f} headroom units (mean error {m0:.3f} to {m1:.3f})" in text
    better = sum(r["chosen"][1] < r["shipped"][1] for r in d["sweeps"].values())
    assert f"on {better} of the {len(d['sweeps'])} sweeps" in text
    for name in ("cola-grid32", "sst2-grid80", "mr-4l-wide24"):
        r = d["sweeps"][name]
        assert f"{name} ({r['shipped'][1]:.3f} to {r['chosen'][1]:.3f})" in text, name
    n = json.loads((ROOT / "benchmarks" / "nested" / "lookahead-tuned16-w1.json").read_text())["aggregate"]
    t = n["lookahead_tuned"]["nested"]
    assert (f"{100 * t['mean_compute_saved']:.1f}% saved, mean regret {t['mean_regret']:.2f}, worst "
            f"{t['worst_regret']:.2f}") in text
