"""How an image file becomes a float32 HWC model input, shared by calibration, validation, training.

One definition on purpose: if calibration and validation preprocess differently, the int8 scales
are fitted to the wrong distribution and accuracy drops with no error anywhere.

Determinism: Pillow decodes and resizes with ``Image.Resampling.BILINEAR`` (Pillow's bilinear
filter widens its support when downscaling, i.e. it antialiases, like torchvision's PIL path).
All arithmetic after decoding is float32 in a fixed order, ``((pixel * scale) - mean) / std``,
so the same file and Pillow version always give the same bits.  EXIF orientation is ignored,
like torchvision and Keras, so results do not depend on metadata.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..errors import InputFileError, UsageError

RESIZE_MODES = ("resize", "short_side_crop")
CHANNEL_ORDERS = ("rgb", "bgr")
COLOR_MODES = ("rgb", "grayscale")
IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".ppm", ".pgm", ".pnm", ".tif", ".tiff"}
)
RESAMPLE = Image.Resampling.BILINEAR


def _is_int(value: Any) -> bool:
    # numbers.Integral so numpy integers from parsed configs are accepted; bool is not a size.
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _size_pair(size: Any) -> tuple[int, int]:
    if _is_int(size):
        size = (size, size)
    if (
        not isinstance(size, tuple | list)
        or len(size) != 2
        or not all(_is_int(v) and v > 0 for v in size)
    ):
        raise UsageError(
            f"preprocessing size {size!r} is invalid; give (height, width) as two positive "
            "integers, or one integer for a square input"
        )
    return (int(size[0]), int(size[1]))


@dataclass(frozen=True)
class Preprocessing:
    """Exactly how an image file becomes a float32 (H, W, C) model input.

    ``resize_mode``: ``"resize"`` stretches the image to ``size``; ``"short_side_crop"`` resizes
    the short side to ``resize_short`` (keeping the aspect ratio, long side truncated as
    torchvision does) and then center-crops ``size``.  Then ``x = (pixel * scale - mean) / std``
    per channel, with channels in ``channel_order`` (ignored for grayscale).
    """

    size: tuple[int, int]
    resize_mode: str = "resize"
    resize_short: int | None = None
    scale: float = 1.0 / 255.0
    mean: tuple[float, ...] = (0.0, 0.0, 0.0)
    std: tuple[float, ...] = (1.0, 1.0, 1.0)
    channel_order: str = "rgb"
    color_mode: str = "rgb"

    def __post_init__(self) -> None:
        object.__setattr__(self, "size", _size_pair(self.size))
        if self.resize_mode not in RESIZE_MODES:
            raise UsageError(
                f"resize mode {self.resize_mode!r} is not supported; use one of "
                f"{', '.join(RESIZE_MODES)}"
            )
        if self.channel_order not in CHANNEL_ORDERS:
            raise UsageError(
                f"channel order {self.channel_order!r} is not supported; use one of "
                f"{', '.join(CHANNEL_ORDERS)}"
            )
        if self.color_mode not in COLOR_MODES:
            raise UsageError(
                f"color mode {self.color_mode!r} is not supported; use one of "
                f"{', '.join(COLOR_MODES)}"
            )
        if self.resize_mode == "short_side_crop":
            if not _is_int(self.resize_short) or self.resize_short < max(self.size):
                raise UsageError(
                    f"resize_short {self.resize_short!r} is invalid for short_side_crop with a "
                    f"{self.size[0]}x{self.size[1]} crop; give an integer of at least "
                    f"{max(self.size)} (ImageNet uses 256 for 224)"
                )
        elif self.resize_short is not None:
            raise UsageError(
                "resize_short is only used with resize mode 'short_side_crop'; drop it or "
                "set resize_mode='short_side_crop'"
            )
        if not _is_number(self.scale) or self.scale <= 0:
            raise UsageError(f"preprocessing scale must be a positive number, got {self.scale!r}")
        object.__setattr__(self, "scale", float(self.scale))
        channels = self.channels
        for name in ("mean", "std"):
            values = getattr(self, name)
            if (
                not isinstance(values, Sequence)
                or isinstance(values, str)
                or len(values) != channels
                or not all(_is_number(v) for v in values)
            ):
                raise UsageError(
                    f"preprocessing {name} {values!r} is invalid; give {channels} number(s), one "
                    f"per channel of a {self.color_mode} input"
                )
            object.__setattr__(self, name, tuple(float(v) for v in values))
        if any(v <= 0 for v in self.std):
            raise UsageError(f"preprocessing std {self.std!r} must be positive in every channel")

    @property
    def channels(self) -> int:
        return 1 if self.color_mode == "grayscale" else 3

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (*self.size, self.channels)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict (lists instead of tuples) that :meth:`from_dict` reads back."""
        return {
            "size": list(self.size),
            "resize_mode": self.resize_mode,
            "resize_short": self.resize_short,
            "scale": self.scale,
            "mean": list(self.mean),
            "std": list(self.std),
            "channel_order": self.channel_order,
            "color_mode": self.color_mode,
        }

    @classmethod
    def from_dict(cls, data: Any) -> Preprocessing:
        if not isinstance(data, dict):
            raise UsageError(
                f"preprocessing must be a JSON object, got {type(data).__name__}; see "
                "Preprocessing.to_dict() for the layout"
            )
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - fields)
        if unknown:
            raise UsageError(
                f"unknown preprocessing key(s) {', '.join(unknown)}; valid keys: "
                f"{', '.join(sorted(fields))}"
            )
        if "size" not in data:
            raise UsageError("preprocessing needs a 'size' entry: [height, width]")
        return cls(**data)

    @classmethod
    def imagenet(cls, size: int | tuple[int, int] = 224) -> Preprocessing:
        """torchvision's ImageNet evaluation transform: short side 256 (for 224), center crop."""
        height, width = _size_pair(size)
        # Keep the standard 256/224 ratio for other crop sizes.
        resize_short = int(max(height, width) * 256 / 224)
        return cls(
            size=(height, width),
            resize_mode="short_side_crop",
            resize_short=resize_short,
            scale=1.0 / 255.0,
            mean=(0.485, 0.456, 0.406),
            std=(0.229, 0.224, 0.225),
        )

    @classmethod
    def simple(cls, size: int | tuple[int, int], channels: int = 3) -> Preprocessing:
        """Plain resize to ``size``, scale to [0, 1], no normalisation; 1 or 3 channels."""
        if channels not in (1, 3):
            raise UsageError(
                f"simple preprocessing supports 1 (grayscale) or 3 (RGB) channels, got {channels!r}"
            )
        return cls(
            size=size,
            resize_mode="resize",
            scale=1.0 / 255.0,
            mean=(0.0,) * channels,
            std=(1.0,) * channels,
            color_mode="grayscale" if channels == 1 else "rgb",
        )


