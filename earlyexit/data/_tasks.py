"""Load a GLUE-style task: hub name, local folder of TSV/CSV/Parquet files, or bundled data."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

BUNDLED_PREFIX = "earlyexit:"


@dataclass(frozen=True)
class TaskInfo:
    """How to read one task.

    Attributes:
        text_keys: the one or two text columns.
        num_labels: number of classes.
        tsv_columns: column names of GLUE's own headerless TSV files (CoLA),
            None when the TSV files have a header.
        dev_split: the hub's name of the evaluation split.
    """

    text_keys: tuple[str, ...]
    num_labels: int = 2
    tsv_columns: tuple[str, ...] | None = None
    dev_split: str = "validation"


TASKS: dict[str, TaskInfo] = {
    "sst2": TaskInfo(("sentence",)),
    "cola": TaskInfo(("sentence",), tsv_columns=("source", "label", "mark", "sentence")),
    "mrpc": TaskInfo(("sentence1", "sentence2")),
    "rte": TaskInfo(("sentence1", "sentence2")),
    "qnli": TaskInfo(("question", "sentence")),
    "qqp": TaskInfo(("question1", "question2")),
    "wnli": TaskInfo(("sentence1", "sentence2")),
}


@dataclass(frozen=True)
class TaskData:
    """A task's examples as plain lists.

    Attributes:
        name: the task name.
        source: where the data came from (hub id or folder path).
        train, dev: ``(text_a, text_b or None, label)`` tuples.
        num_labels: number of classes.
    """

    name: str
    source: str
    train: list[tuple[str, str | None, int]]
    dev: list[tuple[str, str | None, int]]
    num_labels: int


def load_task(name: str, data: str | None = None, *, max_train: int | None = None) -> TaskData:
    """Load task ``name`` from the hub (``data=None``), a folder, or ``earlyexit:sst2-2k``.

    A folder holds ``train`` and ``dev`` (or ``validation``) files as
    ``.tsv``, ``.csv`` or ``.parquet``. Raises ``ValueError`` naming what is
    missing.
    """
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; known tasks are {sorted(TASKS)}.")
    info = TASKS[name]
    if data is None:
        train, dev, source = _from_hub(name, info)
    else:
        folder = _resolve_folder(data)
        train = _read_split(folder, ("train",), info)
        dev = _read_split(folder, ("dev", "validation"), info)
        source = str(folder)
    if max_train is not None:
        train = train[:max_train]
    return TaskData(name, source, train, dev, info.num_labels)


def _resolve_folder(data: str) -> Path:
    if data.startswith(BUNDLED_PREFIX):
        folder = Path(str(resources.files("earlyexit") / "assets" / data[len(BUNDLED_PREFIX):]))
    else:
        folder = Path(data).expanduser()
    if not folder.is_dir():
        raise ValueError(f"data folder {data!r} ({folder.resolve()}) does not exist; give a folder with train and dev "
                         "files (.tsv, .csv or .parquet), or leave data unset to load from the hub.")
    return folder


def _read_split(folder: Path, stems: tuple[str, ...], info: TaskInfo):
    import pandas as pd

    for stem in stems:
        for ext in (".tsv", ".csv", ".parquet"):
            path = folder / (stem + ext)
            if not path.exists():
                continue
            if ext == ".parquet":
                frame = pd.read_parquet(path)
            elif ext == ".tsv" and info.tsv_columns and not _has_header(path, info):
                frame = pd.read_csv(path, sep="\t", header=None, names=list(info.tsv_columns),
                                    quoting=csv.QUOTE_NONE, keep_default_na=False)
            else:
                frame = pd.read_csv(path, sep="\t" if ext == ".tsv" else ",",
                                    quoting=csv.QUOTE_NONE if ext == ".tsv" else csv.QUOTE_MINIMAL,
                                    keep_default_na=False)
            return _rows(frame, info, path)
    raise ValueError(f"no {' or '.join(stems)} file (.tsv, .csv or .parquet) in {str(folder)!r}.")


def _has_header(path: Path, info: TaskInfo) -> bool:
    with open(path, encoding="utf-8") as f:
        first = f.readline().rstrip("\n").split("\t")
    return "label" in first


def _rows(frame, info: TaskInfo, where) -> list[tuple[str, str | None, int]]:
    missing = [c for c in (*info.text_keys, "label") if c not in frame.columns]
    if missing:
        raise ValueError(f"{where}: missing column(s) {missing}; found {list(frame.columns)}.")
    a = frame[info.text_keys[0]].astype(str).str.strip().tolist()
    b = frame[info.text_keys[1]].astype(str).str.strip().tolist() if len(info.text_keys) > 1 else [None] * len(a)
    try:
        labels = [int(x) for x in frame["label"].tolist()]
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: column 'label' must hold integers ({exc}).") from None
    bad = [i for i, y in enumerate(labels) if not 0 <= y < info.num_labels]
    if bad:
        raise ValueError(f"{where}: row {bad[0] + 1} has label {labels[bad[0]]}, outside 0..{info.num_labels - 1}.")
    return list(zip(a, b, labels))


def _from_hub(name: str, info: TaskInfo):  # pragma: no cover - needs the network
    from datasets import load_dataset

    ds = load_dataset("glue", name)
    train = _rows(ds["train"].to_pandas(), info, f"glue/{name} train")
    dev = _rows(ds[info.dev_split].to_pandas(), info, f"glue/{name} {info.dev_split}")
    return train, dev, f"glue/{name}"
