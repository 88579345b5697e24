"""Real handwritten digits as labelled image folders, for the compression accuracy table.

    pip install scikit-learn
    python examples/deep_compression/digits_folders.py OUT_DIR

The data is the UCI optical recognition of handwritten digits set that ships inside
scikit-learn (``sklearn.datasets.load_digits``: 1,797 scans of 43 writers, 8x8 pixels of 0..16;
nothing is downloaded). Each scan is scaled to 0..255 and resized to 32x32 (Pillow bilinear),
written as a grayscale PNG into OUT_DIR/<split>/<digit>/, split per class with a fixed seed:

- ``train``: 1,201 images, for sqz-train and sqz-compress --finetune;
- ``val``: 199 images no training sees, for sqz-compress --sparsity auto --val;
- ``heldout``: the other 397, used by no choice at all: the accuracy reported.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

SIZE = 32
SPLITS = (("train", 1200), ("val", 200))  # the rest is heldout
SEED = 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("out", type=Path, help="folder to write train/, val/ and heldout/ into")
    args = p.parse_args()
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        sys.exit("scikit-learn is not installed: pip install scikit-learn (it ships the digits)")
    from PIL import Image

    digits = load_digits()
    images = np.clip(np.rint(digits.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)
    labels = digits.target
    rng = np.random.default_rng(SEED)
    order = rng.permutation(len(labels))
    # Per class, in proportion: the first share of each class's shuffled images to train,
    # the next to val, the rest held out.
    split_of = np.empty(len(labels), dtype=object)
    total = len(labels)
    for c in np.unique(labels):
        idx = order[labels[order] == c]
        start = 0
        for name, n in SPLITS:
            k = round(n * len(idx) / total)
            split_of[idx[start:start + k]] = name
            start += k
        split_of[idx[start:]] = "heldout"
    counts: dict[str, int] = {}
    for i in range(total):
        folder = args.out / split_of[i] / str(labels[i])
        folder.mkdir(parents=True, exist_ok=True)
        img = Image.fromarray(images[i], mode="L").resize((SIZE, SIZE), Image.BILINEAR)
        img.save(folder / f"{i:04d}.png")
        counts[split_of[i]] = counts.get(split_of[i], 0) + 1
    print(", ".join(f"{k}: {v}" for k, v in sorted(counts.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
