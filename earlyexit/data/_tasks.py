"""Load a text-classification task: a user's own files, a folder, the hub, or the bundled subset.

A task is read from a :class:`DataSource`: a folder of ``train`` and ``dev``
files, or two single files, as TSV, CSV, JSON Lines or Parquet; or a hub
dataset by name, config and split names. GLUE task names (``sst2``,
``cola``, ...) are shortcuts that fill in the text columns (and the hub's
``glue`` dataset). Labels may be integers or strings: they are mapped to
class ids in sorted order, and the mapping travels with the data
(:attr:`TaskData.label_names`) so that a study, a sweep and an exported
script agree on it.

Every problem is a :class:`DataError` (a ``ValueError``) naming the file,
the row and the column: a missing column, an empty split, a dev label the
training split never had, one class only, a text cell that is empty or not
text.
"""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from ..names import BUNDLED_PREFIX  # noqa: E402
FILE_TYPES = (".tsv", ".csv", ".jsonl", ".json", ".parquet")
"""File types a split may be stored in (``.json`` is read as JSON Lines)."""


class DataError(ValueError):
    """Data that cannot be used; the message names the file, the row and the column."""


@dataclass(frozen=True)
class TaskInfo:
    """How to read one GLUE task (the shortcuts).

    Attributes:
        text_keys: the one or two text columns.
        tsv_columns: column names of GLUE's own headerless TSV files (CoLA),
            None when the TSV files have a header.
        dev_split: the hub's name of the evaluation split.
    """

    text_keys: tuple[str, ...]
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
class DataSource:
    """Where a task's examples come from and how to read them.

    Attributes:
        task: the task's name (a GLUE name fills in the text columns and the hub dataset).
        path: a folder with ``train`` and ``dev`` (or ``validation``) files,
            ``earlyexit:sst2-2k`` (bundled), or None (the hub, or ``train``/``dev`` files).
        train, dev: single files instead of a folder.
        text_columns: one or two text columns (default: the GLUE task's, else
            ``sentence`` or ``text``, whichever the file has).
        label_column: the label column.
        hub_dataset, hub_config: ``load_dataset(hub_dataset, hub_config)`` (a
            GLUE task with no path: ``glue``, the task).
        train_split, dev_split: the hub's split names.
        train_size: keep a random subset of this many training examples
            (chosen with ``subset_seed``); None keeps all.
        subset_seed: the seed of that subset.
    """

    task: str = "sst2"
    path: str | None = None
    train: str | None = None
    dev: str | None = None
    text_columns: tuple[str, ...] | None = None
    label_column: str = "label"
    hub_dataset: str | None = None
    hub_config: str | None = None
    train_split: str = "train"
    dev_split: str | None = None
    train_size: int | None = None
    subset_seed: int = 0

    def __post_init__(self):
        if (self.train is None) != (self.dev is None):
            raise DataError("give both data.train and data.dev files, or a data.path folder.")
        if self.train is not None and self.path is not None:
            raise DataError("give data.path (a folder) or data.train and data.dev (files), not both.")
        if self.text_columns is not None and not 1 <= len(self.text_columns) <= 2:
            raise DataError(f"data.text_columns must name one or two columns, but got {list(self.text_columns)}.")
        if self.train_size is not None and self.train_size < 2:
            raise DataError(f"data.train_size must be at least 2, but got {self.train_size}.")

    @property
    def from_hub(self) -> bool:
        return self.path is None and self.train is None


Row = tuple[str, "str | None", int]


@dataclass(frozen=True)
class TaskData:
    """A task's examples as plain lists.

    Attributes:
        name: the task name.
        source: where the data came from (hub id, folder or file paths).
        train, dev: ``(text_a, text_b or None, class id)`` tuples.
        num_labels: number of classes (those of the training split).
        label_names: the original label of each class id, in class-id order
            (sorted: integers numerically, strings alphabetically).
        test: the labelled test split, in file order, where the data folder
            has one (``test.tsv`` and the like); empty otherwise. Nothing
            decides on it: a sweep evaluates each final model on it once.
    """

    name: str
    source: str
    train: list[Row]
    dev: list[Row]
    num_labels: int
    label_names: tuple = field(default=())
    test: list[Row] = field(default_factory=list)


