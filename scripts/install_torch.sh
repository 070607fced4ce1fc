#!/usr/bin/env bash
# Installs torch 2.13.0 into the given python's environment without ever pulling a CUDA build
# onto a machine that has no NVIDIA GPU:
#   1. already there -> nothing to do;
#   2. WHEELHOUSE=<folder> (`make lab` where `make wheelhouse` prepared one) -> from that folder alone, no network;
#   3. a local wheel (pip's find-links, e.g. /opt/wheels) -> use it, no index;
#   4. a GPU (nvidia-smi) -> the default index (CUDA build);
#   5. otherwise -> PyTorch's CPU-only index.
# `install_torch.sh PYTHON --download FOLDER [pip download options]` saves the wheel of step 3, else of step 5,
# into FOLDER (scripts/prepare_offline.sh): always the CPU build, whatever GPU this machine has.
set -euo pipefail
PY=${1:-python3}
VERSION=2.13.0
CPU_INDEX=https://download.pytorch.org/whl/cpu
if [ "${2:-}" = "--download" ]; then
  DEST=${3:?usage: install_torch.sh PYTHON --download FOLDER [pip download options]}
  shift 3
  if "$PY" -m pip download -q --no-index --no-deps -d "$DEST" "torch==$VERSION" "$@" 2>/dev/null; then
    echo "torch $VERSION: the local wheel"
  else
    "$PY" -m pip download -q --no-deps -d "$DEST" "torch==$VERSION" --index-url "$CPU_INDEX" "$@"
    echo "torch $VERSION: the CPU build from $CPU_INDEX"
  fi
  exit 0
fi
if "$PY" -c "import torch, sys; sys.exit(0 if torch.__version__.split('+')[0] == '$VERSION' else 1)" 2>/dev/null; then
  exit 0
fi
if [ -n "${WHEELHOUSE:-}" ]; then
  if ! "$PY" -m pip install -q --no-index --find-links "$WHEELHOUSE" "torch==$VERSION"; then
    echo "no torch $VERSION for this Python in $WHEELHOUSE/, which was prepared for" \
         "$(head -n 1 "$WHEELHOUSE/PLATFORM" 2>/dev/null || echo 'an unknown platform'):" \
         "prepare the folder on a machine like this one (make wheelhouse), or move it away to install" \
         "from the network" >&2
    exit 1
  fi
  echo "torch $VERSION installed from $WHEELHOUSE/ (no network)"
elif "$PY" -m pip install -q --no-index --no-deps "torch==$VERSION" 2>/dev/null; then
  # torch itself came from a local wheel; its small dependencies come from the usual index
  "$PY" -m pip install -q "torch==$VERSION"
  echo "torch $VERSION installed from a local wheel"
elif command -v nvidia-smi >/dev/null 2>&1; then
  "$PY" -m pip install -q "torch==$VERSION"
else
  "$PY" -m pip install -q "torch==$VERSION" --index-url "$CPU_INDEX"
fi
