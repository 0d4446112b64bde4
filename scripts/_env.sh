# Sourced by run.sh and test.sh: create .venv (Python 3.11) and install convscope into it, with
# the extras in $EXTRAS (e.g. "[serve,plot]"; none: the core only).
# pyproject.toml declares torch as a range; constraints.txt pins the version CI tests (2.13.0),
# so a pip that finds its CPU build (as this machine's does, in /opt/wheels) installs that one.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=$(command -v python3.11 || command -v python3)
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -c constraints.txt -e ".${EXTRAS:-}"