def load_task(name: str | DataSource, data: str | None = None, *, max_train: int | None = None) -> TaskData:
    """Load a task from a :class:`DataSource` (or, as before, a GLUE name and a folder).

    ``load_task("sst2", "earlyexit:sst2-2k")`` reads the bundled subset;
    ``load_task("sst2")`` the hub; ``load_task(DataSource(...))`` anything
    else. ``max_train`` keeps the first training examples (for tests).
    Raises :class:`DataError` naming what is wrong.
    """
    source = name if isinstance(name, DataSource) else DataSource(task=name, path=data)
    info = TASKS.get(source.task)
    if source.from_hub:
        frames, where = _from_hub(source, info)
    else:
        frames, where = _from_files(source, info)
    text_columns = source.text_columns or (info.text_keys if info else _default_text_column(frames["train"], where))
    columns = (*text_columns, source.label_column)
    raw = {split: _read_rows(frames[split], columns, where[split]) for split in frames}
    labels, label_names = _label_map(raw["train"], where["train"], source.label_column)
    train = [(a, b, labels[y]) for a, b, y in raw["train"]]
    dev, test = (_labelled(raw[split], labels, label_names, where[split], source.label_column) if split in raw else []
                 for split in ("dev", "test"))
    if source.train_size is not None and source.train_size < len(train):
        keep = sorted(random.Random(source.subset_seed).sample(range(len(train)), source.train_size))
        train = [train[i] for i in keep]
        if len({y for _, _, y in train}) < len(label_names):
            raise DataError(f"{where['train']}: a subset of {source.train_size} examples misses a class; "
                            "raise data.train_size.")
    if max_train is not None:
        train = train[:max_train]
    origin = where["train"] if source.train is not None or source.from_hub else str(Path(where["train"]).parent)
    return TaskData(source.task, origin, train, dev, len(label_names), label_names, test)


def _labelled(rows, labels: dict, label_names: tuple, where: str, column: str) -> list[Row]:
    """Rows of a held-out split with class ids; a label the training split lacks is a :class:`DataError`."""
    out = []
    for i, (a, b, y) in enumerate(rows):
        if y not in labels:
            raise DataError(f"{where}: row {i + 1}, column {column!r}: label {y!r} never occurs in "
                            f"the training split (its labels: {list(label_names)}).")
        out.append((a, b, labels[y]))
    return out


def _default_text_column(frame, where) -> tuple[str, ...]:
    for col in ("sentence", "text"):
        if col in frame.columns:
            return (col,)
    raise DataError(f"{where['train']}: no 'sentence' or 'text' column; set data.text_columns to one or two of "
                    f"{list(frame.columns)}.")


def resolve_folder(data: str) -> Path:
    """A data folder by path or bundled name (``earlyexit:sst2-2k``); raises :class:`DataError` if absent."""
    if data.startswith(BUNDLED_PREFIX):
        folder = Path(str(resources.files("earlyexit") / "assets" / data[len(BUNDLED_PREFIX):]))
    else:
        folder = Path(data).expanduser()
    if not folder.is_dir():
        raise DataError(f"data folder {data!r} ({folder.resolve()}) does not exist; give a folder with train and dev "
                        f"files ({', '.join(FILE_TYPES)}), or leave data unset to load from the hub.")
    return folder



def _from_files(source: DataSource, info: TaskInfo | None):
    if source.train is not None:
        paths = {"train": Path(source.train).expanduser(), "dev": Path(source.dev).expanduser()}
        for split, p in paths.items():
            if not p.is_file():
                raise DataError(f"data.{split} file {str(p)!r} does not exist.")
    else:
        paths = folder_files(resolve_folder(source.path))
    frames = {split: _read_file(p, info, source.label_column) for split, p in paths.items() if split != "test"}
    if "test" in paths:
        try:
            frame = _read_file(paths["test"], info, source.label_column)
        except DataError:
            frame = None
        if frame is not None and _has_labels(frame, source.label_column):
            frames["test"] = frame
        else:  # GLUE's test files have no labels: no test split
            del paths["test"]
    return frames, {split: str(p) for split, p in paths.items()}


def folder_files(folder: Path) -> dict[str, Path]:
    """A data folder's files by split: ``train``, ``dev`` (or ``validation``) and, where present, ``test``."""
    paths = {"train": _find(folder, ("train",)), "dev": _find(folder, ("dev", "validation"))}
    test = _find(folder, ("test",), required=False)
    if test is not None:
        paths["test"] = test
    return paths


def default_text_column(path: str | Path) -> str:
    """The text column a data file is read by when none is named: ``sentence``, else ``text``."""
    return _default_text_column(_read_file(Path(path), None, "label"), {"train": str(path)})[0]


def _find(folder: Path, stems: tuple[str, ...], *, required: bool = True) -> Path | None:
    for stem in stems:
        for ext in FILE_TYPES:
            path = folder / (stem + ext)
            if path.exists():
                return path
    if not required:
        return None
    raise DataError(f"no {' or '.join(stems)} file ({', '.join(FILE_TYPES)}) in {str(folder)!r}.")


