#!/usr/bin/env bash
# CI step: build the sdist and wheel (python -m build), install the wheel CORE ONLY into a fresh
# venv (torch through constraints.txt, so this machine's CPU build), and use it as a new user
# would, outside the source tree: --version, train 1 epoch on a generated image folder, eval,
# predict, check that the commands needing an extra name it in one line; then add [serve,plot]:
# the explorer answers and a figure draws.
# Usage: bash scripts/wheel_smoke.sh [PYTHON]   (PYTHON runs `build`; default .venv/bin/python)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD_PY=${1:-.venv/bin/python}
NEW_PY=$(command -v python3.11 || command -v python3)
START=$SECONDS
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
step() { printf '[wheel smoke %3ds] %s\n' $((SECONDS - START)) "$*"; }
fail() { echo "wheel smoke FAILED: $*" >&2; exit 1; }

step "python -m build"
"$BUILD_PY" -m build --outdir "$WORK/dist" . >"$WORK/build.log" 2>&1 \
    || { cat "$WORK/build.log" >&2; fail "python -m build"; }
WHEEL=$(ls "$WORK"/dist/convscope-*.whl)
ls "$WORK"/dist/convscope-*.tar.gz >/dev/null || fail "no sdist"

step "fresh venv, pip install $(basename "$WHEEL") (core only)"
"$NEW_PY" -m venv "$WORK/venv"
"$WORK/venv/bin/python" -m pip install --quiet -c constraints.txt "$WHEEL" >"$WORK/pip.log" 2>&1 \
    || { cat "$WORK/pip.log" >&2; fail "pip install"; }
BIN=$WORK/venv/bin
for module in fastapi starlette pydantic uvicorn onnx matplotlib pythonosc cv2; do
    if "$BIN/python" -c "import $module" 2>/dev/null; then fail "$module came with the core"; fi
done

# Outside the source tree, so that only the installed package can be imported.
cd "$WORK"
export CONVSCOPE_DATA=$WORK/data CONVSCOPE_CACHE=$WORK/cache
unset PYTHONPATH
step "convscope --version"
VERSION=$("$BIN/convscope" --version)
EXPECTED=$(basename "$WHEEL" | cut -d- -f2)
[[ "$VERSION" == *"$EXPECTED"* ]] || fail "--version said '$VERSION', the wheel is $EXPECTED"
ls "$BIN"/../lib/python*/site-packages/convscope-*.dist-info/licenses/NOTICE >/dev/null \
    || fail "NOTICE not installed"

step "train 1 epoch on a generated image folder, eval, predict"
"$BIN/python" - <<'EOF'
import json
from pathlib import Path

import numpy as np
from PIL import Image

rng = np.random.default_rng(0)
for split, n in (("train", 40), ("test", 10)):
    for k, name in enumerate(("left", "right")):
        folder = Path("pets", split, name)
        folder.mkdir(parents=True)
        for i in range(n):
            pixels = rng.integers(0, 90, (12, 16, 3), dtype=np.uint8)
            pixels[:, 8 * k:8 * k + 8] += 150
            Image.fromarray(pixels).save(folder / f"{i}.png")
Path("net.json").write_text(json.dumps({"layers": [
    {"type": "input", "sx": 16, "sy": 12, "depth": 3},
    {"type": "conv", "sx": 3, "filters": 4, "pad": 1, "activation": "relu"},
    {"type": "pool", "sx": 2},
    {"type": "softmax", "num_classes": 2}]}))
EOF
"$BIN/convscope" train --model net.json --data pets --epochs 1 --batch-size 8 --out run \
    >train.log 2>&1 || { cat train.log >&2; fail "convscope train"; }
[ -f run/model.safetensors ] && [ -f run/results.json ] || fail "train wrote no model/results"
"$BIN/convscope" eval run --json >eval.json || fail "convscope eval"
"$BIN/python" -c "
import json; test = json.load(open('eval.json'))
assert test['total'] == 20 and 0 <= test['accuracy'] <= 1, test" \
    || fail "eval did not score the 20 test pictures"
"$BIN/convscope" predict run pets/test/left/0.png >predict.txt || fail "convscope predict"
grep -qE "left|right" predict.txt || fail "predict named no class: $(cat predict.txt)"
"$BIN/convscope" summary mnist-convnetjs >summary.txt || fail "convscope summary"
grep -q "24x24x8" summary.txt || fail "summary of a bundled model: $(cat summary.txt)"

step "commands that need an extra name it"
expect_extra() {  # expect_extra EXTRA COMMAND...: exit 2 and one line naming convscope[EXTRA]
    local extra=$1; shift
    local code=0
    "$@" >out.txt 2>err.txt || code=$?
    [ "$code" = 2 ] || { cat err.txt >&2; fail "'$*' exited $code, not 2"; }
    [ "$(wc -l <err.txt)" = 1 ] || { cat err.txt >&2; fail "'$*' said more than one line"; }
    grep -qF "pip install \"convscope[$extra]\"" err.txt || { cat err.txt >&2; fail "'$*'"; }
}
expect_extra serve "$BIN/convscope" serve --no-browser --port 0
expect_extra onnx "$BIN/convscope" export run --format onnx
step "pip install the wheel with [serve,plot]: the explorer answers, figures draw"
"$BIN/python" -m pip install --quiet -c "$ROOT/constraints.txt" "$WHEEL[serve,plot]" \
    >pip-extras.log 2>&1 || { cat pip-extras.log >&2; fail "pip install [serve,plot]"; }
"$BIN/convscope" serve run --no-browser --port 0 >serve.log 2>&1 &
SERVER=$!
for _ in $(seq 120); do
    grep -q "^convscope explorer: http" serve.log && break
    kill -0 "$SERVER" 2>/dev/null || break
    sleep 0.5
done
URL=$(sed -n 's/^convscope explorer: //p' serve.log)
ANSWER=0
"$BIN/python" - "$URL" <<'PYEOF' || ANSWER=$?
import json, sys, urllib.request

url = sys.argv[1]
assert b"<html" in urllib.request.urlopen(url, timeout=30).read().lower()
models = json.load(urllib.request.urlopen(url + "api/models", timeout=30))["models"]
assert "run-run" in [m["id"] for m in models], [m["id"] for m in models]
PYEOF
kill "$SERVER" 2>/dev/null || true
wait "$SERVER" 2>/dev/null || true
[ "$ANSWER" = 0 ] && [ -n "$URL" ] || { cat serve.log >&2; fail "convscope serve did not answer"; }
"$BIN/python" -c "
from convscope import load_run, plot
plot.save(plot.confusion(load_run('run')), 'confusion.png')" || fail "convscope.plot"
[ -s confusion.png ] || fail "no confusion.png"
step "passed: $(basename "$WHEEL")"
