"""Image preprocessing: exact pixel values, crop geometry, folder order, JSON round trip, errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from converter.errors import InputFileError, UsageError
from converter.frontend.preprocess import (
    Preprocessing,
    load_image,
    load_image_folder,
    load_labelled_folder,
)


def write_png(path: Path, pixels: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels.astype(np.uint8)).save(path)
    return path


def coded_image(height: int, width: int) -> np.ndarray:
    """RGB image whose R encodes the row, G the column, B is constant: crops are identifiable."""
    rows, cols = np.mgrid[0:height, 0:width]
    return np.stack([rows % 256, cols % 256, np.full_like(rows, 7)], axis=-1)


def test_imagenet_and_simple_constructors() -> None:
    pre = Preprocessing.imagenet()
    assert pre.size == (224, 224) and pre.resize_short == 256
    assert pre.resize_mode == "short_side_crop" and pre.input_shape == (224, 224, 3)
    assert pre.mean == (0.485, 0.456, 0.406) and pre.std == (0.229, 0.224, 0.225)
    gray = Preprocessing.simple((64, 48), channels=1)
    assert gray.input_shape == (64, 48, 1) and gray.mean == (0.0,) and gray.std == (1.0,)
    assert Preprocessing.simple(32).input_shape == (32, 32, 3)


@pytest.mark.parametrize(
    "pre",
    [
        Preprocessing.imagenet(),
        Preprocessing.simple((64, 48), 1),
        Preprocessing((8, 9), channel_order="bgr"),
    ],
)
def test_dict_round_trip_through_json(pre: Preprocessing) -> None:
    assert Preprocessing.from_dict(json.loads(json.dumps(pre.to_dict()))) == pre


def test_exact_values_plain_resize(tmp_path: Path) -> None:
    pixels = coded_image(6, 5)
    path = write_png(tmp_path / "a.png", pixels)
    pre = Preprocessing((6, 5), mean=(0.5, 0.25, 0.0), std=(0.5, 2.0, 1.0))
    x = load_image(path, pre)
    assert x.dtype == np.float32 and x.shape == (6, 5, 3)
    mean = np.float32([0.5, 0.25, 0.0])
    std = np.float32([0.5, 2.0, 1.0])
    expected = (pixels.astype(np.float32) * np.float32(1 / 255) - mean) / std
    np.testing.assert_array_equal(x, expected)

    bgr = load_image(path, Preprocessing((6, 5), channel_order="bgr"))
    np.testing.assert_allclose(bgr[..., 0] * 255, 7, atol=1e-4)
    np.testing.assert_allclose(bgr[..., 2] * 255, pixels[..., 0], atol=1e-4)


def test_grayscale(tmp_path: Path) -> None:
    path = write_png(tmp_path / "g.png", np.full((10, 12, 3), 51))
    x = load_image(path, Preprocessing.simple((4, 6), channels=1))
    assert x.shape == (4, 6, 1)
    np.testing.assert_allclose(x, 0.2, atol=1e-6)


@pytest.mark.parametrize(("height", "width"), [(256, 320), (320, 256)])
def test_short_side_crop_is_centered(tmp_path: Path, height: int, width: int) -> None:
    # The short side is already 256, so no resampling happens and the crop offsets are exact:
    # (320 - 224) / 2 = 48 along the long side, (256 - 224) / 2 = 16 along the short side.
    path = write_png(tmp_path / "c.png", coded_image(height, width))
    pre = Preprocessing((224, 224), resize_mode="short_side_crop", resize_short=256, scale=1.0)
    x = load_image(path, pre)
    top, left = (16, 48) if width > height else (48, 16)
    assert x.shape == (224, 224, 3)
    assert (x[0, 0, 0], x[0, 0, 1]) == (top, left)
    assert (x[-1, -1, 0], x[-1, -1, 1]) == ((top + 223) % 256, (left + 223) % 256)


def test_short_side_resize_keeps_aspect(tmp_path: Path) -> None:
    path = write_png(tmp_path / "wide.png", np.zeros((100, 300, 3)))
    pre = Preprocessing((40, 60), resize_mode="short_side_crop", resize_short=60)
    assert load_image(path, pre).shape == (40, 60, 3)


def test_load_is_deterministic(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    path = write_png(tmp_path / "r.png", rng.integers(0, 256, (97, 131, 3)))
    pre = Preprocessing.imagenet(64)
    np.testing.assert_array_equal(load_image(path, pre), load_image(path, pre))


def test_folder_sorted_and_limited(tmp_path: Path) -> None:
    for i, name in enumerate(["b.png", "a.jpg", "c.PNG", "sub/d.png"]):
        path = tmp_path / name
        path.parent.mkdir(exist_ok=True)
        Image.fromarray(np.full((5, 5, 3), i * 10, np.uint8)).save(path, format="PNG")
    (tmp_path / "notes.txt").write_text("not an image")
    write_png(tmp_path / ".hidden.png", np.zeros((5, 5, 3)))
    pre = Preprocessing.simple(4)
    x, paths = load_image_folder(tmp_path, pre)
    assert [p.relative_to(tmp_path).as_posix() for p in paths] == [
        "a.jpg",
        "b.png",
        "c.PNG",
        "sub/d.png",
    ]
    assert x.shape == (4, 4, 4, 3)
    np.testing.assert_allclose(x[:, 0, 0, 0] * 255, [10, 0, 20, 30], atol=1e-4)
    x2, paths2 = load_image_folder(tmp_path, pre, limit=2)
    assert [p.name for p in paths2] == ["a.jpg", "b.png"] and x2.shape[0] == 2
    one, one_path = load_image_folder(tmp_path / "b.png", pre)
    assert one.shape == (1, 4, 4, 3) and one_path == [tmp_path / "b.png"]


def test_labelled_folder(tmp_path: Path) -> None:
    for cls, count in [("dog", 1), ("cat", 2)]:
        for i in range(count):
            write_png(tmp_path / cls / f"{i}.png", np.zeros((6, 6, 3)))
    x, y, names, paths = load_labelled_folder(tmp_path, Preprocessing.simple(4))
    assert names == ["cat", "dog"]
    assert y.dtype == np.int64 and y.tolist() == [0, 0, 1]
    assert [p.parent.name for p in paths] == ["cat", "cat", "dog"]
    assert x.shape == (3, 4, 4, 3)


def test_labelled_folder_numeric_classes_sort_numerically(tmp_path: Path) -> None:
    for cls in ["10", "2", "0"]:
        write_png(tmp_path / cls / "x.png", np.zeros((6, 6, 3)))
    _, y, names, _ = load_labelled_folder(tmp_path, Preprocessing.simple(4))
    assert names == ["0", "2", "10"] and y.tolist() == [0, 1, 2]


def test_file_errors(tmp_path: Path) -> None:
    pre = Preprocessing.simple(4)
    missing = tmp_path / "missing"
    with pytest.raises(InputFileError, match=f"image folder {re.escape(str(missing))} does not"):
        load_image_folder(missing, pre)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputFileError, match=r"empty contains no images"):
        load_image_folder(empty, pre)
    bad = tmp_path / "bad" / "broken.jpg"
    bad.parent.mkdir()
    bad.write_bytes(b"\xff\xd8 this is not a jpeg")
    with pytest.raises(InputFileError, match=r"image .*broken\.jpg cannot be read"):
        load_image_folder(bad.parent, pre)
    with pytest.raises(InputFileError, match=r"has no class subfolders"):
        load_labelled_folder(empty, pre)
    with pytest.raises(InputFileError, match=r"images outside any class subfolder \(broken\.jpg\)"):
        load_labelled_folder(bad.parent, pre)
    with pytest.raises(InputFileError, match=r"nope\.png does not exist"):
        load_image(tmp_path / "nope.png", pre)


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"size": (0, 4)}, r"size \(0, 4\) is invalid"),
        ({"size": 4, "resize_mode": "crop"}, r"resize mode 'crop' is not supported"),
        (
            {"size": 224, "resize_mode": "short_side_crop", "resize_short": 200},
            r"at least 224 \(ImageNet uses 256 for 224\)",
        ),
        ({"size": 4, "resize_short": 8}, r"resize_short is only used with"),
        ({"size": 4, "mean": (0.0,)}, r"mean \(0\.0,\) is invalid; give 3 number\(s\)"),
        ({"size": 4, "std": (1.0, 0.0, 1.0)}, r"std .* must be positive"),
        ({"size": 4, "channel_order": "gbr"}, r"channel order 'gbr'"),
        ({"size": 4, "color_mode": "cmyk"}, r"color mode 'cmyk'"),
    ],
)
def test_option_errors(kwargs: dict, pattern: str) -> None:
    with pytest.raises(UsageError, match=pattern):
        Preprocessing(**kwargs)


def test_from_dict_errors() -> None:
    with pytest.raises(UsageError, match=r"unknown preprocessing key\(s\) resize"):
        Preprocessing.from_dict({"size": [4, 4], "resize": "resize"})
    with pytest.raises(UsageError, match=r"needs a 'size' entry"):
        Preprocessing.from_dict({})
    with pytest.raises(UsageError, match=r"must be a JSON object"):
        Preprocessing.from_dict([4, 4])


@settings(max_examples=25, deadline=None)
@given(
    h=st.integers(1, 40),
    w=st.integers(1, 40),
    out_h=st.integers(1, 16),
    out_w=st.integers(1, 16),
    gray=st.booleans(),
)
def test_any_image_size_gives_requested_shape(
    tmp_path_factory: pytest.TempPathFactory, h: int, w: int, out_h: int, out_w: int, gray: bool
) -> None:
    path = write_png(tmp_path_factory.mktemp("img") / "x.png", coded_image(h, w))
    pre = Preprocessing.simple((out_h, out_w), channels=1 if gray else 3)
    x = load_image(path, pre)
    assert x.shape == (out_h, out_w, 1 if gray else 3)
    assert np.isfinite(x).all() and x.min() >= 0.0 and x.max() <= 1.0
    crop = Preprocessing((out_h, out_w), resize_mode="short_side_crop", resize_short=16)
    assert load_image(path, crop).shape == (out_h, out_w, 3)
