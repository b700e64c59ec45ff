"""Where exported configs come from: a study (by spec file or name and storage) or a sweep folder."""

from __future__ import annotations

from pathlib import Path

from ..names import Scorer
from ..sweeps import MANIFEST
from ._formats import Chosen, chosen_from_study, chosen_from_sweep


def chosen_configs(target: str, *, storage: str | None = None, top: int = 1, scorer: Scorer | None = None,
                   fit_on=(), prefix: int = 100, progress=lambda m: None) -> list[Chosen]:
    """The configs to export from ``target``: a sweep folder (the config a replay would choose, see
    :func:`chosen_from_sweep`), a spec file (its study in its storage, or ``storage``), or a study name
    in ``storage``. Raises ``ValueError`` saying what is missing."""
    if (Path(target) / MANIFEST).exists():
        from ..sweeps import load

        return chosen_from_sweep(load(target), scorer=scorer, fit_on=fit_on, prefix=prefix, progress=progress)
    if scorer is not None or fit_on:
        raise ValueError("--scorer and --fit-on apply to a sweep folder, not to a study.")
    import optuna

    from ..study import load_spec
    from ..study import make_storage

    name = target
    if target.endswith(".toml"):
        spec = load_spec(target)
        name, storage = spec.name, storage or spec.storage
    if storage is None:
        raise ValueError("give --storage (or $EARLYEXIT_STORAGE), or the study's spec file instead of its name.")
    try:
        study = optuna.load_study(study_name=name, storage=make_storage(storage))
    except KeyError:
        raise ValueError(f"no study named {name!r} in {storage}.") from None
    return chosen_from_study(study, top=top)
