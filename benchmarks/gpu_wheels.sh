#!/usr/bin/env bash
# Download, into .whl/ (ignored by git), the wheels that the GPU machine's image lacks for benchmarks/gpu_check.sh:
# Optuna and what it needs beyond that image (Python 3.12, x86_64). Run once here, then carry .whl in the call.
#   bash benchmarks/gpu_wheels.sh
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx "/.whl/" .git/info/exclude 2>/dev/null || { mkdir -p .git/info; echo "/.whl/" >> .git/info/exclude; }
for pkg in optuna==5.1.0 alembic==1.20.1 SQLAlchemy==2.1.9 Mako==1.4.3 colorlog==6.12.0; do
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d .whl "$pkg"
done
ls -l .whl
