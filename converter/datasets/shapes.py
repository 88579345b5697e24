"""Coloured geometric shapes on cluttered, noisy backgrounds: a procedural classification dataset.

Made so the bundled example needs no download and still is not a toy that one colour statistic
solves: the shape's colour, the background gradient, the blotches, the clutter and the noise are all
drawn independently of the class, so only the outline tells the classes apart.  Distractors are
lines, arcs and small dots: none of them is a small copy of a class shape, so a label is never
ambiguous.

Determinism: image ``i`` of class ``c`` is rendered from its own generator seeded with
``(seed, c, i)``, so it does not depend on how many images are generated or in which order, and
the same seed gives byte-identical PNGs (Pillow writes no timestamps into PNGs).  Shapes are drawn
as masks at 4x resolution and box-filtered down, which anti-aliases their edges like a camera
would instead of leaving staircase edges that a network could key on.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from .. import atomic
from ..errors import InputFileError, UsageError

CLASSES = ("circle", "cross", "square", "star", "triangle")
MIN_SIZE = 16
_SUPERSAMPLE = 4
# Below this RGB distance from the background under it a shape can vanish into the gradient.
_MIN_CONTRAST = 110.0
# Clutter drawn behind and in front of the shape ([low, high) counts) and blotch strength.
_BEHIND = (2, 6)
_IN_FRONT = (0, 3)
_BLOTCH_SIGMA = (5.0, 25.0)
_RADIUS = (0.22, 0.42)  # circumradius as a fraction of the image size


def _check_args(n_per_class: int, size: int, seed: int, classes: Sequence[str]) -> tuple[str, ...]:
    for name, value, minimum in (("n_per_class", n_per_class, 1), ("size", size, MIN_SIZE),
                                 ("seed", seed, 0)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
            raise UsageError(f"shapes dataset: {name} must be an integer >= {minimum}, "
                             f"got {value!r}")
    classes = tuple(classes)
    unknown = [c for c in classes if c not in CLASSES]
    if unknown or not classes or len(set(classes)) != len(classes):
        raise UsageError(f"shapes dataset: classes {list(classes)!r} are invalid; pick distinct "
                         f"names from {', '.join(CLASSES)}")
    return classes


def _polygon(cx: float, cy: float, radii: np.ndarray, angles: np.ndarray) -> list[tuple]:
    pairs = zip(radii, angles, strict=True)
    return [(cx + r * math.cos(a), cy + r * math.sin(a)) for r, a in pairs]


def _shape_points(name: str, cx: float, cy: float, r: float, rng: np.random.Generator):
    rot = rng.uniform(0.0, 2.0 * math.pi)
    if name == "circle":
        # Slightly elliptical, so "perfectly round" is not the cue; still unmistakably a circle.
        aspect = rng.uniform(0.85, 1.0)
        t = np.linspace(0.0, 2.0 * math.pi, 96, endpoint=False)
        x, y = r * np.cos(t), r * aspect * np.sin(t)
        c, s = math.cos(rot), math.sin(rot)
        return [(cx + c * a - s * b, cy + s * a + c * b) for a, b in zip(x, y, strict=True)]
    if name == "square":
        angles = rot + np.arange(4) * (math.pi / 2)
        return _polygon(cx, cy, np.full(4, r), angles)
    if name == "triangle":
        angles = rot + np.arange(3) * (2 * math.pi / 3) + rng.uniform(-0.15, 0.15, 3)
        return _polygon(cx, cy, r * rng.uniform(0.9, 1.05, 3), angles)
    if name == "star":
        points = int(rng.integers(5, 7))
        inner = rng.uniform(0.38, 0.5)
        radii = np.tile([r, r * inner], points)
        return _polygon(cx, cy, radii, rot + np.arange(2 * points) * (math.pi / points))
    if name == "cross":
        w = r * rng.uniform(0.28, 0.4)
        local = [(w, r), (w, w), (r, w), (r, -w), (w, -w), (w, -r),
                 (-w, -r), (-w, -w), (-r, -w), (-r, w), (-w, w), (-w, r)]
        c, s = math.cos(rot), math.sin(rot)
        return [(cx + c * a - s * b, cy + s * a + c * b) for a, b in local]
    raise AssertionError(name)


def _upsample(grid: np.ndarray, size: int) -> np.ndarray:
    # Separable linear interpolation written out: the same float64 operations on every machine.
    n = grid.shape[0]
    pos = np.linspace(0.0, n - 1.0, size)
    lo = np.minimum(np.floor(pos).astype(int), n - 2)
    frac = pos - lo
    weights = np.zeros((size, n))
    weights[np.arange(size), lo] = 1.0 - frac
    weights[np.arange(size), lo + 1] = frac
    return np.einsum("yi,ijc,xj->yxc", weights, grid, weights)


def _background(size: int, rng: np.random.Generator) -> np.ndarray:
    c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    angle = rng.uniform(0.0, 2.0 * math.pi)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    proj = xx * math.cos(angle) + yy * math.sin(angle)
    t = (proj - proj.min()) / max(float(np.ptp(proj)), 1e-9)
    image = c0 + (c1 - c0) * t[..., None]
    blotches = rng.normal(0.0, rng.uniform(*_BLOTCH_SIGMA), (4, 4, 3))
    return image + _upsample(blotches, size)


def _mask(size: int, draw_fn) -> np.ndarray:
    big = Image.new("L", (size * _SUPERSAMPLE, size * _SUPERSAMPLE), 0)
    draw_fn(ImageDraw.Draw(big), float(_SUPERSAMPLE))
    small = big.reduce(_SUPERSAMPLE)
    return np.asarray(small, dtype=np.float64)[..., None] / 255.0


def _paint(image: np.ndarray, alpha: np.ndarray, colour: np.ndarray) -> np.ndarray:
    return image * (1.0 - alpha) + colour * alpha


def _distractor(size: int, rng: np.random.Generator, thin_only: bool):
    kind = "line" if thin_only else ("line", "arc", "dots")[int(rng.integers(3))]
    # Widths and radii are in output pixels; the mask is drawn at _SUPERSAMPLE times that.
    width = float(rng.uniform(0.8, 1.0 if thin_only else 2.0))
    if kind == "line":
        pts = [tuple(rng.uniform(-0.1, 1.1, 2) * size) for _ in range(int(rng.integers(2, 4)))]

        def draw(d, k):
            d.line([(x * k, y * k) for x, y in pts], fill=255, width=max(1, round(width * k)))
    elif kind == "arc":
        r = rng.uniform(0.1, 0.35) * size
        cx, cy = rng.uniform(0, size, 2)
        start = rng.uniform(0, 360)
        # At most 3/4 of a turn: a closed ring would be a circle, i.e. a label.
        span = rng.uniform(60, 270)

        def draw(d, k):
            d.arc([(cx - r) * k, (cy - r) * k, (cx + r) * k, (cy + r) * k], start, start + span,
                  fill=255, width=max(1, round(width * k)))
    else:
        centres = rng.uniform(0, size, (int(rng.integers(3, 9)), 2))
        radii = rng.uniform(0.5, 1.6, len(centres))

        def draw(d, k):
            for (x, y), r in zip(centres, radii, strict=True):
                d.ellipse([(x - r) * k, (y - r) * k, (x + r) * k, (y + r) * k], fill=255)
    return draw


def _shape_colour(image: np.ndarray, alpha: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    under = (image * alpha).sum(axis=(0, 1)) / max(float(alpha.sum()), 1e-9)
    for _ in range(64):
        colour = rng.uniform(0, 255, 3)
        if np.linalg.norm(colour - under) >= _MIN_CONTRAST:
            return colour
    # Rare (mid-grey backgrounds): fall back to whichever of black and white stands out more.
    black, white = np.zeros(3), np.full(3, 255.0)
    return black if np.linalg.norm(under) > np.linalg.norm(white - under) else white


def render(class_name: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """One (size, size, 3) uint8 image of ``class_name``, all randomness drawn from ``rng``."""
    image = _background(size, rng)
    for _ in range(int(rng.integers(*_BEHIND))):
        image = _paint(image, _mask(size, _distractor(size, rng, False)),
                       rng.uniform(0, 255, 3))
    r = rng.uniform(*_RADIUS) * size
    # The centre may sit a little closer to the border than r, so a tip can be cut off.
    margin = 0.85 * r
    cx, cy = rng.uniform(margin, size - margin, 2)
    points = _shape_points(class_name, cx, cy, r, rng)
    alpha = _mask(size, lambda d, k: d.polygon([(x * k, y * k) for x, y in points], fill=255))
    image = _paint(image, alpha, _shape_colour(image, alpha, rng))
    for _ in range(int(rng.integers(*_IN_FRONT))):
        image = _paint(image, _mask(size, _distractor(size, rng, True)), rng.uniform(0, 255, 3))
    sigma = rng.uniform(1.5, 5.0)
    # Mostly luminance noise, like a sensor; it also keeps the PNGs small.
    noise = rng.normal(0.0, sigma, (size, size, 1)) + rng.normal(0.0, sigma * 0.25, (size, size, 3))
    return np.clip(np.rint(image + noise), 0, 255).astype(np.uint8)


def image_rng(seed: int, class_index: int, index: int) -> np.random.Generator:
    """The generator for image ``index`` of class ``class_index`` (index into :data:`CLASSES`)."""
    return np.random.default_rng([int(seed), int(class_index), int(index)])


def generate_arrays(n_per_class: int, size: int = 64, seed: int = 0,
                    classes: Sequence[str] = CLASSES) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(images uint8 (N, size, size, 3), labels int64 (N,), class names), in memory.

    Ordered by class (in the order given), then index.  Pixels are exactly those :func:`generate`
    writes for the same arguments.
    """
    classes = _check_args(n_per_class, size, seed, classes)
    images = np.empty((len(classes) * n_per_class, size, size, 3), dtype=np.uint8)
    labels = np.repeat(np.arange(len(classes), dtype=np.int64), n_per_class)
    for label, name in enumerate(classes):
        # Seeded by the class's index in CLASSES, so a subset of classes gives the same images.
        class_index = CLASSES.index(name)
        for i in range(n_per_class):
            images[label * n_per_class + i] = render(name, size, image_rng(seed, class_index, i))
    return images, labels, list(classes)


