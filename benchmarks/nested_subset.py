"""Some policies of a nested comparison's JSON, as their own file.

A policy's nested figures do not depend on which other policies run beside it (each is chosen and replayed on
its own; checked on 2026-12-07 for every policy of the files below, held-out sweep by held-out sweep, against
`benchmarks/nested/all-policies16-w1.json`). So where a file holds only policies the full comparison also ran
on the same sweeps and workers, it is taken from that run instead of replaying them again; its protocol says
so (``derived_from``) and keeps no timing of its own. Run from the repository root:

    python benchmarks/nested_subset.py benchmarks/nested/all-policies16-w1.json OUT.json --policies P [P ...]

It refuses a policy the source lacks.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def subset(source: dict, policies: list[str], name: str) -> dict:
    """``source`` (a ``replay --nested --json`` result) restricted to ``policies``."""
    missing = [p for p in policies if p not in source["aggregate"]]
    if missing:
        raise SystemExit(f"{name} has no {', '.join(missing)}: run the nested comparison for them instead.")
    keep = lambda d: {p: v for p, v in d.items() if p in policies}  # noqa: E731
    protocol = {k: v for k, v in source["protocol"].items() if k not in ("seconds", "work_seconds")}
    protocol.update(derived_from=name, policies=list(policies))
    return {"held_out": {s: keep(d) for s, d in source["held_out"].items()},
            "aggregate": keep(source["aggregate"]), "protocol": protocol,
            "candidates": {s: keep(d) for s, d in source.get("candidates", {}).items()}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("source")
    ap.add_argument("out")
    ap.add_argument("--policies", nargs="+", required=True)
    args = ap.parse_args()
    source = json.loads(Path(args.source).read_text())
    out = subset(source, args.policies, Path(args.source).name)
    Path(args.out).write_text(json.dumps(out) + "\n")
    print(f"{args.out}: {', '.join(args.policies)} from {args.source}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
