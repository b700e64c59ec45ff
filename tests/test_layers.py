"""The analysis side reads CSV logs without the training stack, and imports only run down the layers."""

import json
import subprocess
import sys
import textwrap

from synthetic_sweep import write_synthetic_sweep

SPEC = """
[study]
name = "synthetic"
sampler = "random"
n_trials = 8
[data]
task = "sst2"
[train]
max_steps = 1000
[probes]
steps = [0, 10, 50, 100, 200]
names = ["loss", "gradient_norm", "hessian_trace"]
[search]
learning_rate = { type = "float", low = 1e-5, high = 1e-4, log = true }
[pruner]
kind = "none"
"""


def test_fit_replay_export_and_the_sweep_commands_do_not_import_torch(tmp_path):
    folder = write_synthetic_sweep(tmp_path / "syn", configs=5, seeds=(0, 1))
    manifest = json.loads((folder / "manifest.json").read_text())
    (folder / "manifest.json").write_text(json.dumps({**manifest, "spec": SPEC}))
    script = textwrap.dedent(f"""
        import sys
        from earlyexit.cli import main
        folder = {str(folder)!r}
        for args in (["sweeps", "validate", folder, "--json"], ["sweeps", "list", folder],
                     ["sweeps", "report", folder],
                     ["fit", folder, "-o", folder + "/s.joblib", "--all-features", "--prefixes", "50"],
                     ["replay", folder, "--prefix", "50", "--orders", "2", "--no-pareto", "--json"],
                     ["export", folder, "--format", "json", "--prefix", "50"]):
            assert main(args) == 0, args
        heavy = sorted(m for m in ("torch", "transformers") if m in sys.modules)
        assert not heavy, heavy
        print("TORCH-FREE")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "TORCH-FREE" in done.stdout


def test_the_vocabulary_and_the_spec_import_nothing_heavy():
    script = ("import sys; import earlyexit.names, earlyexit.metrics, earlyexit.sweeps, earlyexit.scoring, "
              "earlyexit.replay, earlyexit.export, earlyexit.study, earlyexit.data, earlyexit.training; "
              "print(sorted(m for m in ('torch', 'transformers', 'datasets') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
