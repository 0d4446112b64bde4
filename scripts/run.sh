#!/usr/bin/env bash
# Set up and run convscope's main job. The explorer (`convscope serve`) does not exist yet, so
# this trains and evaluates the default MNIST convnet (ConvNetJS's demo net) for one epoch.
source "$(dirname "$0")/_env.sh"
echo "convscope: the explorer is not built yet; training and evaluating the default MNIST convnet."
out="runs/mnist-convnetjs-$(date +%Y%m%d-%H%M%S)"
.venv/bin/convscope train --model mnist-convnetjs --data mnist --epochs 1 --out "$out" "$@"
.venv/bin/convscope eval "$out"
