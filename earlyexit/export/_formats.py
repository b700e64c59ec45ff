"""Turn a study's best configs into JSON, YAML, TrainingArguments kwargs, CLI flags or a training script."""

from __future__ import annotations

import dataclasses
import json
import shlex
from importlib import resources
from pathlib import Path

import optuna
from optuna.trial import TrialState

from ..names import STUDY_LABEL_NAMES, STUDY_SPEC, STUDY_SPEC_PATH
from ..study import parse_spec
from ..training import HF_SCHEDULER_NAMES, TrainConfig

FORMATS = ("json", "yaml", "hf", "args", "script")


@dataclasses.dataclass(frozen=True)
class Chosen:
    """One exported config: where it came from, its metric, and the full training settings."""

    study: str
    trial: int
    metric: str
    value: float
    params: dict
    config: TrainConfig
    label_names: tuple | None = None


def chosen_from_study(study: optuna.Study, *, top: int = 1) -> list[Chosen]:
    """The ``top`` completed trials by final dev accuracy, with the spec's fixed settings filled in."""
    if top < 1:
        raise ValueError(f"--top must be at least 1, but got {top}.")
    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.value is not None]
    if not done:
        raise ValueError(f"study {study.study_name!r} has no completed trial yet; run it first "
                         "(`earlyexit run SPEC.toml`).")
    spec_text = study.user_attrs.get(STUDY_SPEC)
    if not spec_text:
        raise ValueError(f"study {study.study_name!r} was not created by `earlyexit run` (no spec stored).")
    import tomllib

    spec = parse_spec(tomllib.loads(spec_text), study.user_attrs.get(STUDY_SPEC_PATH, "<stored spec>"))
    best = sorted(done, key=lambda t: t.value, reverse=True)[:top]
    labels = study.user_attrs.get(STUDY_LABEL_NAMES)
    return [Chosen(study.study_name, t.number, f"dev_{spec.train.metric}", float(t.value), dict(t.params),
                   spec.config_for(t.params), tuple(labels) if labels else None) for t in best]


def chosen_from_sweep(sweep, *, scorer=None, fit_on=(), prefix: int = 100, progress=lambda m: None) -> list[Chosen]:
    """The config a replay of ``sweep`` would choose (see :func:`earlyexit.replay.chosen_config`)."""
    import tomllib

    from ..replay import chosen_config

    spec_text = sweep.manifest.get("spec")
    if not spec_text:
        raise ValueError(f"{sweep.path}: the manifest holds no study spec (an imported sweep?), so the full "
                         "training settings are unknown; export from a sweep logged by `earlyexit sweep`.")
    spec = parse_spec(tomllib.loads(spec_text), f"{sweep.path}/manifest.json")
    config_id, detail = chosen_config(sweep, scorer=scorer, fit_on=fit_on, prefix=prefix, progress=progress)
    runs = sweep.runs[sweep.runs["config_id"] == config_id]
    first = runs.iloc[0]
    params = {p: _plain(first[p]) for p in sweep.params if p != "seed"}
    value = float(runs["final_metric"].mean())
    labels = sweep.manifest.get("label_names")
    return [Chosen(f"sweep {sweep.path} ({detail['protocol']}, decision at step {prefix}, chosen for seeds "
                   f"{detail['votes'][config_id]})", -1, f"mean final dev {sweep.metric} over seeds", value, params,
                   spec.config_for({**params, "seed": spec.train.seed}), tuple(labels) if labels else None)]


def _plain(v):
    return v.item() if hasattr(v, "item") else v


def _record(c: Chosen) -> dict:
    record = {"study": c.study, "trial": c.trial, "metric": c.metric, "value": c.value, "params": c.params,
              "config": {k: v for k, v in dataclasses.asdict(c.config).items() if k != "extra"}}
    if c.label_names is not None:
        record["label_names"] = [_plain(x) for x in c.label_names]
    return record


def to_json(chosen: list[Chosen]) -> str:
    return json.dumps(_record(chosen[0]) if len(chosen) == 1 else [_record(c) for c in chosen], indent=2) + "\n"


def to_yaml(chosen: list[Chosen]) -> str:
    import yaml

    data = _record(chosen[0]) if len(chosen) == 1 else [_record(c) for c in chosen]
    return yaml.safe_dump(json.loads(json.dumps(data)), sort_keys=False)


def hf_training_arguments(config: TrainConfig, output_dir: str = "earlyexit-best") -> dict:
    """Keyword arguments for ``transformers.TrainingArguments`` reproducing ``config``.

    transformers 5 takes the warmup ratio as a float ``warmup_steps`` in [0, 1)
    and has no ``group_by_length`` (a speed lever that changes batch order,
    not a hyperparameter), so it is left out.
    """
    return {
        "output_dir": output_dir,
        "learning_rate": config.learning_rate,
        "warmup_steps": config.warmup_ratio,
        "weight_decay": config.weight_decay,
        "lr_scheduler_type": HF_SCHEDULER_NAMES[config.schedule],
        "per_device_train_batch_size": config.batch_size,
        "per_device_eval_batch_size": config.eval_batch_size,
        "max_steps": config.max_steps,
        "max_grad_norm": config.grad_clip if config.grad_clip is not None else 0.0,
        "seed": config.seed,
        "optim": "adamw_torch",
        "eval_strategy": "no",
        "save_strategy": "no",
        "report_to": "none",
    }


