"""A user's own classification data: file types, label mapping, clear errors, metrics and epoch budgets."""

import json
import math

import pandas as pd
import pytest

from earlyexit.cli import main
from earlyexit.data import DataError, DataSource, load_task
from earlyexit.metrics import check_metric, metric_value
from earlyexit.training import TrainConfig

ROWS = [("a good film", "pos"), ("a bad film", "neg"), ("fine acting", "pos"), ("dull plot", "neg"),
        ("great cast", "pos"), ("weak ending", "neg"), ("so so", "neutral"), ("meh", "neutral")]


def _frame(rows, text="review", label="stars"):
    return pd.DataFrame({text: [r[0] for r in rows], label: [r[1] for r in rows]})


def _write(frame, path):
    if path.suffix == ".tsv":
        frame.to_csv(path, sep="\t", index=False)
    elif path.suffix == ".csv":
        frame.to_csv(path, index=False)
    elif path.suffix == ".jsonl":
        frame.to_json(path, orient="records", lines=True)
    else:
        frame.to_parquet(path)
    return path


@pytest.mark.parametrize("ext", [".tsv", ".csv", ".jsonl", ".parquet"])
def test_every_file_type_reads_the_same_task_with_string_labels_in_sorted_order(tmp_path, ext):
    _write(_frame(ROWS), tmp_path / f"train{ext}")
    _write(_frame(ROWS[:4]), tmp_path / f"dev{ext}")
    task = load_task(DataSource(task="reviews", path=str(tmp_path), text_columns=("review",), label_column="stars"))
    assert task.label_names == ("neg", "neutral", "pos") and task.num_labels == 3
    assert task.train[0] == ("a good film", None, 2) and task.train[6] == ("so so", None, 1)
    assert [y for _, _, y in task.dev] == [2, 0, 2, 0]


def test_a_labelled_test_split_is_read_and_an_unlabelled_one_is_ignored(tmp_path):
    _write(_frame(ROWS), tmp_path / "train.tsv")
    _write(_frame(ROWS[:4]), tmp_path / "dev.tsv")
    source = DataSource(task="reviews", path=str(tmp_path), text_columns=("review",), label_column="stars")
    assert load_task(source).test == []
    _write(_frame(ROWS[2:5]), tmp_path / "test.tsv")
    assert [y for _, _, y in load_task(source).test] == [2, 0, 2]
    pd.DataFrame({"index": [0, 1], "review": ["x", "y"]}).to_csv(tmp_path / "test.tsv", sep="\t", index=False)
    assert load_task(source).test == []  # GLUE's test files carry no labels
    _write(_frame([("odd", "mixed")]), tmp_path / "test.tsv")
    with pytest.raises(DataError, match=r"test.tsv: row 1, column 'stars': label 'mixed' never occurs"):
        load_task(source)


def test_single_files_two_text_columns_and_integer_labels(tmp_path):
    frame = pd.DataFrame({"q": ["a", "b", "c", "d"], "p": ["w", "x", "y", "z"], "label": [7, 3, 7, 10]})
    train = _write(frame, tmp_path / "mine.csv")
    dev = _write(frame.iloc[:2], tmp_path / "held.jsonl")
    task = load_task(DataSource(task="pairs", train=str(train), dev=str(dev), text_columns=("q", "p")))
    assert task.label_names == (3, 7, 10)  # integers sort numerically, not as text
    assert task.train[0] == ("a", "w", 1) and task.train[3] == ("d", "z", 2)


def test_train_size_is_a_reproducible_random_subset(tmp_path):
    frame = _frame([(f"text {i}", i % 2) for i in range(100)], text="sentence", label="label")
    _write(frame, tmp_path / "train.tsv")
    _write(frame.iloc[:10], tmp_path / "dev.tsv")
    a = load_task(DataSource(task="t", path=str(tmp_path), train_size=30))
    b = load_task(DataSource(task="t", path=str(tmp_path), train_size=30))
    assert len(a.train) == 30 and a.train == b.train and a.train != load_task(DataSource(task="t", path=str(tmp_path))).train[:30]


@pytest.mark.parametrize("train_rows,dev_rows,kwargs,match", [
    (ROWS, ROWS, {"label_column": "rating"}, r"missing column\(s\) \['rating'\]"),
    (ROWS, [], {}, "the split is empty"),
    (ROWS[:6], ROWS, {}, r"label 'neutral' never occurs in the training split"),
    ([r for r in ROWS if r[1] == "pos"], ROWS[:1], {}, "one class only"),
    ([("ok", "pos"), ("   ", "neg")], ROWS[:2], {}, r"row 2, column 'review': the text is empty"),
])
def test_bad_data_is_a_clear_error(tmp_path, train_rows, dev_rows, kwargs, match):
    _write(_frame(train_rows), tmp_path / "train.tsv")
    _write(_frame(dev_rows) if dev_rows else _frame([]), tmp_path / "dev.tsv")
    source = DataSource(task="r", path=str(tmp_path), text_columns=("review",),
                        label_column=kwargs.get("label_column", "stars"))
    with pytest.raises(DataError, match=match):
        load_task(source)


