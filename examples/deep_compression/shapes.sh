#!/usr/bin/env bash
# Deep Compression of the bundled example (examples/shapes): the accuracy table in docs/benchmarks.md.
#
#   examples/deep_compression/shapes.sh [WORK_DIR]      (default build/deep-compression)
#
# Regenerates the example's training set (seed 1, as reproduce.sh) and a fresh 5,000-image test
# set (seed 4), then for the uncompressed model and for 6- and 4-bit Deep Compression (the
# paper's sparsity), post-training and fine-tuned: sqz-compress, sqz-convert --target host,
# sqz-validate --sim host on heldout/ (float / int8 / device accuracy, bit-exactness), and
# evaluate.py on the fresh set. About 15 minutes on 2 CPU cores, most of it fine-tuning.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
work="${1:-build/deep-compression}"
py="${PYTHON:-python}"
ex=examples/shapes
mkdir -p "$work"

[[ -d "$work/train" ]] || "$py" -m sqz_mcu.commands.shapes "$work/train" --n-per-class 2000 \
    --size 64 --seed 1
[[ -d "$work/fresh" ]] || "$py" -m sqz_mcu.commands.shapes "$work/fresh" --n-per-class 1000 \
    --size 64 --seed 4

convert() { "$py" -m sqz_mcu.commands.convert "$@"; }
validate() { "$py" -c 'import sys; from sqz_mcu.commands.validate import validate_main; sys.exit(validate_main(sys.argv[1:]))' "$@"; }
compress() { "$py" -m sqz_mcu.commands.compress "$@"; }

measure() {  # name model.keras
    convert "$2" --target host --out "$work/$1" --calib "$ex/calib" -q
    echo "== $1: sqz-validate --sim host on $ex/heldout"
    validate --sim host --model "$work/$1" --inputs "$ex/heldout" | tee "$work/$1.validate.txt"
    echo "== $1: evaluate.py on the fresh set"
    "$py" "$ex/evaluate.py" --model "$2" --tflite "$work/$1/model.tflite" --data "$work/fresh" \
        | tee "$work/$1.fresh.txt"
}

measure uncompressed "$ex/shapes.keras"
for bits in 6 4; do
    compress "$ex/shapes.keras" -o "$work/pt$bits.keras" --bits "$bits"
    measure "pt$bits" "$work/pt$bits.keras"
    compress "$ex/shapes.keras" -o "$work/ft$bits.keras" --bits "$bits" \
        --finetune "$work/train" --augment flip,rot90
    measure "ft$bits" "$work/ft$bits.keras"
done