def _resize(image: Image.Image, pre: Preprocessing) -> Image.Image:
    height, width = pre.size
    if pre.resize_mode == "resize":
        return image.resize((width, height), RESAMPLE)
    assert pre.resize_short is not None
    w, h = image.size
    short = pre.resize_short
    # torchvision.transforms.Resize(int): the long side is truncated, not rounded.
    new_w, new_h = (short, int(short * h / w)) if w <= h else (int(short * w / h), short)
    image = image.resize((new_w, new_h), RESAMPLE)
    # torchvision's center_crop offsets: round((in - crop) / 2).
    top = int(round((new_h - height) / 2.0))
    left = int(round((new_w - width) / 2.0))
    return image.crop((left, top, left + width, top + height))


def load_pixels(path: str | Path, pre: Preprocessing) -> np.ndarray:
    """Decode and resize (or crop) one image file to the model's size: uint8 (H, W, C), channels
    in RGB order (or 1 grayscale channel), before any arithmetic. What a camera delivers at the
    model's size, and what an exported library's pixel helper takes."""
    path = Path(path)
    if not path.exists():
        raise InputFileError(f"image {path} does not exist; check the path")
    if not path.is_file():
        raise InputFileError(f"image {path} is not a file; give an image file")
    try:
        with Image.open(path) as image:
            image = image.convert("L" if pre.color_mode == "grayscale" else "RGB")
            image = _resize(image, pre)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        # Pillow reports truncated or foreign files through several exception types.
        raise InputFileError(
            f"image {path} cannot be read ({exc}); replace or remove the file"
        ) from None
    pixels = np.asarray(image, dtype=np.uint8)
    if pixels.ndim == 2:
        pixels = pixels[:, :, np.newaxis]
    return np.ascontiguousarray(pixels)


