"""Sweep format: a tiny sweep logs, resumes without loss or duplicates, and bad logs fail clearly."""

import csv
import json
import math
import shutil

import pytest

from earlyexit.cli import main
from earlyexit.study import load_spec
from earlyexit.study import plan, run_sweep
from earlyexit.sweeps import SweepFormatError, import_seed_results, load, load_dev_records
from conftest import tiny_spec

SPEC = tiny_spec("tiny", grid={"learning_rate": [1e-3, 1e30], "seed": [0, 1]}, max_steps=8, steps=[0, 4],
                 probes=("loss", "gradient_norm", "critical_sharpness", "fisher_trace"),
                 data={"group_by_length": True})


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep")
    (root / "tiny.toml").write_text(SPEC)
    spec = load_spec(root / "tiny.toml")
    assert run_sweep(spec, root / "tiny", log=lambda m: None) == 4
    return spec, root / "tiny"


def test_plan_puts_seeds_outermost():
    spec_path = "studies/sst2-grid80.toml"
    runs = plan(load_spec(spec_path))
    assert len(runs) == 80
    assert [r.params["seed"] for r in runs[:16]] == [0] * 16
    assert len({r.config_id for r in runs}) == 16
    assert len({r.run_id for r in runs}) == 80


def test_logged_sweep_validates(logged):
    _, folder = logged
    summary = load(folder, require_complete=True).summary()
    assert summary["runs"] == 4 and summary["configs"] == 2 and summary["seeds"] == [0, 1]
    assert summary["checkpoints"] == [0, 4] and summary["diverged"] == 2
    assert summary["probes"] == ["loss", "gradient_norm", "critical_sharpness", "fisher_trace"]
    # The opt-in Fisher trace is logged; NaN (not an error) where a run has diverged.
    cps = load(folder).checkpoints
    finite = cps[cps["run_id"].isin(load(folder).runs.query("status == 'completed'")["run_id"])]["fisher_trace"]
    assert (finite > 0).all() and not cps["probe_error"].fillna("").astype(str).str.len().any()
    assert 0 <= summary["median_final"] <= summary["best_final"] <= 1


def test_validate_says_what_a_checkpoint_of_the_promised_probes_costs_or_that_none_was_measured(logged, tmp_path,
                                                                                                 capsys):
    from earlyexit.sweeps import ProbeCosts
    from earlyexit.sweeps._costs import write_probe_costs

    folder = tmp_path / "copy"
    shutil.copytree(logged[1], folder)
    assert load(folder).summary()["probe_costs"] is None
    assert main(["sweeps", "validate", str(folder)]) == 0
    assert "probe costs: none measured" in capsys.readouterr().out
    costs = ProbeCosts({"forward": 0.5, "gradient": 1.0, "critical": 2.0, "fisher": 4.0},
                       {"machine": "x86_64", "torch": "2.13.0+cpu"})
    write_probe_costs(folder, costs)
    summary = load(folder).summary()["probe_costs"]
    assert summary == {"steps": 7.0, "machine": "x86_64", "device": None, "torch": "2.13.0+cpu"}
    assert main(["sweeps", "validate", str(folder)]) == 0
    assert "probe costs: 7.0 training steps a checkpoint" in capsys.readouterr().out
    write_probe_costs(folder, ProbeCosts({"forward": 0.5, "gradient": 1.0, "critical": 2.0}))  # no Fisher price
    assert math.isnan(load(folder).summary()["probe_costs"]["steps"])
    assert main(["sweeps", "validate", str(folder)]) == 0
    assert "prices only some promised probes" in capsys.readouterr().out


