"""The GPU checks' own scripts, on what a CPU can check of them: the shapes they price are the ones they name."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from earlyexit.models import load_model
from earlyexit.study import load_spec, plan

ROOT = Path(__file__).resolve().parents[1]


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_shape_costs_prices_a_config_built_model_of_each_named_shape(tmp_path):
    shapes = _script("shape_costs")
    for shape, want in shapes.SHAPES.items():
        spec = load_spec(shapes.write_shape(shape, tmp_path / shape))
        config = spec.config_for(plan(spec)[0].params)
        written = json.loads((Path(config.model) / "config.json").read_text())
        assert {k: written[k] for k in want} == want
        assert not any((Path(config.model) / f).exists() for f in ("model.safetensors", "pytorch_model.bin"))
        assert set(config.probe_names) >= {"hessian_top_eigenvalue", "hessian_trace", "fisher_trace"}
    model = load_model(str(tmp_path / "minilm-2l" / "model"), 2, seed=0)  # random weights, nothing downloaded
    assert model.config.hidden_size == 384 and len(model.bert.encoder.layer) == 2
