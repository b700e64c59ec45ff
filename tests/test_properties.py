"""Property-based tests: the spec and sweep loaders accept or reject any input with their own error, never crash."""

import shutil
import string
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from earlyexit.study import SpecError, load_spec, parse_spec
from earlyexit.sweeps import SweepFormatError, load

from synthetic_sweep import write_synthetic_sweep

CASES = {"tried": 0}
"""Generated cases run by this test run (conftest prints the count at the end)."""


def _count():
    CASES["tried"] += 1

scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True),
                    st.text(max_size=12), st.lists(st.integers(-5, 500), max_size=4))
keys = st.sampled_from(["name", "storage", "n_trials", "seed", "sampler", "learning_rate", "max_steps",
                        "batch_size", "steps", "names", "kind", "keep_top", "decision_steps", "task", "path",
                        "warmup_ratio", "type", "low", "high", "log", "choices", "grid", "bogus"])
tables = st.dictionaries(keys, st.one_of(scalars, st.dictionaries(keys, scalars, max_size=4)), max_size=6)
specs = st.dictionaries(st.sampled_from(["study", "model", "data", "train", "probes", "search", "pruner", "x"]),
                        tables, max_size=6)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs)
def test_parse_spec_accepts_or_raises_spec_error(raw):
    _count()
    try:
        parse_spec(raw, "prop.toml")
    except SpecError as exc:
        assert str(exc).startswith("prop.toml: ")


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=300))
def test_load_spec_on_arbitrary_bytes(tmp_path_factory, data):
    _count()
    path = tmp_path_factory.mktemp("spec") / "s.toml"
    path.write_bytes(data)
    try:
        load_spec(path)
    except SpecError as exc:
        assert str(path) in str(exc)


@pytest.fixture(scope="module")
def good_sweep(tmp_path_factory):
    return write_synthetic_sweep(tmp_path_factory.mktemp("good") / "syn", configs=4, seeds=(0, 1))


cells = st.one_of(st.sampled_from(["", "nan", "inf", "-inf", "abc", "1e400", "-1", "0", "2", "r000", "r999",
                                   "completed", "diverged", "1.5"]), st.text(string.printable, max_size=6))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(which=st.sampled_from(["runs.csv", "checkpoints.csv", "manifest.json"]),
       edits=st.lists(st.tuples(st.integers(0, 40), st.integers(0, 20), cells), min_size=1, max_size=4),
       truncate=st.one_of(st.none(), st.integers(0, 2000)))
def test_sweep_loader_rejects_corruption_with_its_own_error(good_sweep, tmp_path_factory, which, edits, truncate):
    _count()
    folder = tmp_path_factory.mktemp("bad") / "syn"
    shutil.copytree(good_sweep, folder)
    path = folder / which
    text = path.read_text()
    if which.endswith(".csv"):
        lines = [line.split(",") for line in text.splitlines()]
        for row, col, value in edits:
            r = lines[row % len(lines)]
            r[col % len(r)] = value.replace(",", ";").replace("\n", " ")
        text = "\n".join(",".join(r) for r in lines) + "\n"
    if truncate is not None:
        text = text[:truncate]
    path.write_text(text)
    try:
        load(folder)
    except SweepFormatError as exc:
        assert str(folder) in str(exc)


# -- what a user's own objective reports (earlyexit.report), and the files a user hands over -------------------

_ANY_VALUE = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-5, 5), st.text(max_size=5),
                       st.none(), st.lists(st.floats(0, 1), max_size=3), st.booleans())
_PREDS = st.one_of(st.none(), st.lists(st.integers(-2, 40), max_size=12), st.text(max_size=12),
                   st.lists(st.lists(st.floats(allow_nan=True), min_size=2, max_size=2), max_size=12))


@settings(max_examples=400, deadline=None)
@example(reports=[(0, 0.0, None, None, float("nan"))])  # found by a CI run: max_steps=nan
@example(reports=[(0, 0.0, None, float("inf"), None)])  # warmup_steps=inf
@given(reports=st.lists(st.tuples(st.one_of(st.integers(-3, 200), st.floats(allow_nan=True), st.text(max_size=3)),
                                   _ANY_VALUE, _PREDS, _ANY_VALUE, _ANY_VALUE), min_size=1, max_size=6))
