"""What the probes cost in training steps on a device, for a model shape built from a config (nothing downloaded).

For each shape, writes a config-only model folder (random weights, the bundled tiny BERT's WordPiece vocabulary)
and a sweep spec that trains it on the bundled SST-2 sample with the sweeps' settings (batch 32, every probe on
4 batches of 8, probes at steps 0-100), then measures each probe part's cost there as ``earlyexit bench probes
--spec SPEC --write`` does (:func:`earlyexit.study.measure_probe_costs`) and writes
``OUT/<shape>/probe_costs.json``, whose provenance names the device. Shapes:

- ``minilm-2l``: the sweeps' model, MiniLM-L6-H384 cut to 2 layers (hidden 384, 12 heads, 1536 intermediate);
- ``bert-base``: a 12-layer BERT-base-sized encoder (hidden 768, 12 heads, 3072 intermediate).

Costs depend on the shape, the batch and the sequence lengths, not on the weights, except through the Lanczos
iterations the top eigenvalue takes (reported as ``median_counts``).

    python benchmarks/shape_costs.py --device cuda --out $OUT/costs
    python benchmarks/shape_costs.py --device cpu --shapes minilm-2l --until 25   # the script itself, on a CPU
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

SHAPES = {
    "minilm-2l": {"hidden_size": 384, "num_hidden_layers": 2, "num_attention_heads": 12, "intermediate_size": 1536},
    "bert-base": {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072},
}

SPEC = """[study]
name = "{name}"
n_trials = 1
seed = 0
sampler = "random"

[model]
name = "{model}"
prune_vocabulary = true

[data]
task = "sst2"
path = "earlyexit:sst2-2k"
max_length = 64
group_by_length = true

[train]
batch_size = 32
max_steps = 300
grad_clip = 1.0
schedule = "linear"
warmup_ratio = 0.1

[probes]
steps = [0, 10, 25, 50, 100]
names = ["loss", "gradient_norm", "gradient_variance", "sam_sharpness", "hessian_top_eigenvalue",
         "hessian_trace", "critical_sharpness", "fisher_trace"]
batches = 4
batch_size = 8
seed = 0

[search]
learning_rate = {{ type = "categorical", choices = [5e-5] }}

[pruner]
kind = "none"
"""


def write_shape(shape: str, folder: Path) -> Path:
    """A config-only model folder of ``shape`` and its spec; returns the spec's path."""
    from earlyexit.models import resolve

    tiny = Path(resolve("earlyexit:tiny-bert"))
    model = folder / "model"
    model.mkdir(parents=True, exist_ok=True)
    for f in ("vocab.txt", "tokenizer_config.json"):
        shutil.copy(tiny / f, model / f)
    config = json.loads((tiny / "config.json").read_text())
    config.update(SHAPES[shape], max_position_embeddings=512)
    (model / "config.json").write_text(json.dumps(config, indent=2))
    spec = folder / f"{shape}.toml"
    spec.write_text(SPEC.format(name=shape, model=model.resolve()))
    return spec


def main() -> int:
    from earlyexit.study import measure_probe_costs
    from earlyexit.sweeps import format_costs, write_probe_costs

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    ap.add_argument("--until", type=int, default=100, help="train to this step, measuring at 0, 10, 25, 50, 100 "
                                                           "up to it (the first, cold, is not counted)")
    ap.add_argument("--out", default="runs/shape-costs", help="a folder per shape, each with probe_costs.json")
    args = ap.parse_args()
    for shape in args.shapes:
        folder = Path(args.out) / shape
        spec = write_shape(shape, folder)
        command = (f"python benchmarks/shape_costs.py --device {args.device} --shapes {shape} --until {args.until}")
        costs = measure_probe_costs(str(spec), until=args.until, command=command, device=args.device)
        print(f"\n{shape} on {costs.provenance.get('device')}:\n{format_costs(costs)}", flush=True)
        print(f"wrote {write_probe_costs(folder, costs)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