def test_validate_command_json(logged, capsys):
    _, folder = logged
    assert main(["sweeps", "validate", str(folder), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    for key in ("runs", "configs", "seeds", "checkpoints", "probes", "median_final", "best_final"):
        assert key in out


def test_resume_drops_a_cut_off_run_and_reruns_it(logged, tmp_path):
    spec, folder = logged
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    # Simulate a kill mid-run: r003's checkpoint rows are there, its run row is not.
    lines = (copy / "runs.csv").read_text().splitlines()
    (copy / "runs.csv").write_text("\n".join(l for l in lines if not l.startswith("r003,")) + "\n")
    with pytest.raises(SweepFormatError, match="has no row in runs.csv"):
        load(copy)
    assert run_sweep(spec, copy, log=lambda m: None) == 1
    again = load(copy, require_complete=True)
    assert len(again.runs) == 4
    assert not again.checkpoints.duplicated(["run_id", "step"]).any()
    records = load_dev_records(again)  # the cut-off run's prediction rows went with its checkpoint rows
    assert len(records.predictions) == len(again.checkpoints.dropna(subset=["dev_accuracy"]))
    manifest = (copy / "manifest.json").read_text()
    assert '"runs_logged_before": 3' in manifest  # the resuming invocation is recorded
    assert run_sweep(spec, copy, log=lambda m: None) == 0  # nothing left
    assert (copy / "manifest.json").read_text() == manifest  # ... and one that trains nothing is not


def test_a_run_killed_mid_way_goes_on_from_its_snapshot_to_the_same_rows(logged, tmp_path):
    spec, folder = logged
    copy = tmp_path / "copy"

    def die_in_r002(message):  # r002 (seed 1) trains to the end; r001's learning rate of 1e30 diverges at once
        if "r002: step 6/8" in message:  # its state was kept after step 4's checkpoint
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_sweep(spec, copy, log=die_in_r002)
    assert (copy / ".partial" / "r002.pt").exists() and not (copy / ".claims" / "r002").exists()
    said = []
    assert run_sweep(spec, copy, log=said.append, limit=1) == 1
    assert any("] r002 " in m and "(went on from step 4;" in m for m in said)  # its closing line says so
    assert not list((copy / ".partial").iterdir())  # a logged run's snapshot is removed
    assert json.loads((copy / "manifest.json").read_text())["resumed_runs"] == [{"run_id": "r002", "from_step": 4}]
    assert sorted(load(copy).runs["run_id"]) == ["r000", "r001", "r002"]  # the manifest's new record reads

    def rows(path, name):
        clocks = {"wall_seconds", "compute_steps", "probe_seconds", "train_step_seconds"}
        with open(path / name) as f:
            return [{k: v for k, v in r.items() if k not in clocks} for r in csv.DictReader(f) if r["run_id"] == "r002"]

    for name in ("runs.csv", "checkpoints.csv", "dev_predictions.csv"):
        assert rows(copy, name) == rows(folder, name), name


def test_a_prediction_record_of_the_wrong_length_names_its_line(logged, tmp_path):
    _, folder = logged
    copy = tmp_path / "short"
    shutil.copytree(folder, copy)
    lines = (copy / "dev_predictions.csv").read_text().splitlines()
    run_id, step, predictions = lines[2].split(",")
    lines[2] = f"{run_id},{step},{predictions[:-1]}"
    (copy / "dev_predictions.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(SweepFormatError, match=r"dev_predictions.csv: line 3, field predictions: \d+ classes for"):
        load_dev_records(load(copy))


def _mutate(folder, tmp_path, name, edit):
    copy = tmp_path / "bad"
    shutil.copytree(folder, copy)
    path = copy / name
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    edit(rows)
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows(rows)
    return copy


@pytest.mark.parametrize("name, edit, match", [
    ("runs.csv", lambda r: (lambda i: [row.pop(i) for row in r])(r[0].index("final_accuracy")),
     r"missing column\(s\) \['final_accuracy'\]"),
    ("runs.csv", lambda r: r.append(list(r[1])), "line 6, field run_id: duplicate run"),
    ("runs.csv", lambda r: r[1].__setitem__(r[0].index("seed"), "zero"), "line 2, field seed: 'zero' is not an integer"),
    ("runs.csv", lambda r: r[1].__setitem__(r[0].index("status"), "crashed"), "field status"),
    ("checkpoints.csv", lambda r: r[1].__setitem__(r[0].index("loss"), "nan"), "field loss: NaN without a probe_error"),
    ("checkpoints.csv", lambda r: r[1].__setitem__(r[0].index("dev_accuracy"), "1.5"), "field dev_accuracy: 1.5"),
    ("checkpoints.csv", lambda r: r[1].__setitem__(r[0].index("step"), "7"), "field step: 7 is not a probe step"),
    ("checkpoints.csv", lambda r: r.append(list(r[1])), "duplicate row"),
    ("checkpoints.csv", lambda r: r.__delitem__(2), "has no checkpoint rows for steps"),
])
def test_bad_logs_name_file_line_and_field(logged, tmp_path, name, edit, match):
    _, folder = logged
    bad = _mutate(folder, tmp_path, name, edit)
    with pytest.raises(SweepFormatError, match=match) as info:
        load(bad)
    assert name in str(info.value)


def test_truncated_file_and_wrong_version(logged, tmp_path, capsys):
    _, folder = logged
    copy = tmp_path / "t"
    shutil.copytree(folder, copy)
    (copy / "runs.csv").write_text("")
    with pytest.raises(SweepFormatError, match="runs.csv: not a readable CSV"):
        load(copy)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["format_version"] = 99
    shutil.copy(folder / "runs.csv", copy / "runs.csv")
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(SweepFormatError, match="format_version 99"):
        load(copy)
    assert main(["sweeps", "validate", str(copy)]) == 2
    assert "format_version 99" in capsys.readouterr().err


def _strip_probes(folder, error="RuntimeError: Expected all tensors to be on the same device"):
    """The sweep as a GPU run with the device bug logged it: every probe empty, each row saying why."""
    import pandas as pd

    cps = pd.read_csv(folder / "checkpoints.csv", keep_default_na=False, dtype=str)
    probes = json.loads((folder / "manifest.json").read_text())["probe_names"]
    for p in probes:
        cps[p] = ""
    cps["probe_error"] = error
    cps.to_csv(folder / "checkpoints.csv", index=False)
    return probes


def test_validate_fails_a_sweep_whose_promised_probes_were_not_logged(logged, tmp_path, capsys):
    _, folder = logged
    copy = tmp_path / "gpu"
    shutil.copytree(folder, copy)
    probes = _strip_probes(copy)
    assert load(copy).probe_coverage()["loss"]["logged"] == 0  # still loads, for the replay
    assert main(["sweeps", "validate", str(copy)]) == 2
    err = capsys.readouterr().err
    rows = len(load(copy).checkpoints)
    assert f"{len(probes)} of {len(probes)} promised probes" in err and f"loss on 0 of {rows} rows" in err
    assert "first probe_error: RuntimeError: Expected all tensors" in err
    with pytest.raises(SweepFormatError, match="not complete"):
        load(copy, require_complete=True)
    assert main(["sweeps", "validate", str(copy), "--allow-missing-probes"]) == 0
    # The logged one is complete, and says so per probe.
    assert main(["sweeps", "validate", str(folder), "--json"]) == 0
    coverage = json.loads(capsys.readouterr().out.splitlines()[-1])["probe_coverage"]
    assert set(coverage) == set(probes) and all(share >= 0.95 for share in coverage.values())


def test_catalogue_marks_a_sweep_with_missing_probes(logged, tmp_path):
    from earlyexit.sweeps import catalogue, format_catalogue

    _, folder = logged
    copy = tmp_path / "gpu"
    shutil.copytree(folder, copy)
    _strip_probes(copy)
    rows = {r["path"]: r for r in catalogue([str(folder), str(copy)])}
    assert rows[str(copy)]["probe_coverage"] == 0 and rows[str(folder)]["probe_coverage"] >= 0.95
    table = format_catalogue(list(rows.values()))
    assert "4 at 0% MISSING" in table and "1 of 2 sweeps miss promised probes" in table


def test_import_seed_results(tmp_path):
    entries = [{"lr": lr, "warmup_ratio": 0.0, "weight_decay": 0.01, "seed": s, "val_accuracy": 0.8 + lr * 100,
                "gradient_norm": 1.0 + s, "step400_hutchinson_trace": 10.0 * s, "top_eigenvalue_step400": 3.0}
               for lr in (1e-5, 1e-4) for s in (0, 1)]
    src = tmp_path / "results.json"
    src.write_text(json.dumps(entries))
    assert import_seed_results(src, tmp_path / "seed") == 4
    # The seed code measured each probe at one step only: all runs are there, but not every probe row.
    with pytest.raises(SweepFormatError, match=r"gradient_norm on 4 of 8 rows.*first probe_error: not logged by"):
        load(tmp_path / "seed", require_complete=True)
    sweep = load(tmp_path / "seed")
    s = sweep.summary()
    assert s["runs"] == 4 and s["configs"] == 2 and s["checkpoints"] == [0, 400]
    assert s["probes"] == ["gradient_norm", "hessian_top_eigenvalue", "hessian_trace"]
    assert s["best_final"] == pytest.approx(0.81)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"lr": 1e-5, "seed": 0}]))
    with pytest.raises(ValueError, match=r"entry 0: missing field\(s\)"):
        import_seed_results(bad, tmp_path / "x")