def test_a_text_cell_that_is_not_text_is_an_error(tmp_path):
    (tmp_path / "train.jsonl").write_text('{"text": "fine", "label": 0}\n{"text": 42, "label": 1}\n')
    (tmp_path / "dev.jsonl").write_text('{"text": "ok", "label": 0}\n')
    with pytest.raises(DataError, match=r"train.jsonl: row 2, column 'text': 42 is not text"):
        load_task(DataSource(task="j", path=str(tmp_path)))


def test_glue_shortcut_still_reads_the_bundled_subset():
    task = load_task("sst2", "earlyexit:sst2-2k")
    assert task.num_labels == 2 and task.label_names == (0, 1) and len(task.train) == 2000


def test_metrics_match_scikit_learn_by_hand():
    y, p = [0, 0, 1, 1, 1, 0], [0, 1, 1, 1, 0, 0]
    assert metric_value("accuracy", y, p) == pytest.approx(4 / 6)
    assert metric_value("f1", y, p) == pytest.approx(2 / 3)  # precision 2/3, recall 2/3
    tp, tn, fp, fn = 2, 2, 1, 1
    mcc = (tp * tn - fp * fn) / math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    assert metric_value("mcc", y, p) == pytest.approx(mcc)
    assert metric_value("macro_f1", [0, 1, 2], [0, 1, 1]) == pytest.approx((1 + 2 / 3 + 0) / 3)
    with pytest.raises(ValueError, match="use 'macro_f1'"):
        check_metric("f1", num_labels=6)
    with pytest.raises(ValueError, match="unknown metric"):
        check_metric("auc")


def test_epoch_budget_resolves_to_steps():
    config = TrainConfig(max_epochs=3, batch_size=32)
    assert config.budget_steps(4952) == 3 * 155 and config.with_budget(4952).max_steps == 465
    assert TrainConfig(max_epochs=0.5, batch_size=10).budget_steps(95) == 5
    assert TrainConfig(max_steps=7).with_budget(10_000).max_steps == 7
    with pytest.raises(ValueError, match="max_epochs must be positive"):
        TrainConfig(max_epochs=0)


SPEC = """
[study]
name = "own"
storage = "sqlite:///{db}"
n_trials = 2
sampler = "random"
metric = "{metric}"
[model]
name = "earlyexit:tiny-bert"
[data]
train = "{train}"
dev = "{dev}"
text_columns = ["review"]
label_column = "stars"
max_length = 16
[train]
batch_size = 4
max_epochs = 2
[probes]
steps = [0, 2, 50]
names = ["loss", "gradient_norm"]
batches = 2
batch_size = 4
[search]
learning_rate = {{ type = "float", low = 1e-4, high = 1e-3, log = true }}
[pruner]
kind = "none"
"""


def _own_spec(tmp_path, metric="macro_f1", dev_rows=ROWS):
    train = _write(_frame(ROWS), tmp_path / "train.csv")
    dev = _write(_frame(dev_rows), tmp_path / "dev.csv")
    spec = tmp_path / "own.toml"
    spec.write_text(SPEC.format(db=tmp_path / "own.db", metric=metric, train=train, dev=dev))
    return spec


def test_sweep_on_own_data_logs_the_metric_the_labels_and_the_final_checkpoint(tmp_path, capsys):
    from earlyexit.sweeps import load, load_dev_records

    spec = _own_spec(tmp_path)
    assert main(["sweep", str(spec), "--out", str(tmp_path / "own")]) == 0
    assert "probe steps [50] lie past the budget of 4 steps" in capsys.readouterr().out
    sweep = load(tmp_path / "own", require_complete=True)
    assert sweep.metric == "macro_f1" and sweep.manifest["format_version"] == 3
    assert sweep.manifest["label_names"] == ["neg", "neutral", "pos"] and sweep.manifest["budget_steps"] == 4
    assert sweep.probe_steps == [0, 2]
    for run_id, rows in sweep.checkpoints.groupby("run_id"):
        assert sorted(rows["step"]) == [0, 2, 4]  # the final step (2 epochs of 2 steps) is a checkpoint
        final = rows[rows["step"] == 4].iloc[0]
        run = sweep.runs.set_index("run_id").loc[run_id]
        assert final["dev_metric"] == run["final_metric"] and final["dev_accuracy"] == run["final_accuracy"]
    assert sweep.summary()["metric"] == "macro_f1"
    # Format 3: every dev evaluation's predictions, which reproduce its accuracy; no test split here.
    records = load_dev_records(sweep)
    assert len(records.labels) == len(ROWS) and len(records.predictions) == len(sweep.checkpoints)
    for row in sweep.checkpoints.itertuples():
        assert records.correct(row.run_id, row.step).mean() == pytest.approx(row.dev_accuracy)
    assert sweep.runs["final_test_metric"].isna().all()