def to_hf(chosen: list[Chosen]) -> str:
    return json.dumps(hf_training_arguments(chosen[0].config), indent=2) + "\n"


def to_args(chosen: list[Chosen]) -> str:
    """Flags for a ``run_glue.py``-style script (one line per exported config).

    run_glue reads the task from the hub (``--task_name``); for offline data
    use ``--format script``, which reads the study's data folder.
    """
    lines = []
    for c in chosen:
        cfg = c.config
        flags = {"model_name_or_path": _model_path(cfg.model), "task_name": cfg.task, "do_train": None, "do_eval": None,
                 "max_seq_length": cfg.max_length, **{k: v for k, v in hf_training_arguments(cfg).items()
                                                      if k not in ("eval_strategy", "save_strategy")}}
        parts = []
        for k, v in flags.items():
            parts.append(f"--{k}" if v is None else f"--{k} {shlex.quote(str(v))}")
        lines.append(" ".join(parts))
    return "\n".join(lines) + "\n"


def _data_values(cfg: TrainConfig, label_names: tuple | None) -> dict:
    """The script's data settings: absolute file paths (or the hub), columns and the label mapping.

    ``label_names`` is the study's or sweep's mapping; older studies did not
    record one, so it is read off the data again (the same sorted order).
    """
    from ..data import TASKS, default_text_column, folder_files, load_task, resolve_folder

    source = cfg.source
    info = TASKS.get(cfg.task)
    if label_names is None:
        label_names = load_task(source).label_names
    values = {"TRAIN_FILE": "", "DEV_FILE": "", "HUB": None}
    if source.train is not None:
        values["TRAIN_FILE"], values["DEV_FILE"] = (str(Path(f).resolve()) for f in (source.train, source.dev))
    elif source.path is not None:
        files = folder_files(resolve_folder(source.path))
        values["TRAIN_FILE"], values["DEV_FILE"] = (str(files[split].resolve()) for split in ("train", "dev"))
    else:
        name = source.hub_dataset or ("glue" if info is not None else cfg.task)
        config = source.hub_config or (cfg.task if info is not None and name == "glue" else None)
        values["HUB"] = (name, config, source.train_split,
                         source.dev_split or (info.dev_split if info is not None else "validation"))
    text_keys = source.text_columns or (info.text_keys if info is not None else None)
    if text_keys is None:
        text_keys = (default_text_column(values["TRAIN_FILE"]),) if values["TRAIN_FILE"] else ("sentence",)
    values.update({"TEXT_KEYS": list(text_keys), "LABEL_COLUMN": source.label_column,
                   "LABEL_NAMES": [_plain(x) for x in label_names],
                   "HEADERLESS": list(info.tsv_columns) if info is not None and info.tsv_columns else None,
                   "TRAIN_SIZE": source.train_size})
    return values


def _model_path(model: str) -> str:
    """A local or bundled model as an absolute path; a hub name unchanged."""
    from ..models import resolve

    path = Path(resolve(model))
    return str(path.resolve()) if path.exists() else model


def to_script(chosen: list[Chosen]) -> str:
    """A standalone training script (torch + transformers only) with the values filled in."""
    c = chosen[0]
    cfg = c.config
    template = (resources.files("earlyexit.export") / "script_template.py.txt").read_text()
    values = {
        "MODEL": _model_path(cfg.model), "TASK": cfg.task, **_data_values(cfg, c.label_names),
        "METRIC": cfg.metric, "MAX_EPOCHS": cfg.max_epochs,
        "NUM_LAYERS": cfg.num_layers, "LEARNING_RATE": cfg.learning_rate, "WARMUP_RATIO": cfg.warmup_ratio,
        "WEIGHT_DECAY": cfg.weight_decay, "SCHEDULE": HF_SCHEDULER_NAMES[cfg.schedule], "BATCH_SIZE": cfg.batch_size,
        "MAX_STEPS": cfg.max_steps, "GRAD_CLIP": cfg.grad_clip, "SEED": cfg.seed, "MAX_LENGTH": cfg.max_length,
        "HIDDEN_DROPOUT": cfg.hidden_dropout, "CLASSIFIER_DROPOUT": cfg.classifier_dropout,
        "SOURCE": f"study {c.study!r}, trial {c.trial}, {c.metric} {c.value:.4f}",
    }
    for key, value in values.items():
        template = template.replace("{{" + key + "}}", repr(value))
    return template


def render(chosen: list[Chosen], fmt: str) -> str:
    if fmt not in FORMATS:
        raise ValueError(f"--format must be one of {FORMATS}, but got {fmt!r}.")
    return {"json": to_json, "yaml": to_yaml, "hf": to_hf, "args": to_args, "script": to_script}[fmt](chosen)
