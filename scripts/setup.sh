#!/usr/bin/env bash
# Create (or update) the project's virtual environment in .venv with RaGAN installed from this checkout.
# Usage: bash scripts/setup.sh [EXTRAS]      e.g. bash scripts/setup.sh test
# PYTHON picks the interpreter (default python3; RaGAN supports Python 3.10 to 3.12).
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(not ((3, 10) <= sys.version_info[:2] <= (3, 12)))'; then
    echo "RaGAN needs Python 3.10 to 3.12; '$python' is $("$python" --version 2>&1). Set PYTHON=python3.12 or similar." >&2
    exit 2
fi
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
extras=${1:+[$1]}
.venv/bin/python -m pip install --quiet -e ".${extras}"
