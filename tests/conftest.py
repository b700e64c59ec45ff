import json

import pytest
import torch


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(2)
    yield


def tiny_spec(name: str, *, grid: dict, max_steps: int, steps: list, probes=("loss", "gradient_norm"),
              study: dict | None = None, train: dict | None = None, data: dict | None = None,
              pruner: dict | None = None) -> str:
    """A study spec on the bundled tiny BERT and SST-2 subset, small enough for a test: sequences of 32
    tokens, batches of 16, a 2 x 4-example probe set, one dev pass of 512. The tables given add to (or
    override) those settings; the pruner defaults to none (a geometric one decides at the second probe step)."""
    pruner = {"kind": "none", **(pruner or {})}
    if pruner["kind"] == "geometric":
        pruner.setdefault("decision_steps", [steps[1]])
    tables = {
        "study": {"name": name, "sampler": "grid", **(study or {})},
        "data": {"max_length": 32, **(data or {})},
        "train": {"batch_size": 16, "max_steps": max_steps, "eval_batch_size": 512, **(train or {})},
        "probes": {"steps": steps, "names": list(probes), "batches": 2, "batch_size": 4},
        "search.grid": grid,
        "pruner": pruner,
    }
    return "\n".join(f"[{table}]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in values.items())
                     for table, values in tables.items())


def pytest_terminal_summary(terminalreporter):
    """The number of generated bad-input cases the property tests ran (they must be at least 1,000 a run)."""
    import sys

    props = sys.modules.get("test_properties")
    if props is not None and props.CASES["tried"]:
        terminalreporter.write_line(f"property tests: {props.CASES['tried']} generated cases tried")