def _read_file(path: Path, info: TaskInfo | None, label_column: str):
    import pandas as pd

    ext = path.suffix.lower()
    try:
        if ext == ".parquet":
            return pd.read_parquet(path)
        if ext in (".jsonl", ".json"):
            return pd.read_json(path, lines=True, dtype=False)
        if ext not in (".tsv", ".csv"):
            raise DataError(f"{path}: unknown file type {ext!r}; use one of {', '.join(FILE_TYPES)}.")
        if ext == ".tsv" and info is not None and info.tsv_columns and not _has_header(path, label_column):
            return pd.read_csv(path, sep="\t", header=None, names=list(info.tsv_columns), quoting=csv.QUOTE_NONE,
                               keep_default_na=False, dtype=str)
        return pd.read_csv(path, sep="\t" if ext == ".tsv" else ",",
                           quoting=csv.QUOTE_NONE if ext == ".tsv" else csv.QUOTE_MINIMAL,
                           keep_default_na=False, dtype=str)
    except DataError:
        raise
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise DataError(f"{path}: not a readable {ext[1:].upper()} file ({str(exc).splitlines()[0]}).") from None


def _has_labels(frame, label_column: str) -> bool:
    """Whether an optional split's table carries labels (GLUE's unlabelled test files do not)."""
    return label_column in frame.columns and len(frame) > 0 and (frame[label_column] != "").all()


def _has_header(path: Path, label_column: str) -> bool:
    with open(path, encoding="utf-8") as f:
        first = f.readline().rstrip("\n").split("\t")
    return label_column in first


def _read_rows(frame, columns: tuple[str, ...], where: str) -> list[tuple[str, str | None, object]]:
    """The text column(s) and the raw label of each row, checked: no empty or non-text cells."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"{where}: missing column(s) {missing}; found {list(frame.columns)}. Set data.text_columns "
                        "and data.label_column to the names your file uses.")
    if len(frame) == 0:
        raise DataError(f"{where}: the split is empty.")
    text_columns, label_column = columns[:-1], columns[-1]
    texts = []
    for col in text_columns:
        values = frame[col].tolist()
        for i, v in enumerate(values):
            if not isinstance(v, str):
                raise DataError(f"{where}: row {i + 1}, column {col!r}: {v!r} is not text.")
            if not v.strip():
                raise DataError(f"{where}: row {i + 1}, column {col!r}: the text is empty.")
        texts.append([v.strip() for v in values])
    b = texts[1] if len(texts) > 1 else [None] * len(texts[0])
    labels = [_label(v, where, i, label_column) for i, v in enumerate(frame[label_column].tolist())]
    return list(zip(texts[0], b, labels))


def _label(value, where: str, row: int, column: str):
    """A label as an int when it reads as one (``"3"`` and ``3`` are the same class), else as text."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip():
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            return text
    raise DataError(f"{where}: row {row + 1}, column {column!r}: {value!r} is not a label (an integer or a string).")


def _label_map(rows, where: str, column: str) -> tuple[dict, tuple]:
    labels = {y for _, _, y in rows}
    if len({type(y) for y in labels}) > 1:  # integers and strings mixed: compare as text
        raise DataError(f"{where}: column {column!r} mixes integer and text labels "
                        f"({sorted(map(str, labels))[:6]}); use one kind.")
    names = tuple(sorted(labels))
    if len(names) < 2:
        raise DataError(f"{where}: column {column!r} has one class only ({names[0]!r}); a classifier needs two.")
    return {y: i for i, y in enumerate(names)}, names


def _from_hub(source: DataSource, info: TaskInfo | None):  # pragma: no cover - needs the network
    from datasets import load_dataset

    name = source.hub_dataset or ("glue" if info is not None else source.task)
    config = source.hub_config or (source.task if info is not None and name == "glue" else None)
    dev_split = source.dev_split or (info.dev_split if info is not None else "validation")
    ds = load_dataset(name, config)
    label = f"{name}{'/' + config if config else ''}"
    frames, where = {}, {}
    for split, hub_split in (("train", source.train_split), ("dev", dev_split)):
        if hub_split not in ds:
            raise DataError(f"{label}: no split {hub_split!r}; it has {list(ds)} (set data.train_split/dev_split).")
        frame = ds[hub_split].to_pandas()
        feature = ds[hub_split].features.get(source.label_column)
        if feature is not None and hasattr(feature, "names"):  # ClassLabel: keep the class ids
            frame[source.label_column] = frame[source.label_column].astype(int)
        frames[split], where[split] = frame, f"{label} {hub_split}"
    return frames, where
