"""Study specs: a TOML file loaded into typed dataclasses, validated with errors naming file and key."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..training import DEFAULT_PROBE_STEPS, TrainConfig
from ..data import DataSource
from ..metrics import METRICS
from ..names import DEFAULT_PROBES
from ._pruner_spec import PRUNER_KEYS, PrunerSettings, ResolutionSettings, parse_pruner
from ._toml import SpecError, _get, _known, _table


@dataclass(frozen=True)
class Distribution:
    """One searched hyperparameter.

    Attributes:
        kind: ``float``, ``int`` or ``categorical``.
        low, high: bounds for ``float`` and ``int``.
        log: sample on a log scale.
        choices: values for ``categorical``.
    """

    kind: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple = ()

    def to_optuna(self):
        import optuna

        if self.kind == "float":
            return optuna.distributions.FloatDistribution(self.low, self.high, log=self.log)
        if self.kind == "int":
            return optuna.distributions.IntDistribution(int(self.low), int(self.high), log=self.log)
        return optuna.distributions.CategoricalDistribution(list(self.choices))


SEARCHABLE = ("learning_rate", "warmup_ratio", "weight_decay", "schedule", "batch_size",
              "hidden_dropout", "classifier_dropout", "grad_clip", "seed")


@dataclass(frozen=True)
class StudySpec:
    """A whole study: where it is stored, what is searched, how runs train and are pruned.

    Attributes:
        path: the spec file.
        name: study name.
        storage: Optuna storage URL (default: SQLite next to the spec's runs/).
        n_trials: trials the study should reach in total.
        seed: sampler seed.
        sampler: ``grid``, ``tpe`` or ``random``.
        grid: for ``grid``, values per hyperparameter.
        search: for ``tpe``/``random``, a :class:`Distribution` per name
            (``seed`` may be searched or gridded like any hyperparameter).
        train: the fixed part of every run's :class:`TrainConfig`.
        pruner: the settings of the pruner kind the ``[pruner]`` table names (a
            :class:`~earlyexit.study.PrunerSettings`: :class:`~earlyexit.study.ResolutionSettings` unset).
        measure: ``pruner`` (default): each trial measures only what its
            pruner reads, where it reads it (the geometric pruner's scorer;
            a dev evaluation at every probe step for Optuna's pruners);
            ``all``: every probe and a dev evaluation at every probe step
            (to log data for fitting a scorer later; also what a study with
            pruner kind ``none`` measures).
        heartbeat_seconds: SQL storages: a trial without a heartbeat for
            twice this long is failed and retried with the same parameters.
    """

    path: str
    name: str
    storage: str
    n_trials: int
    seed: int
    sampler: str
    grid: dict[str, tuple] = field(default_factory=dict)
    search: dict[str, Distribution] = field(default_factory=dict)
    train: TrainConfig = field(default_factory=TrainConfig)
    pruner: PrunerSettings = field(default_factory=ResolutionSettings)
    heartbeat_seconds: int = 30
    measure: str = "pruner"

    def config_for(self, params: dict[str, Any]) -> TrainConfig:
        """The run's TrainConfig: the fixed settings with the trial's parameters."""
        from dataclasses import replace

        return replace(self.train, **params)


_TOP_KEYS = {"study", "model", "data", "train", "probes", "search", "pruner"}
_STUDY_KEYS = {"name", "storage", "n_trials", "seed", "sampler", "heartbeat_seconds", "metric"}
_MODEL_KEYS = {"name", "num_layers", "freeze_word_embeddings", "prune_vocabulary"}
_DATA_KEYS = {"task", "path", "train", "dev", "text_columns", "label_column", "dataset", "config", "train_split",
              "dev_split", "train_size", "max_length", "group_by_length"}
_TRAIN_KEYS = {"learning_rate", "warmup_ratio", "weight_decay", "schedule", "batch_size", "max_steps", "max_epochs",
               "grad_clip", "seed", "hidden_dropout", "classifier_dropout", "eval_batch_size", "device", "precision",
               "probe_precision"}
_PROBE_KEYS = {"steps", "names", "batches", "batch_size", "seed", "measure"}


def load_spec(path: str | Path) -> StudySpec:
    """Read and validate a study spec; raises :class:`SpecError` naming file and key."""
    path = Path(path)
    if not path.exists():
        raise SpecError(f"{path}: no such spec file; see studies/quickstart.toml for an example.")
    try:
        with open(path, "rb") as f:
            raw = tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{path}: not valid TOML: {exc}.") from None
    except UnicodeDecodeError:
        raise SpecError(f"{path}: not valid TOML: the file is not UTF-8 text.") from None
    return parse_spec(raw, str(path))


def parse_spec(raw: dict, where: str = "<spec>") -> StudySpec:
    """Validate a spec already parsed from TOML."""
    _known(raw, _TOP_KEYS, where, "")
    study = _table(raw, "study", where)
    model = _table(raw, "model", where)
    data = _table(raw, "data", where)
    train = _table(raw, "train", where)
    probes = _table(raw, "probes", where)
    search = _table(raw, "search", where)
    pruner = _table(raw, "pruner", where)
    _known(study, _STUDY_KEYS, where, "study.")
    _known(model, _MODEL_KEYS, where, "model.")
    _known(data, _DATA_KEYS, where, "data.")
    _known(train, _TRAIN_KEYS, where, "train.")
    _known(probes, _PROBE_KEYS, where, "probes.")
    _known(pruner, PRUNER_KEYS, where, "pruner.")

    name = _get(study, "name", str, where, "study.", default=Path(where).stem)
    storage = _get(study, "storage", str, where, "study.", default=f"sqlite:///runs/{name}.db")
    n_trials = _get(study, "n_trials", int, where, "study.", default=10)
    if n_trials < 1:
        raise SpecError(f"{where}: study.n_trials must be at least 1, but got {n_trials}.")
    seed = _get(study, "seed", int, where, "study.", default=0)
    heartbeat = _get(study, "heartbeat_seconds", int, where, "study.", default=30)
    if heartbeat < 1:
        raise SpecError(f"{where}: study.heartbeat_seconds must be at least 1, but got {heartbeat}.")

    cfg: dict[str, Any] = {}
    cfg["model"] = _get(model, "name", str, where, "model.", default="earlyexit:tiny-bert")
    cfg["num_layers"] = _get(model, "num_layers", int, where, "model.", default=None)
    cfg["freeze_word_embeddings"] = _get(model, "freeze_word_embeddings", bool, where, "model.", default=False)
    cfg["prune_vocabulary"] = _get(model, "prune_vocabulary", bool, where, "model.", default=False)
    try:
        cfg["source"] = DataSource(**_data_settings(data, where))
    except ValueError as exc:
        raise SpecError(f"{where}: {exc}") from None
    cfg["metric"] = _get(study, "metric", str, where, "study.", default="accuracy")
    if cfg["metric"] not in METRICS:
        raise SpecError(f"{where}: study.metric must be one of {', '.join(METRICS)}, but got {cfg['metric']!r}.")
    cfg["max_length"] = _get(data, "max_length", int, where, "data.", default=128)
    cfg["group_by_length"] = _get(data, "group_by_length", bool, where, "data.", default=False)
    for key in _TRAIN_KEYS:
        if key in train:
            kind = {"schedule": str, "device": str, "precision": str, "probe_precision": str}.get(
                key, int if key in ("batch_size", "max_steps", "seed", "eval_batch_size") else float)
            cfg[key] = _get(train, key, kind, where, "train.")
    if "max_steps" in train and "max_epochs" in train:
        raise SpecError(f"{where}: set train.max_steps or train.max_epochs, not both.")
    cfg["probe_steps"] = tuple(_get(probes, "steps", list, where, "probes.", default=list(DEFAULT_PROBE_STEPS)))
    cfg["probe_names"] = tuple(_get(probes, "names", list, where, "probes.",
                                    default=list(DEFAULT_PROBES)))
    cfg["probe_batches"] = _get(probes, "batches", int, where, "probes.", default=4)
    cfg["probe_batch_size"] = _get(probes, "batch_size", int, where, "probes.", default=8)
    cfg["probe_seed"] = _get(probes, "seed", int, where, "probes.", default=0)
    try:
        train_config = TrainConfig(**cfg)
    except (ValueError, TypeError) as exc:
        raise SpecError(f"{where}: {exc}") from None

    sampler, grid, dists = _search_space(study, search, train_config, where)
    pruner_spec = parse_pruner(pruner, train_config, where)

    measure = _get(probes, "measure", str, where, "probes.", default="pruner")
    if measure not in ("pruner", "all"):
        raise SpecError(f"{where}: probes.measure must be 'pruner' or 'all', but got {measure!r}.")
    return StudySpec(path=where, name=name, storage=storage, n_trials=n_trials, seed=seed, sampler=sampler,
                     grid=grid, search=dists, train=train_config, pruner=pruner_spec, heartbeat_seconds=heartbeat,
                     measure=measure)


def _search_space(study: dict, search: dict, train_config: TrainConfig, where: str):
    """The spec's sampler, grid (``{name: values}``) and distributions (``{name: Distribution}``)."""
    grid_raw = search.get("grid")
    sampler = _get(study, "sampler", str, where, "study.", default="grid" if grid_raw is not None else "tpe")
    if sampler not in ("grid", "tpe", "random"):
        raise SpecError(f"{where}: study.sampler must be 'grid', 'tpe' or 'random', but got {sampler!r}.")
    grid: dict[str, tuple] = {}
    dists: dict[str, Distribution] = {}
    if grid_raw is not None:
        if not isinstance(grid_raw, dict) or not grid_raw:
            raise SpecError(f"{where}: search.grid must be a table of lists, e.g. learning_rate = [1e-5, 5e-5].")
        for key, values in grid_raw.items():
            _searchable(key, where, "search.grid.")
            if not isinstance(values, list) or not values:
                raise SpecError(f"{where}: search.grid.{key} must be a non-empty list, but got {values!r}.")
            grid[key] = tuple(values)
            _check_values(train_config, key, values, where, f"search.grid.{key}")
    for key, value in search.items():
        if key == "grid":
            continue
        _searchable(key, where, "search.")
        dists[key] = _distribution(value, where, f"search.{key}")
        probe_values = dists[key].choices or (dists[key].low, dists[key].high)
        _check_values(train_config, key, list(probe_values), where, f"search.{key}")
    if sampler == "grid" and not grid:
        raise SpecError(f"{where}: study.sampler is 'grid' but there is no [search.grid] table.")
    if sampler != "grid" and set(grid) - {"seed"}:
        raise SpecError(f"{where}: with study.sampler {sampler!r}, [search.grid] may only list seed (each sampled "
                        f"config trains with every seed); got {sorted(grid)}.")
    if sampler != "grid" and not dists:
        raise SpecError(f"{where}: study.sampler is {sampler!r} but [search] has no distributions.")
    return sampler, grid, dists


def with_device(spec: StudySpec, device: str | None) -> StudySpec:
    """The spec with its runs on ``device`` (``--device``); unchanged for None. Raises SpecError for a bad name."""
    from dataclasses import replace

    if device is None:
        return spec
    try:
        return replace(spec, train=replace(spec.train, device=device))
    except ValueError as exc:
        raise SpecError(f"--device: {exc}") from None


def _data_settings(data: dict, where: str) -> dict[str, Any]:
    """The ``[data]`` table as DataSource fields: a GLUE name, a folder, two files, or a hub dataset."""
    out: dict[str, Any] = {}
    out["task"] = _get(data, "task", str, where, "data.", default=None)
    path = _get(data, "path", str, where, "data.", default=None)
    train_file = _get(data, "train", str, where, "data.", default=None)
    dev_file = _get(data, "dev", str, where, "data.", default=None)
    hub = _get(data, "dataset", str, where, "data.", default=None)
    if (train_file is None) != (dev_file is None):
        raise SpecError(f"{where}: give both data.train and data.dev files, or a data.path folder.")
    if sum(x is not None for x in (path, train_file, hub)) > 1:
        raise SpecError(f"{where}: give one of data.path (a folder), data.train and data.dev (files), or "
                        "data.dataset (a hub dataset).")
    base = Path(where).parent
    if train_file is not None:
        out["train"], out["dev"] = (_relative(f, base) for f in (train_file, dev_file))
        out["path"] = None
    elif hub is not None or path == "hub":
        out["path"] = None
        out["hub_dataset"] = hub
    else:
        out["path"] = path if path is not None else ("earlyexit:sst2-2k" if out["task"] in (None, "sst2") else None)
        if out["path"] is None:
            raise SpecError(f"{where}: data.task {out['task']!r} needs data.path (a folder), data.train and data.dev, "
                            "or data.dataset (a hub dataset).")
    if out["task"] is None:
        stem = Path(train_file or path or hub or "sst2").stem
        out["task"] = "sst2" if out["path"] == "earlyexit:sst2-2k" else stem
    text_columns = _get(data, "text_columns", list, where, "data.", default=None)
    if text_columns is not None:
        if not 1 <= len(text_columns) <= 2 or not all(isinstance(c, str) for c in text_columns):
            raise SpecError(f"{where}: data.text_columns must list one or two column names, but got {text_columns!r}.")
        out["text_columns"] = tuple(text_columns)
    for key, field_name in (("label_column", "label_column"), ("config", "hub_config"),
                            ("train_split", "train_split"), ("dev_split", "dev_split")):  # TOML key -> field
        if key in data:
            out[field_name] = _get(data, key, str, where, "data.")
    if "train_size" in data:
        out["train_size"] = _get(data, "train_size", int, where, "data.")
    return out


def _relative(path: str, base: Path) -> str:
    """A data file path as written, or relative to the spec's folder when it only exists there."""
    p = Path(path).expanduser()
    if p.is_absolute() or p.exists() or not (base / p).exists():
        return str(p)
    return str(base / p)


def _searchable(key: str, where: str, prefix: str) -> None:
    if key not in SEARCHABLE:
        raise SpecError(f"{where}: {prefix}{key} cannot be searched; searchable: {', '.join(SEARCHABLE)}.")


def _distribution(value, where: str, key: str) -> Distribution:
    if not isinstance(value, dict):
        raise SpecError(f"{where}: {key} must be a table such as {{ type = \"float\", low = 1e-5, high = 1e-3, "
                        "log = true }.")
    kind = value.get("type")
    extra = sorted(set(value) - {"type", "low", "high", "log", "choices"})
    if extra:
        raise SpecError(f"{where}: unknown key(s) {', '.join(key + '.' + e for e in extra)}.")
    if kind in ("float", "int"):
        low, high = value.get("low"), value.get("high")
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high)):
            raise SpecError(f"{where}: {key} needs numeric low and high, but got low={low!r}, high={high!r}.")
        if not low < high:
            raise SpecError(f"{where}: {key}.low must be below {key}.high, but got {low} >= {high}.")
        log = value.get("log", False)
        if not isinstance(log, bool):
            raise SpecError(f"{where}: {key}.log must be true or false, but got {log!r}.")
        if log and low <= 0:
            raise SpecError(f"{where}: {key}.low must be positive on a log scale, but got {low}.")
        return Distribution(kind, float(low), float(high), log)
    if kind == "categorical":
        choices = value.get("choices")
        if not isinstance(choices, list) or not choices:
            raise SpecError(f"{where}: {key}.choices must be a non-empty list.")
        return Distribution("categorical", choices=tuple(choices))
    raise SpecError(f"{where}: {key}.type must be 'float', 'int' or 'categorical', but got {kind!r}.")


def _check_values(train: TrainConfig, key: str, values: list, where: str, label: str) -> None:
    from dataclasses import replace

    for v in values:
        try:
            replace(train, **{key: v})
        except (ValueError, TypeError) as exc:
            raise SpecError(f"{where}: {label}: value {v!r} is not allowed: {exc}") from None