def test_report_finds_a_planted_correlation(tmp_path, capsys):
    # Final accuracy rises with the step-400 loss planted below: r must be +1 there, and ~0 for noise.
    import random

    rnd = random.Random(0)
    entries = []
    for k in range(12):
        acc = 0.80 + 0.005 * k
        entries.append({"lr": 1e-5 * (k + 1), "warmup_ratio": 0.0, "weight_decay": 0.0, "seed": 0,
                        "val_accuracy": acc, "loss_step400": 2 * acc + 1, "gradient_norm_step400": rnd.random(),
                        "loss_step0": rnd.random(), "gradient_norm_step0": rnd.random()})
    src = tmp_path / "r.json"
    src.write_text(json.dumps(entries))
    import_seed_results(src, tmp_path / "planted")
    assert main(["sweeps", "report", str(tmp_path / "planted")]) == 0
    text = (tmp_path / "planted" / "REPORT.md").read_text()
    assert "| loss | " in text and "+1.00*" in text
    assert (tmp_path / "planted" / "correlations.png").stat().st_size > 1000
    from earlyexit.sweeps._report import correlations

    rows = {(r["probe"], r["step"]): r for r in correlations(load(tmp_path / "planted"))}
    assert rows[("loss", 400)]["r"] == pytest.approx(1.0) and rows[("loss", 400)]["n"] == 12
    assert abs(rows[("gradient_norm", 0)]["r"]) < 0.9


