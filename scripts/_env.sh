# Sourced by run.sh and test.sh: create .venv (Python 3.11) and install convscope into it.
# torch is pinned to 2.13.0 in pyproject.toml (the CPU build); nothing here pulls a CUDA build.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=$(command -v python3.11 || command -v python3)
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".${EXTRAS:-}"
