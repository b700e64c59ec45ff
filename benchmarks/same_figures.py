"""Check that a refactoring left the nested figures as they were: compare a fresh nested replay's JSON with the
committed ones, policy by policy and held-out sweep by held-out sweep, every figure but the run time.

    earlyexit replay --leave-one-task-out $(ls -d studies/*/ | grep -v agnews) --nested \\
        --policies lookahead_study default median --jobs 2 --json > /tmp/now.json
    python benchmarks/same_figures.py /tmp/now.json benchmarks/nested/lookahead-study16-w1.json \\
        benchmarks/nested/lookahead16-w1-first.json

Each policy of the fresh file is compared with the first committed file that holds it. Exits 1 on any
difference, and prints each one.
"""

import json
import sys


def differences(now: dict, then: dict, policy: str) -> list[str]:
    out = []
    pairs = [("aggregate", now["aggregate"][policy]["nested"], then["aggregate"][policy]["nested"])]
    pairs += [(s, now["held_out"][s][policy]["nested"], then["held_out"].get(s, {}).get(policy, {}).get("nested", {}))
              for s in now["held_out"]]
    for where, a, b in pairs:
        out += [f"{policy} {where} {k}: {a[k]!r} now, {b.get(k)!r} before" for k in a
                if k != "seconds" and a[k] != b.get(k)]
    return out


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__)
        return 2
    now = json.loads(open(argv[0]).read())
    committed = [(path, json.loads(open(path).read())) for path in argv[1:]]
    found = []
    for policy in now["aggregate"]:
        source = next(((p, d) for p, d in committed if policy in d["aggregate"]), None)
        if source is None:
            print(f"{policy}: in no committed file")
            continue
        diff = differences(now, source[1], policy)
        print(f"{policy}: {'identical' if not diff else f'{len(diff)} differences'} ({source[0]}, "
              f"{len(now['held_out'])} held-out sweeps)")
        found += diff
    print("\n".join(found))
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
