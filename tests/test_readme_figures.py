"""The figures the README and the look-ahead page quote are the committed benchmark JSON's, to the digit shown."""

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
    ("README.md", "lookahead16-w1-first.json", "default",
     lambda a: f"the shipped pruner saves {_pct(a['mean_compute_saved'])} of the compute"),
    ("README.md", "lookahead16-w1-first.json", "default",
     lambda a: f"a mean loss of {_pts(a['mean_regret'])} points of the best dev metric ({_pts(a['worst_regret'])} at worst)"),
    ("README.md", "lookahead16-w1-first.json", "median",
     lambda a: f"Optuna's median pruner saves {_pct(a['mean_compute_saved'])} at\n{_pts(a['mean_regret'])} "
               f"({_pts(a['worst_regret'])} at worst)"),
    ("README.md", "lookahead16-w1.json", "lookahead",
     lambda a: f"it saves {_pct(a['mean_compute_saved'])} at\na mean regret of {_pts(a['mean_regret'])} and a worst of "
               f"{_pts(a['worst_regret'])}"),
    ("docs/lookahead.md", "lookahead-study16-w1.json", "lookahead_study",
     lambda a: f"**{_pct(a['mean_compute_saved'])} saved, mean regret {_pts(a['mean_regret'])}, worst "
               f"{_pts(a['worst_regret'])}**"),
    ("docs/lookahead.md", "lookahead16-w4.json", "lookahead",
     lambda a: f"{_pct(a['mean_compute_saved'])} / {_pts(a['mean_regret'])} / {_pts(a['worst_regret'])}"),
    ("docs/lookahead.md", "lookahead-study16-w8.json", "lookahead_study",
     lambda a: f"{_pct(a['mean_compute_saved'])} / {_pts(a['mean_regret'])} / {_pts(a['worst_regret'])}"),
]


@pytest.mark.parametrize("doc,name,policy,quote", CASES, ids=[f"{c[0]}:{c[1]}:{c[2]}" for c in CASES])
def test_a_quoted_figure_is_the_committed_jsons(doc, name, policy, quote):
    text = re.sub(r"[ \t]+\n", "\n", (ROOT / doc).read_text())
    expected = quote(_agg(name, policy))
    flat = lambda s: re.sub(r"\s+", " ", s)  # noqa: E731  (line breaks in the prose are not figures)
    assert flat(expected) in flat(text), f"{doc} does not quote {expected!r} from {name}"
