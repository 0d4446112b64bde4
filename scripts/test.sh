#!/usr/bin/env bash
# Set up and run the test suite (lint + pytest). Real-data tests run when CONVSCOPE_DATA points
# at a folder with the official MNIST / CIFAR-10 files, and are skipped (with the reason) otherwise.
EXTRAS="[test]" source "$(dirname "$0")/_env.sh"
.venv/bin/ruff check .
.venv/bin/python -m pytest -q -rs "$@"
