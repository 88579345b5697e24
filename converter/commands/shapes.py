"""Writes the procedural shapes dataset (converter.datasets.shapes), one subfolder per class: the
bundled example's training, calibration and held-out images (examples/shapes/reproduce.sh)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from ..datasets import shapes
from .common import Parser, run_cli


def _parser() -> Parser:
    p = Parser(prog="python -m converter.commands.shapes",
                description="Write the procedural shapes dataset: one subfolder per class.")
    p.add_argument("out", type=Path, help="folder to create")
    p.add_argument("--n-per-class", type=int, default=100, help="images per class (default 100)")
    p.add_argument("--size", type=int, default=64, help="image height and width (default 64)")
    p.add_argument("--seed", type=int, default=0, help="dataset seed (default 0)")
    p.add_argument("--classes", default=",".join(shapes.CLASSES),
                   help=f"comma-separated subset of {','.join(shapes.CLASSES)} (default all)")
    p.add_argument("--force", action="store_true", help="write into a non-empty folder")
    return p


def _main(argv: Sequence[str] | None) -> int:
    args = _parser().parse_args(argv)
    classes = [c.strip() for c in args.classes.split(",") if c.strip()]
    paths = shapes.generate(args.out, args.n_per_class, args.size, args.seed, classes, args.force)
    total = sum(path.stat().st_size for path in paths)
    print(f"wrote {len(paths)} images ({total / 1024:.0f} KiB) in {len(classes)} class folders "
          f"under {args.out}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(_main, argv)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