def test_any_report_from_a_users_objective_is_recorded_or_skipped_never_raised(reports):
    _count()
    import warnings

    import numpy as np
    import optuna

    import earlyexit
    from earlyexit.pruning import ResolutionPruner

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(direction="maximize", pruner=ResolutionPruner(max_resource=100))
    labels = np.arange(8) % 3

    def objective(trial):
        for step, value, preds, warmup, budget in reports:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                earlyexit.report(trial, step, value, predictions=preds, labels=labels, warmup_steps=warmup,
                                 max_steps=budget)
                trial.should_prune()
        return 0.5

    study.optimize(objective, n_trials=2)  # an exception would fail a trial; none may
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(blob=st.binary(max_size=400), name=st.sampled_from(["p.json", "p.joblib", "s.joblib", "s.json"]))
def test_scorer_bound_and_predictor_files_load_or_fail_with_their_own_error(tmp_path_factory, blob, name):
    _count()
    from earlyexit.scoring import ScorerFileError, load_bound, load_predictor, load_scorer

    path = tmp_path_factory.mktemp("files") / name
    path.write_bytes(blob)
    for load_file in (load_scorer, load_bound, load_predictor):
        try:
            load_file(path)
        except ScorerFileError:
            pass


# -- data files: CSV, TSV, JSONL, Parquet --------------------------------------------------------------------

words = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)
labels = st.one_of(st.integers(-2, 3), st.sampled_from(["pos", "neg", "", "nan", "1.5"]), st.none(), st.floats())
rows = st.lists(st.fixed_dictionaries({"sentence": words, "label": labels}), max_size=12)
damage = st.sampled_from(["none", "empty", "bytes", "latin-1", "long row", "dev-only label", "no label column"])


def _write(path, frame_rows, how, junk: bytes):
    """One data file in ``path``'s format, damaged as ``how`` says."""
    import pandas as pd

    if how == "empty":
        path.write_bytes(b"")
        return
    if how == "bytes":
        path.write_bytes(junk)
        return
    frame = pd.DataFrame(frame_rows, columns=["sentence", "label"])
    if how == "long row":
        frame.loc[len(frame)] = {"sentence": "x" * 100_000, "label": 1}
    if how == "no label column":
        frame = frame.drop(columns=["label"])
    ext = path.suffix
    if ext == ".parquet":
        frame = frame.astype({c: str for c in frame.columns})  # Parquet needs one type a column
        frame.to_parquet(path)
    elif ext == ".jsonl":
        frame.to_json(path, orient="records", lines=True, force_ascii=False)
    else:
        frame.to_csv(path, sep="\t" if ext == ".tsv" else ",", index=False,
                     encoding="latin-1" if how == "latin-1" else "utf-8", errors="replace")


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ext=st.sampled_from([".csv", ".tsv", ".jsonl", ".parquet"]), train=rows, dev=rows, how=damage,
       junk=st.binary(max_size=200))
def test_data_files_load_or_fail_with_their_own_error(tmp_path_factory, ext, train, dev, how, junk):
    """Any train/dev pair of any format, damaged in any of these ways, loads or raises DataError naming a file or
    a data setting: empty files, random bytes, Latin-1 text, a 10^5-character row, a label only in dev."""
    pytest.importorskip("pyarrow") if ext == ".parquet" else None
    from earlyexit.data import DataSource, load_task
    from earlyexit.data._tasks import DataError

    _count()
    folder = tmp_path_factory.mktemp("data")
    paths = folder / f"train{ext}", folder / f"dev{ext}"
    if how == "dev-only label":
        dev = [*dev, {"sentence": "only here", "label": 7}]
    _write(paths[0], train, how, junk)
    _write(paths[1], dev, "none" if how in ("long row", "dev-only label") else how, junk)
    try:
        task = load_task(DataSource(task="own", train=str(paths[0]), dev=str(paths[1])))
    except DataError as exc:
        text = str(exc)
        assert ext in text or "data." in text, text
        return
    assert task.num_labels >= 2 and task.train and task.dev
    assert all(0 <= y < task.num_labels for _, _, y in task.train + task.dev)


# -- storage URLs ----------------------------------------------------------------------------------------------

urls = st.one_of(st.text(max_size=40),
                 st.builds(lambda scheme, rest: f"{scheme}{rest}",
                           st.sampled_from(["sqlite:///", "sqlite://", "postgresql://", "mysql://", "journal:",
                                            "journal://", "redis://", "http://", "", "sqlite:///a-file/"]),
                           st.text(string.ascii_letters + string.digits + "/:@._-?=", max_size=30)))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(url=urls)
@example(url="sqlite:///a-file/0")  # a file where the database's folder would go
def test_storage_urls_connect_or_fail_with_one_line(tmp_path_factory, monkeypatch, url):
    """``make_storage`` (what --storage reaches) returns a storage or raises ValueError with a one-line message
    naming the URL; it never waits (patience 0) and never raises anything else."""
    from earlyexit.study import make_storage

    _count()
    monkeypatch.setenv("EARLYEXIT_STORAGE_PATIENCE", "0")
    monkeypatch.chdir(tmp_path_factory.mktemp("urls"))
    Path("a-file").write_text("")  # a file where a URL may want a folder (sqlite:///a-file/x.db)
    try:
        make_storage(url, heartbeat_seconds=5)
    except ValueError as exc:
        assert "\n" not in str(exc).strip() and (url in str(exc) or repr(url) in str(exc) or not url.strip()), str(exc)
