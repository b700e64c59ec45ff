"""The catalogue of sweeps: folders, folders of sweeps and globs; one row per sweep; the CLI's table and JSON."""

import json

import pytest
from synthetic_sweep import write_synthetic_sweep

from earlyexit.cli import main
from earlyexit.sweeps import SweepFormatError, catalogue, find_sweeps


@pytest.fixture
def base(tmp_path):
    write_synthetic_sweep(tmp_path / "a-two-seeds", configs=4, seeds=(0, 1))
    write_synthetic_sweep(tmp_path / "b-one-seed", configs=5, seeds=(0,), seed=1)
    (tmp_path / "not-a-sweep").mkdir()
    return tmp_path


def test_find_sweeps_takes_folders_of_sweeps_sweep_folders_and_globs(base):
    assert [p.name for p in find_sweeps([str(base)])] == ["a-two-seeds", "b-one-seed"]
    assert [p.name for p in find_sweeps([str(base / "b-one-seed"), str(base / "*")])] == ["b-one-seed", "a-two-seeds"]
    with pytest.raises(SweepFormatError, match="no sweep folder there"):
        find_sweeps([str(base / "not-a-sweep")])


def test_catalogue_rows_hold_the_promised_fields(base):
    rows = {r["name"]: r for r in catalogue([str(base)])}
    a, b = rows["a-two-seeds"], rows["b-one-seed"]
    for key in ("name", "task", "metric", "configs", "seeds", "runs", "planned", "median_final", "best_final",
                "probe_costs"):
        assert key in a
    assert (a["configs"], a["seeds"], a["runs"], a["planned"]) == (4, 2, 8, 8)
    assert a["noise_ceiling"] is not None and b["noise_ceiling"] is None  # a ceiling needs two seeds
    assert a["metric"] == "accuracy" and a["probe_costs"] is False
    assert b["best_final"] >= b["median_final"]


def test_sweeps_list_prints_a_table_and_json(base, capsys):
    assert main(["sweeps", "list", str(base)]) == 0
    out = capsys.readouterr().out
    assert "a-two-seeds" in out and "2 sweeps over 1 tasks (sst2); 13 of 13 planned runs logged" in out
    assert main(["sweeps", "list", str(base / "*"), "--json"]) == 0
    assert [r["name"] for r in json.loads(capsys.readouterr().out)] == ["a-two-seeds", "b-one-seed"]
    assert main(["sweeps", "list", str(base / "nothing-*")]) == 2


def test_fit_takes_a_glob_of_sweeps(base, capsys):
    out = base / "scorer.joblib"
    assert main(["fit", str(base / "*-seed*"), "-o", str(out), "--all-features", "--prefixes", "50", "--json"]) == 0
    assert out.exists()


def test_a_constant_classifier_is_the_largest_dev_class_where_the_manifest_says(tmp_path):
    from earlyexit.sweeps import load
    from earlyexit.sweeps._report import stuck_at_chance

    folder = write_synthetic_sweep(tmp_path / "s", configs=4, seeds=(0,))
    binary = stuck_at_chance(load(folder))
    manifest = json.loads((folder / "manifest.json").read_text())
    (folder / "manifest.json").write_text(json.dumps({**manifest, "num_labels": 6,
                                                      "dev_class_fractions": [0.05, 0.95, 0, 0, 0, 0]}))
    many = stuck_at_chance(load(folder))
    assert all(n == total for n, total in many.values())  # nothing beats 95% here
    assert sum(n for n, _ in binary.values()) < sum(n for n, _ in many.values())


def test_a_sweep_just_started_is_a_row_of_zeros(base):
    from earlyexit.sweeps._format import write_manifest

    write_manifest(base / "c-started", {"name": "c-started", "task": "mpqa", "model": "m", "protocol": {},
                                        "params": [], "runs": 24, "probe_steps": [0], "probe_names": ["loss"]})
    rows = {r["name"]: r for r in catalogue([str(base)])}
    assert rows["c-started"]["runs"] == 0 and rows["c-started"]["planned"] == 24
    assert rows["c-started"]["best_final"] is None
    (base / "c-started" / "manifest.json").unlink()
    (base / "c-started").rmdir()
