"""The ``earlyexit`` command line: a thin layer over the library, one module per command.

Each command is a small class with ``add_arguments(parser)`` and ``take_action(args) -> int``; its help is its
docstring. A bad argument or input prints one line and exits with status 2 (:func:`main`, the one error path);
``--debug`` shows tracebacks.
"""

from __future__ import annotations

import argparse
import sys
import warnings

from ._common import LIBRARY_ERRORS, CLIUsageError
from .bench import BenchCommand
from .export import ExportCommand
from .fit import FitCommand
from .probe import ProbeCommand
from .replay import ReplayCommand
from .run import RunCommand
from .scorer import ScorerCommand
from .sweep import SweepCommand
from .sweeps import SweepsCommand

_COMMANDS = {
    "fit": FitCommand(),
    "scorer": ScorerCommand(),
    "replay": ReplayCommand(),
    "export": ExportCommand(),
    "sweeps": SweepsCommand(),
    "sweep": SweepCommand(),
    "run": RunCommand(),
    "probe": ProbeCommand(),
    "bench": BenchCommand(),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="earlyexit", description=__import__("earlyexit").__doc__)
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    parser.add_argument("--version", action="version", version=f"earlyexit {__import__('earlyexit').__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, command in _COMMANDS.items():
        p = sub.add_parser(name, help=command.__doc__.splitlines()[0], description=command.__doc__)
        command.add_arguments(p)
        p.set_defaults(_command=command, _parser=p)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.debug:
        # Optuna marks the heartbeat, retry and Wilcoxon APIs we rely on as experimental, once per use;
        # that is for library authors, not for someone reading a study's progress.
        warnings.filterwarnings("ignore", message=r".*(is experimental|an experimental feature)")
    try:
        return args._command.take_action(args)
    except (CLIUsageError, *LIBRARY_ERRORS) as exc:
        if args.debug:
            raise
        print(f"earlyexit {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