def check_image(path: str | Path, what: str) -> None:
    """Decodes the image file named by option ``what`` and forgets it: an up-front check, so
    that a file that is not an image fails before any slow work or any output is replaced."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"{what} {path}: no such image file; check the path")
    try:
        with Image.open(path) as image:
            image.load()
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise InputFileError(f"{what} {path}: not an image sqz can read ({exc}); give a PNG, "
                             "JPEG or BMP file") from None


def normalize(pixels: np.ndarray, pre: Preprocessing) -> np.ndarray:
    """uint8 pixels as load_pixels gives them -> the float32 model input. Element-wise, so a
    table of the 256 values of each channel gives exactly what a whole image gives."""
    pixels = np.asarray(pixels, dtype=np.float32)
    if pre.color_mode == "rgb" and pre.channel_order == "bgr":
        pixels = pixels[:, :, ::-1]
    mean = np.asarray(pre.mean, dtype=np.float32)
    std = np.asarray(pre.std, dtype=np.float32)
    pixels = (pixels * np.float32(pre.scale) - mean) / std
    return np.ascontiguousarray(pixels, dtype=np.float32)


def load_image(path: str | Path, pre: Preprocessing) -> np.ndarray:
    """Decode, resize and normalise one image file to float32 (H, W, C)."""
    return normalize(load_pixels(path, pre), pre)


def _is_image_file(path: Path) -> bool:
    return (
        path.is_file() and not path.name.startswith(".") and path.suffix.lower() in IMAGE_SUFFIXES
    )


def _image_files(folder: Path) -> list[Path]:
    # Sorted by path relative to the folder (so by filename in a flat folder) for determinism:
    # directory listing order differs between filesystems.
    files = [
        p
        for p in folder.rglob("*")
        if _is_image_file(p)
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    ]
    return sorted(files, key=lambda p: p.relative_to(folder).as_posix())


def _check_folder(path: Path, what: str) -> None:
    if not path.exists():
        raise InputFileError(f"{what} {path} does not exist; check the path")
    if not path.is_dir():
        raise InputFileError(f"{what} {path} is not a folder; give a folder of images")


def _stack(paths: list[Path], pre: Preprocessing) -> np.ndarray:
    x = np.empty((len(paths), *pre.input_shape), dtype=np.float32)
    for i, file in enumerate(paths):
        x[i] = load_image(file, pre)
    return x


def load_image_folder(
    path: str | Path, pre: Preprocessing, limit: int | None = None
) -> tuple[np.ndarray, list[Path]]:
    """All images under ``path`` (subfolders included) as float32 (N, H, W, C), plus their paths.

    Files are taken in sorted order of their path relative to ``path`` and ``limit`` keeps the
    first ones, so the selection is the same on every machine.  A single image file is also
    accepted.  Files with other suffixes and hidden files are skipped.
    """
    path = Path(path)
    if limit is not None and (not _is_int(limit) or limit < 1):
        raise UsageError(f"image limit must be a positive integer, got {limit!r}")
    if path.is_file():
        return _stack([path], pre), [path]
    _check_folder(path, "image folder")
    files = _image_files(path)
    if not files:
        raise InputFileError(
            f"image folder {path} contains no images ({', '.join(sorted(IMAGE_SUFFIXES))}); "
            "add some or give another folder"
        )
    if limit is not None:
        files = files[:limit]
    return _stack(files, pre), files


def _class_order(names: list[str]) -> list[str]:
    # Folders named 0, 1, ..., 10 would sort as 0, 1, 10, 2 as strings.
    if all(name.isdecimal() for name in names):
        return sorted(names, key=lambda n: (int(n), n))
    return sorted(names)


def load_labelled_folder(
    path: str | Path, pre: Preprocessing
) -> tuple[np.ndarray, np.ndarray, list[str], list[Path]]:
    """Images from one subfolder per class: (x, y, class_names, paths).

    ``y`` (int64) indexes ``class_names``.  Classes are ordered by name, like Keras and
    torchvision image folders (so ImageNet wnid folders give the standard class indices), except
    that all-numeric names sort numerically.  Images are ordered by class, then file name.
    """
    path = Path(path)
    _check_folder(path, "labelled image folder")
    stray = sorted(p.name for p in path.iterdir() if _is_image_file(p))
    if stray:
        raise InputFileError(
            f"labelled image folder {path} has images outside any class subfolder "
            f"({', '.join(stray[:3])}{', ...' if len(stray) > 3 else ''}); move them into the "
            "subfolder of their class"
        )
    class_dirs = {p.name: p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")}
    if not class_dirs:
        raise InputFileError(
            f"labelled image folder {path} has no class subfolders; put each class's images in "
            "a subfolder named after the class"
        )
    class_names = _class_order(list(class_dirs))
    files: list[Path] = []
    labels: list[int] = []
    for index, name in enumerate(class_names):
        # An empty class keeps its index, so class_names stays aligned with the model's outputs.
        found = _image_files(class_dirs[name])
        files.extend(found)
        labels.extend([index] * len(found))
    if not files:
        raise InputFileError(
            f"labelled image folder {path} has class subfolders but no images in them; add "
            "images or give another folder"
        )
    return _stack(files, pre), np.asarray(labels, dtype=np.int64), class_names, files


def quantize_input(x: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """TFLite's float -> int8 QUANTIZE: roundf(x / scale) + zero point, in float32."""
    q = np.round(np.float32(x) / np.float32(scale))  # numpy rounds half to even...
    # ...TFLite rounds half away from zero: fix the exact ties.
    v = np.float32(x) / np.float32(scale)
    ties = np.abs(v - np.trunc(v)) == np.float32(0.5)
    q = np.where(ties, np.trunc(v) + np.sign(v), q)
    return np.clip(q.astype(np.int64) + zero_point, -128, 127).astype(np.int8)