def generate(out_dir: str | Path, n_per_class: int, size: int = 64, seed: int = 0,
             classes: Sequence[str] = CLASSES, overwrite: bool = False) -> list[Path]:
    """Write ``out_dir/<class>/<class>_<index>.png`` for every class; returns the paths written.

    Refuses a non-empty ``out_dir`` unless ``overwrite``, so a smaller run cannot leave a mix of
    old and new images behind; with ``overwrite`` the class folders are emptied of PNGs first.
    """
    classes = _check_args(n_per_class, size, seed, classes)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputFileError(f"shapes dataset: {out} is a file; give a folder to write into")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise UsageError(f"shapes dataset: {out} exists and is not empty; give a new folder or "
                         "pass overwrite=True (--force on the command line)")
    written = []
    for name in classes:
        folder = out / name
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("*.png"):
            old.unlink()
        class_index = CLASSES.index(name)
        for i in range(n_per_class):
            pixels = render(name, size, image_rng(seed, class_index, i))
            path = folder / f"{name}_{i:05d}.png"
            with atomic.replacing(path, bulk=True) as tmp:
                Image.fromarray(pixels, "RGB").save(tmp, format="PNG", optimize=True)
            written.append(path)
    return written


def _main(argv: Sequence[str] | None) -> int:
    from ..cli import _Parser

    p = _Parser(prog=f"python -m {__package__}.shapes",
                description="Write the procedural shapes dataset: one subfolder per class.")
    p.add_argument("out", type=Path, help="folder to create")
    p.add_argument("--n-per-class", type=int, default=100, help="images per class (default 100)")
    p.add_argument("--size", type=int, default=64, help="image height and width (default 64)")
    p.add_argument("--seed", type=int, default=0, help="dataset seed (default 0)")
    p.add_argument("--classes", default=",".join(CLASSES),
                   help=f"comma-separated subset of {','.join(CLASSES)} (default all)")
    p.add_argument("--force", action="store_true", help="write into a non-empty folder")
    args = p.parse_args(argv)
    classes = [c.strip() for c in args.classes.split(",") if c.strip()]
    paths = generate(args.out, args.n_per_class, args.size, args.seed, classes, args.force)
    total = sum(path.stat().st_size for path in paths)
    print(f"wrote {len(paths)} images ({total / 1024:.0f} KiB) in {len(classes)} class folders "
          f"under {args.out}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    from ..cli import run_cli

    return run_cli(_main, argv)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
