#!/usr/bin/env bash
# Prepares a folder of wheels from which `make lab` sets up with no network, e.g. twenty classroom laptops
# from a USB stick (`make wheelhouse` runs it; it needs PyPI, and PyTorch's CPU index where pip finds no
# local torch wheel):
#   bash scripts/prepare_offline.sh [PYTHON] [FOLDER]          # defaults: python3, wheelhouse
# The folder holds the package's runtime dependencies (not the dev, test or ray extras), pip and setuptools
# (to upgrade pip and build the editable install offline) and the CPU torch wheel that
# scripts/install_torch.sh installs (never a CUDA build: constraints.txt pins torch). The wheels fit
# PYTHON's version, OS and CPU, which FOLDER/PLATFORM names. For laptops of another kind, run this on a
# machine like them, or name their platform tags and Python (pip download --platform ... --python-version ...;
# pip widens a macOS tag to older releases itself, but a manylinux one only with each tag listed):
#   TARGET_PLATFORM=macosx_11_0_arm64 TARGET_PYTHON=3.12 bash scripts/prepare_offline.sh python3 wheelhouse
#   TARGET_PLATFORM="manylinux_2_28_aarch64 manylinux_2_17_aarch64 manylinux2014_aarch64" TARGET_PYTHON=3.11 ...
set -euo pipefail
PY=${1:-python3}
DEST=${2:-wheelhouse}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
START_S=$(date +%s)

mkdir -p "$DEST"
rm -f "$DEST/PLATFORM"              # written last: set-up only uses a complete folder
printf '*\n' > "$DEST/.gitignore"   # wheels are never committed

TARGET=()
if [ -n "${TARGET_PLATFORM:-}" ]; then
  : "${TARGET_PYTHON:?set TARGET_PYTHON too, e.g. TARGET_PYTHON=3.11}"
  TARGET=(--python-version "$TARGET_PYTHON" --implementation cp)
  for tag in $TARGET_PLATFORM; do TARGET+=(--platform "$tag"); done
fi

bash "$ROOT/scripts/install_torch.sh" "$PY" --download "$DEST" ${TARGET[@]+"${TARGET[@]}"}
# --find-links DEST: the pinned torch resolves to the CPU wheel just saved there, never to PyPI's CUDA build
"$PY" -m pip download -q -d "$DEST" --find-links "$DEST" -c "$ROOT/constraints.txt" --only-binary=:all: \
  ${TARGET[@]+"${TARGET[@]}"} "$ROOT" pip "setuptools>=68"

if ls "$DEST" | grep -qiE '^(nvidia_|triton-)'; then
  echo "$DEST/ holds CUDA wheels (nvidia_*, triton): a CUDA build of torch slipped in; delete the folder and" \
       "check constraints.txt" >&2
  exit 1
fi

"$PY" - "$DEST" "${TARGET_PLATFORM:-}" "${TARGET_PYTHON:-}" <<'PYEOF'
import datetime
import pathlib
import sys
import sysconfig

dest, platform, python = sys.argv[1:4]
if not platform:
    platform, python = sysconfig.get_platform(), "%d.%d" % sys.version_info[:2]
wheels = sorted(pathlib.Path(dest).glob("*.whl"))
size_mb = sum(w.stat().st_size for w in wheels) / 1e6
(pathlib.Path(dest) / "PLATFORM").write_text(
    f"CPython {python} on {platform}\n"
    f"# {len(wheels)} wheels, {size_mb:.0f} MB, prepared {datetime.date.today()} by scripts/prepare_offline.sh.\n"
    "# `make lab` installs from this folder alone (pip install --no-index --find-links) on a machine with\n"
    "# this Python version, OS and CPU; for others, prepare a folder on a machine like them.\n")
print(f"{dest}/: {len(wheels)} wheels, {size_mb:.0f} MB, for CPython {python} on {platform}")
PYEOF
echo "prepared in $(( $(date +%s) - START_S )) s; copy the project with this folder (not .venv) and run make lab"
