#!/usr/bin/env bash
# Build the wheel and install it, core only, into clean virtual environments: one with the pip that
# `python3 -m venv` brings (not upgraded) and one with a current pip. Each must run `haystack-hardneg --help`
# and scripts/wheel_check.py (a YAML pipeline with our ranker in a fresh process; no optional package). Then the
# onnx and openvino extras go into the current-pip venv: they must move none of the core's versions, and an export
# to each backend must score as torch does (scripts/wheel_check.py --exports).
# Usage: scripts/wheel_check.sh [BUILD_PYTHON]   (a Python with `build` installed; default .venv/bin/python)
# TORCH / TORCH_INDEX as in the Makefile choose the torch build installed first.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_PYTHON=${1:-.venv/bin/python}
TORCH=${TORCH:-torch==2.13.0}
WORK=build/wheel-check
rm -rf "$WORK"
mkdir -p "$WORK"
"$BUILD_PYTHON" -m build --wheel --outdir "$WORK/dist" . > "$WORK/build.log" 2>&1 || { tail -30 "$WORK/build.log"; exit 1; }
WHEEL=$(ls "$WORK"/dist/*.whl)
echo "wheel check: built $(basename "$WHEEL") ($(du -k "$WHEEL" | cut -f1) KB)"
quiet_pip() {  # pip's warnings about index locations configured on this machine but absent are noise here
  "$@" 2>&1 | { grep -v "^WARNING: Location" || true; }
}
for PIP in bundled current; do
  VENV="$WORK/venv-$PIP"
  python3 -m venv "$VENV"
  if [ "$PIP" = current ]; then quiet_pip "$VENV/bin/python" -m pip install -q --upgrade pip; fi
  echo "wheel check: $("$VENV/bin/python" -m pip --version | cut -d' ' -f1-2) in a clean venv, core only"
  quiet_pip "$VENV/bin/python" -m pip install -q "$TORCH" ${TORCH_INDEX:+--index-url "$TORCH_INDEX"}
  quiet_pip "$VENV/bin/python" -m pip install -q "$WHEEL"
  "$VENV/bin/haystack-hardneg" --help > /dev/null
  echo "wheel check: haystack-hardneg --help exits 0"
  (cd "$WORK" && "../../$VENV/bin/python" ../../scripts/wheel_check.py 2> check.log) || { tail -40 "$WORK/check.log"; exit 1; }
  echo "wheel check: core install $(du -sm "$VENV" | cut -f1) MB ($PIP pip)"
done
# The export extras beside the core: nothing the core installed may change version.
VENV="$WORK/venv-current"
"$VENV/bin/python" -m pip freeze --all > "$WORK/core.txt"
quiet_pip "$VENV/bin/python" -m pip install -q "$WHEEL[onnx,openvino]"
"$VENV/bin/python" -m pip freeze --all > "$WORK/with-extras.txt"
"$VENV/bin/python" - "$WORK/core.txt" "$WORK/with-extras.txt" <<'PY'
import sys
before, after = ({line.split("==")[0].lower(): line.strip() for line in open(p) if "==" in line} for p in sys.argv[1:])
moved = sorted(f"{before[name]} -> {after.get(name, 'removed')}" for name in before if after.get(name) != before[name])
assert not moved, f"the onnx/openvino extras moved core packages: {moved}"
print(f"wheel check: the onnx and openvino extras added {len(after) - len(before)} packages and moved none of the "
      f"core's {len(before)}")
PY
(cd "$WORK" && "../../$VENV/bin/python" ../../scripts/wheel_check.py --exports 2> exports.log) || { tail -40 "$WORK/exports.log"; exit 1; }
echo "wheel check: core + onnx + openvino $(du -sm "$VENV" | cut -f1) MB"
rm -rf "$WORK"/venv-*
