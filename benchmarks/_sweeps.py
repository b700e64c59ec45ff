"""What the look-ahead's benchmarks read: the complete sweeps of ``studies/``, never the look-ahead's clean test.

One place for the rule, so that the benchmarks that measure the look-ahead's predictor (neighbours, study refit,
frontier, predictor features) leave out the same task. Imported by those scripts, run from the repository root
as ``python benchmarks/<name>.py`` (their folder is then on the path).
"""

from earlyexit.sweeps import find_sweeps, load

CLEAN_TEST = ("agnews",)
"""The look-ahead's clean test (``studies/agnews-wide48``): no benchmark that shapes the look-ahead reads it."""


def is_clean_test(sweep) -> bool:
    return str(sweep.manifest.get("task")) in CLEAN_TEST


def training_sweeps() -> list:
    """Every complete sweep of ``studies/`` but the clean test's, in the catalogue's order."""
    sweeps = [load(p) for p in find_sweeps(["studies"]) if (p / "runs.csv").exists()]
    return [sw for sw in sweeps if sw.missing_runs <= 0 and not is_clean_test(sw)]


def held_out_by_task():
    """For each task of :func:`training_sweeps`, in order: ``(task, the other tasks' held sets, {sweep name: its held
    sets})``, what a benchmark fits on and what it replays, each task left out in turn."""
    from earlyexit.replay._engine import held_sets

    sweeps = training_sweeps()
    sets = {sw.name: held_sets(sw) for sw in sweeps}
    tasks = {sw.name: str(sw.manifest.get("task")) for sw in sweeps}
    for task in sorted(set(tasks.values())):
        train = [h for n, hs in sets.items() if tasks[n] != task for h in hs]
        yield task, train, {n: sets[n] for n in sorted(sets) if tasks[n] == task}
