#!/bin/bash
# Build the matching-node release bundle the C5n bootstrap installs:
#   meridian/          the shared layer's package (wire protocol, domain model)
#   meridian_hotpath/  the matching node, its native parts as generated C (the host compiles them)
#   setup_native.py    builds those with gcc on the host (no Cython needed there)
#   deploy/            systemd units, the CloudWatch bridge, requirements-node.txt, agent config
# Usage: hotpath/deploy/build_bundle.sh [output.tar.gz]   (default dist/meridian-node-<git sha>.tar.gz)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
VERSION=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo local)
OUT=${1:-$ROOT/dist/meridian-node-$VERSION.tar.gz}
STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
# The generated C of the native parts (Cython runs here, in the development environment).
"${PYTHON:-$ROOT/.venv/bin/python}" "$ROOT/hotpath/setup_native.py" --quiet build_ext --inplace
cp -R "$ROOT/layers/shared/meridian" "$STAGE/meridian"
cp -R "$ROOT/hotpath/meridian_hotpath" "$STAGE/meridian_hotpath"
cp "$ROOT/hotpath/setup_native.py" "$STAGE/setup_native.py"
find "$STAGE" -name '*.so' -delete  # built for this machine: the host builds its own
mkdir "$STAGE/deploy"
cp "$ROOT"/hotpath/deploy/*.service "$ROOT"/hotpath/deploy/*.timer "$ROOT"/hotpath/deploy/*.json \
   "$ROOT"/hotpath/deploy/cloudwatch_bridge.py "$ROOT"/hotpath/deploy/requirements-node.txt "$STAGE/deploy/"
find "$STAGE" -name __pycache__ -prune -exec rm -rf {} +
mkdir -p "$(dirname "$OUT")"
tar -czf "$OUT" -C "$STAGE" .
echo "$OUT"
