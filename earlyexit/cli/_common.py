"""What the commands share: the usage error, the library errors reported like it, and small helpers."""

from __future__ import annotations

import sys


class CLIUsageError(Exception):
    """Bad input from the user: reported in one line, exit status 2."""


LIBRARY_ERRORS = (ValueError, OSError)
"""What the library raises for bad input (a spec, data, a sweep folder, a scorer file, a storage URL:
``SpecError``, ``DataError``, ``SweepFormatError``, ``ScorerFileError`` are ``ValueError``s; a file that
cannot be read is an ``OSError``): caught in one place, :func:`main`, reported like a usage error."""


def _data_source(args):
    """A DataSource from --task/--data/--text-columns/--label-column (a file stands for both splits)."""
    from pathlib import Path

    from ..data import DataSource

    data = None if args.data == "hub" else args.data
    columns = tuple(args.text_columns) if args.text_columns else None
    if data is not None and Path(data).is_file():  # probes read the training split only
        return DataSource(task=args.task, train=data, dev=data, text_columns=columns, label_column=args.label_column)
    return DataSource(task=args.task, path=data, text_columns=columns, label_column=args.label_column)


def _json_float(x):
    """JSON fallback: tensors and other objects as their string form."""
    return str(x)


def load_one_budget(path):
    """A logged sweep for the replay and the fits, whose policies place rungs on one budget: a sweep whose runs
    have budgets of their own (a searched batch size) is refused, naming what replays it instead."""
    from ..sweeps import load

    sweep = load(path)
    if sweep.manifest.get("run_budgets"):
        budgets = sorted(set(sweep.manifest["run_budgets"].values()))
        raise CLIUsageError(f"{path}: its runs have budgets of their own ({budgets} steps: a searched batch size); "
                            "the replay's policies place rungs on one budget. benchmarks/judge_at.py replays "
                            "Optuna pruners on such a sweep.")
    missing = sweep.missing_runs
    if missing:  # a sweep still being logged: its figures are of the runs so far, which a reader should know
        print(f"warning: {path}: {len(sweep.runs)} of {len(sweep.runs) + missing} planned runs logged; it is "
              "replayed as it is (earlyexit sweeps validate PATH --require-complete checks a sweep is complete)",
              file=sys.stderr)
    return sweep