def test_two_workers_share_a_sweep_without_training_a_run_twice(tmp_path):
    import threading

    (tmp_path / "tiny.toml").write_text(SPEC)
    spec = load_spec(tmp_path / "tiny.toml")
    folder = tmp_path / "tiny"
    trained, messages = [], []
    workers = [threading.Thread(target=lambda: trained.append(run_sweep(spec, folder, log=messages.append)))
               for _ in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert sum(trained) == 4
    logged = load(folder, require_complete=True)
    assert sorted(logged.runs["run_id"]) == ["r000", "r001", "r002", "r003"]
    assert not logged.checkpoints.duplicated(["run_id", "step"]).any()
    assert not list((folder / ".claims").iterdir())  # every claim released


def test_a_live_claim_is_skipped_and_a_dead_one_taken_over(tmp_path):
    import socket
    import subprocess
    import sys

    from earlyexit.study._claims import CLAIMS

    (tmp_path / "tiny.toml").write_text(SPEC)
    spec = load_spec(tmp_path / "tiny.toml")
    folder = tmp_path / "tiny"
    (folder / CLAIMS).mkdir(parents=True)
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    try:
        (folder / CLAIMS / "r000").write_text(f"{socket.gethostname()} {live.pid}\n")
        (folder / CLAIMS / "r001").write_text(f"{socket.gethostname()} {dead.pid}\n")
        assert run_sweep(spec, folder, limit=1, log=lambda m: None) == 1
        assert set(load(folder).runs["run_id"]) == {"r001"}  # r000 is held by a live process
        assert (folder / CLAIMS / "r000").exists()
    finally:
        live.kill()
        live.wait()
    assert run_sweep(spec, folder, limit=1, log=lambda m: None) == 1  # its holder is gone now
    assert set(load(folder).runs["run_id"]) == {"r000", "r001"}


def test_report_explains_plateaus_and_inert_parameters(tmp_path):
    # Weight decay changes nothing; runs leave the chance plateau (0.51) by step 400 only at high lr.
    from earlyexit.sweeps._format import append_run, write_manifest
    from earlyexit.sweeps._report import inert_parameters, stuck_at_chance

    folder = tmp_path / "flat"
    write_manifest(folder, {"name": "flat", "task": "sst2", "model": "m", "protocol": {},
                            "params": ["learning_rate", "seed", "weight_decay"], "runs": 12, "probe_steps": [0, 400],
                            "probe_names": ["loss"]}, version=1)
    n = 0
    for k in range(6):
        for wd in (0.0, 0.01):
            acc = 0.80 + 0.01 * k
            rid = f"r{n:03d}"
            cps = [{"run_id": rid, "step": step, "loss": 0.7 if step == 0 else 1 - acc,
                    "dev_accuracy": 0.49 if step == 0 else (0.51 if k < 4 else 0.75), "dev_loss": 0.7,
                    "train_loss": 0.7, "wall_seconds": 1.0, "compute_steps": float(step), "probe_seconds": 0.0,
                    "probe_error": ""} for step in (0, 400)]
            append_run(folder, {"run_id": rid, "config_id": f"c{n:02d}", "seed": 0, "learning_rate": 1e-5 * (k + 1),
                                "weight_decay": wd, "status": "completed", "final_accuracy": acc, "final_loss": 0.4,
                                "steps": 1000, "compute_steps": 1000.0, "train_step_seconds": 0.1, "wall_seconds": 1.0},
                       cps, param_names=["learning_rate", "seed", "weight_decay"], probe_names=["loss"], version=1)
            n += 1
    sweep = load(folder)
    assert stuck_at_chance(sweep) == {0: (12, 12), 400: (8, 12)}
    inert = inert_parameters(sweep)
    assert inert["weight_decay"] == (6, 6) and inert["learning_rate"][0] == 0
    assert main(["sweeps", "report", str(folder)]) == 0
    text = (folder / "REPORT.md").read_text()
    assert "weight_decay (6 of 6 pairs" in text and "step 400: 8 of 12" in text
    assert "vary only between seeds" in text
    assert "A smaller encoder ends lower" in text and "across tasks" not in text

    # The same log on another task: the report says the seed comparison crosses tasks, and does not
    # blame the accuracy level on the model.
    manifest = json.loads((folder / "manifest.json").read_text())
    (folder / "manifest.json").write_text(json.dumps({**manifest, "task": "cola"}))
    assert main(["sweeps", "report", str(folder)]) == 0
    text = (folder / "REPORT.md").read_text()
    assert "Task: cola, not the seed's SST-2" in text and "A smaller encoder ends lower" not in text


def test_seed_ceiling_matches_a_hand_computed_case(tmp_path):
    # Three configs, three seeds. Seeds 0 and 1 rank a < b < c; seed 2 swaps b and c. Held out, seed 2 is
    # predicted a < b < c (mean of seeds 0, 1), so its Spearman is 0.5 and keeping c costs it 1 point (0.01).
    from earlyexit.sweeps import ceiling_summary, seed_ceiling

    finals = {0: [0.80, 0.82, 0.84], 1: [0.80, 0.82, 0.84], 2: [0.80, 0.85, 0.84]}
    entries = [{"lr": lr, "warmup_ratio": 0.0, "weight_decay": 0.0, "seed": s, "val_accuracy": acc,
                "loss_step0": 1.0}
               for s, accs in finals.items() for lr, acc in zip([1e-5, 2e-5, 3e-5], accs)]
    src = tmp_path / "r.json"
    src.write_text(json.dumps(entries))
    import_seed_results(src, tmp_path / "noisy")
    rows = {r["seed"]: r for r in seed_ceiling(load(tmp_path / "noisy"))}
    assert rows[2]["spearman"] == pytest.approx(0.5) and rows[2]["regret"] == pytest.approx(0.01)
    assert rows[2]["best_config"] != rows[2]["picked_config"]
    # Seed 0 held out: others' means are 0.80, 0.835, 0.84 -> same order as seed 0's finals, no regret.
    assert rows[0]["spearman"] == pytest.approx(1.0) and rows[0]["regret"] == pytest.approx(0.0)
    assert ceiling_summary(list(rows.values()))["regret"] == pytest.approx(0.01 / 3)
    assert main(["sweeps", "report", str(tmp_path / "noisy")]) == 0
    assert "noise ceiling" in (tmp_path / "noisy" / "REPORT.md").read_text()
    # One seed: nothing to hold out.
    src.write_text(json.dumps([e for e in entries if e["seed"] == 0]))
    import_seed_results(src, tmp_path / "one")
    assert seed_ceiling(load(tmp_path / "one")) == []


def test_report_does_not_say_lower_when_a_level_is_higher():
    from earlyexit.sweeps._report import _level_sentence

    assert "ends lower" in _level_sentence({"best_final": 0.851, "median_final": 0.813})
    higher_best = _level_sentence({"best_final": 0.868, "median_final": 0.824})  # sst2-wide's figures
    assert "ends lower" not in higher_best and "best 0.868 against the seed's 0.858" in higher_best


def test_a_full_disk_stops_with_one_line_keeps_the_log_valid_and_resumes(logged, tmp_path, monkeypatch, capsys):
    import errno

    from earlyexit.sweeps import _format

    spec, folder = logged
    copy = tmp_path / "full"
    shutil.copytree(folder, copy)
    lines = (copy / "runs.csv").read_text().splitlines()
    (copy / "runs.csv").write_text("\n".join(l for l in lines if not l.startswith("r003,")) + "\n")
    # r003's checkpoint rows are dropped on resume; then the disk fills while its run row is written.
    real = _format._append_csv

    def full(path, fields, rows):
        if path.name == "runs.csv":
            with open(path, "a") as f:
                f.write("r003,c01,1,")  # a half-written row, as a full disk leaves it
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, fields, rows)

    monkeypatch.setattr(_format, "_append_csv", full)
    (tmp_path / "tiny.toml").write_text(SPEC)
    assert main(["sweep", str(tmp_path / "tiny.toml"), "--out", str(copy)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "No space left on device" in err[0] and "run the same command again" in err[0]
    assert len(load(copy).runs) == 3  # what was logged before stays valid: no half row, no orphan checkpoints
    monkeypatch.setattr(_format, "_append_csv", real)
    assert main(["sweep", str(tmp_path / "tiny.toml"), "--out", str(copy)]) == 0
    assert len(load(copy, require_complete=True).runs) == 4
