#!/usr/bin/env bash
# Regenerate the shapes dataset and retrain the bundled example model from scratch.
#
#   examples/shapes/reproduce.sh [OUT_DIR]
#
# OUT_DIR defaults to examples/shapes (overwriting the shipped model, calib/ and heldout/); give
# another folder to check the result without touching the shipped files.  The 10,000 training
# images (about 75 MB) are written to build/shapes-train and deleted at the end unless
# KEEP_TRAIN=1.  PYTHON picks the interpreter (default: python on PATH).  Runs from the
# repository root so the paths recorded in shapes.keras.train.json are relative and the same on
# every machine.  About 6 minutes on 2 CPU cores, most of it training.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
out="${1:-examples/shapes}"
py="${PYTHON:-python}"
train="build/shapes-train"
mkdir -p "$out"
if [[ "${KEEP_TRAIN:-0}" != 1 ]]; then
    trap 'rm -rf "$train"' EXIT
fi

# Three disjoint seeds: no training image is also a calibration or held-out image.
"$py" -m sqz_mcu.commands.shapes "$train" --n-per-class 2000 --size 64 --seed 1 --force
"$py" -m sqz_mcu.commands.shapes "$out/calib" --n-per-class 13 --size 64 --seed 2 --force
"$py" -m sqz_mcu.commands.shapes "$out/heldout" --n-per-class 40 --size 64 --seed 3 --force

# Same as: sqz-train "$train" -o "$out/shapes.keras" ...
"$py" -m sqz_mcu.commands.train "$train" -o "$out/shapes.keras" \
    --version 1.1 --bypass none --input-size 64 \
    --base-e 64 --incr-e 64 --pct-3x3 0.5 --freq 2 --sr 0.125 --dropout 0.2 \
    --augment flip,rot90 --epochs 20 --patience 5 --lr 3e-3 --batch-size 64 \
    --val-split 0.15 --seed 0 --eval "$out/heldout"
