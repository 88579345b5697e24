#!/usr/bin/env bash
# Deep Compression on real data: the handwritten-digits rows of the accuracy table in
# docs/benchmarks.md (SqueezeNet 1.1 at 32x32, grayscale, 10 classes).
#
#   pip install scikit-learn                      # it ships the digits; nothing is downloaded
#   examples/deep_compression/digits.sh [WORK_DIR]   (default build/digits)
#
# Writes the digits as image folders (digits_folders.py: train 1,201, val 199, heldout 397),
# trains the model with sqz-train on train/, compresses it with the defaults the docs
# recommend for real data (--sparsity auto on val/, --finetune on train/), converts both models
# with sqz-convert's defaults for the emulated ESP32-S3 and Cortex-M4, and validates each on
# both emulated boards with the 397 held-out images (float, int8 and device accuracy,
# bit-exactness, instructions). About 15 minutes on 2 CPU cores; needs the ESP32-S3 bundle and
# QEMU's Cortex-M4 (docs/boards.md).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
work="${1:-build/digits}"
py="${PYTHON:-python}"
mkdir -p "$work"

[[ -d "$work/train" ]] || "$py" examples/deep_compression/digits_folders.py "$work"

train() { "$py" -m sqz_mcu.commands.train "$@"; }
convert() { "$py" -m sqz_mcu.commands.convert "$@"; }
validate() { "$py" -c 'import sys; from sqz_mcu.commands.validate import validate_main; sys.exit(validate_main(sys.argv[1:]))' "$@"; }
compress() { "$py" -m sqz_mcu.commands.compress "$@"; }

augment=shift,brightness,contrast  # no flips: a mirrored digit is another digit, or none
[[ -f "$work/digits.keras" ]] || train "$work/train" -o "$work/digits.keras" --input-size 32 \
    --grayscale --augment "$augment" --epochs 60 --patience 12 --eval "$work/heldout" -q

measure() {  # name model.keras board
    local dir="$work/$1-$3"
    convert "$2" --target "$3" --calib "$work/train" --out "$dir" -q
    echo "== $1 on $3: sqz-validate --sim qemu on $work/heldout"
    validate --sim qemu --model "$dir" --inputs "$work/heldout" --keras "$2" \
        --report "$dir.validate.json" | tee "$dir.validate.txt"
    grep -E "weights, biases|peak RAM|packing" "$dir/report.md"
}

[[ -f "$work/auto.keras" ]] || compress "$work/digits.keras" -o "$work/auto.keras" \
    --sparsity auto --val "$work/val" --finetune "$work/train" --augment "$augment"
for board in esp32s3-qemu mps2-an386; do
    measure uncompressed "$work/digits.keras" "$board"
    measure auto "$work/auto.keras" "$board"
done
