#!/usr/bin/env bash
# Set up and run convscope's main job: the explorer (`convscope serve`) on http://127.0.0.1:8000/,
# offline, with its bundled default models and sample images. Extra arguments go to `serve`.
EXTRAS="[serve,onnx,plot,osc]" source "$(dirname "$0")/_env.sh"
exec .venv/bin/convscope serve "$@"
