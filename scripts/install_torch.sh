#!/usr/bin/env bash
# Installs torch 2.13.0 into the given python's environment without ever pulling a CUDA build
# onto a machine that has no NVIDIA GPU:
#   1. already there -> nothing to do;
#   2. a local wheel (pip's find-links, e.g. /opt/wheels) -> use it, no index;
#   3. a GPU (nvidia-smi) -> the default index (CUDA build);
#   4. otherwise -> PyTorch's CPU-only index.
set -euo pipefail
PY=${1:-python3}
VERSION=2.13.0
if "$PY" -c "import torch, sys; sys.exit(0 if torch.__version__.split('+')[0] == '$VERSION' else 1)" 2>/dev/null; then
  exit 0
fi
if "$PY" -m pip install -q --no-index --no-deps "torch==$VERSION" 2>/dev/null; then
  # torch itself came from a local wheel; its small dependencies come from the usual index
  "$PY" -m pip install -q "torch==$VERSION"
  echo "torch $VERSION installed from a local wheel"
elif command -v nvidia-smi >/dev/null 2>&1; then
  "$PY" -m pip install -q "torch==$VERSION"
else
  "$PY" -m pip install -q "torch==$VERSION" --index-url https://download.pytorch.org/whl/cpu
fi
