#!/usr/bin/env bash
# Set up a virtual environment with the dev extras and run the test suite.
# Every package comes at the exact version in constraints.txt, so a fresh install is the
# same on every machine and every day.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q -c constraints.txt -e ".[dev,speech]"
.venv/bin/python -m codec.install_check
.venv/bin/ruff check codec data_prep eval tests
.venv/bin/python -m pytest -n 2 "$@"