def test_a_sweep_evaluates_each_final_model_once_on_the_test_split(tmp_path):
    from earlyexit.sweeps import load

    folder = tmp_path / "data"
    folder.mkdir()
    _write(_frame(ROWS), folder / "train.tsv")
    _write(_frame(ROWS), folder / "dev.tsv")
    _write(_frame(ROWS[:4] + [("unseen words only", "pos")]), folder / "test.tsv")
    spec = tmp_path / "own.toml"
    text = SPEC.format(db=tmp_path / "own.db", metric="accuracy", train="", dev="")
    spec.write_text(text.replace('train = ""\ndev = ""', f'path = "{folder}"'))
    assert main(["sweep", str(spec), "--out", str(tmp_path / "own")]) == 0
    sweep = load(tmp_path / "own", require_complete=True)
    assert sweep.manifest["test_examples"] == 5
    tests = sweep.runs["final_test_accuracy"]
    assert tests.notna().all() and tests.isin([k / 5 for k in range(6)]).all()
    assert (sweep.runs["final_test_metric"] == tests).all()


def test_study_on_own_data_maximizes_the_metric_and_records_the_labels(tmp_path):
    from earlyexit.study import load_spec, run_study

    study = run_study(load_spec(_own_spec(tmp_path, metric="mcc")), show_progress=False)
    assert study.user_attrs["earlyexit:label_names"] == ["neg", "neutral", "pos"]
    assert study.user_attrs["earlyexit:metric"] == "mcc"
    for t in study.trials:
        assert t.value == t.user_attrs["final_mcc"] and -1 <= t.value <= 1


@pytest.mark.parametrize("command", ["run", "sweep"])
def test_bad_data_exits_2_and_writes_nothing(tmp_path, capsys, command):
    spec = _own_spec(tmp_path, dev_rows=ROWS + [("odd", "mixed")])
    args = [command, str(spec)] + (["--out", str(tmp_path / "out")] if command == "sweep" else [])
    assert main(args) == 2
    assert "label 'mixed' never occurs in the training split" in capsys.readouterr().err
    assert not (tmp_path / "out").exists() and not (tmp_path / "own.db").exists()


def test_version_1_sweeps_read_as_accuracy(tmp_path):
    from synthetic_sweep import write_synthetic_sweep

    from earlyexit.sweeps import load

    sweep = load(write_synthetic_sweep(tmp_path / "old", configs=3, seeds=(0,)))
    assert sweep.metric == "accuracy" and sweep.manifest["format_version"] == 1
    assert sweep.runs["final_metric"].equals(sweep.runs["final_accuracy"])
    assert json.loads(json.dumps(sweep.summary()))["metric"] == "accuracy"


def test_exported_script_reads_own_data_with_the_studys_label_mapping(tmp_path, capsys):
    import subprocess
    import sys

    from earlyexit.study import load_spec, run_study

    spec = _own_spec(tmp_path, metric="mcc")
    run_study(load_spec(spec), show_progress=False)
    capsys.readouterr()
    out = tmp_path / "train_best.py"
    assert main(["export", str(spec), "--format", "script", "-o", str(out)]) == 0
    text = out.read_text()
    assert "LABEL_NAMES = ['neg', 'neutral', 'pos']" in text and "METRIC = 'mcc'" in text
    done = subprocess.run([sys.executable, str(out)], capture_output=True, text=True, timeout=300,
                          env={**__import__("os").environ, "MAX_STEPS": "2"})
    assert done.returncode == 0, done.stderr
    assert "dev mcc" in done.stdout and "after 2 steps" in done.stdout
    assert main(["export", str(spec), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["label_names"] == ["neg", "neutral", "pos"]


def test_probe_command_reads_a_users_file(tmp_path, capsys):
    frame = _frame([(f"{w} film number {i}", w) for i in range(20) for w in ("good", "bad")])
    path = _write(frame, tmp_path / "mine.jsonl")
    assert main(["probe", "--json", "--data", str(path), "--task", "mine", "--text-columns", "review",
                 "--label-column", "stars", "--batches", "2", "--batch-size", "4", "--names", "loss"]) == 0
    assert json.loads(capsys.readouterr().out)["probes"]["loss"] > 0
    assert main(["probe", "--data", str(path), "--task", "mine"]) == 2
    assert "no 'sentence' or 'text' column" in capsys.readouterr().err
