#!/usr/bin/env bash
# Set up a virtual environment with the dev extras and run the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q -e ".[dev]"
.venv/bin/ruff check codec data_prep eval tests
.venv/bin/python -m pytest -n 2 "$@"
