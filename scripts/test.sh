#!/usr/bin/env bash
# Set up everything, then run the whole test suite (root tests included when run as root).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest "$@"
