"""Procedural shapes dataset: same seed same bytes, folder layout, image size, argument errors."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from converter.commands import shapes as shapes_cli
from converter.datasets import shapes
from converter.errors import UsageError
from converter.frontend.preprocess import Preprocessing, load_labelled_folder


def digests(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*.png"))}


def test_same_seed_gives_identical_bytes_and_other_seed_differs(tmp_path: Path) -> None:
    a = shapes.generate(tmp_path / "a", n_per_class=3, size=32, seed=7)
    shapes.generate(tmp_path / "b", n_per_class=3, size=32, seed=7)
    shapes.generate(tmp_path / "c", n_per_class=3, size=32, seed=8)
    assert len(a) == 3 * len(shapes.CLASSES)
    assert digests(tmp_path / "a") == digests(tmp_path / "b")
    other = digests(tmp_path / "c")
    assert other.keys() == digests(tmp_path / "a").keys()
    assert all(other[k] != v for k, v in digests(tmp_path / "a").items())


def test_one_folder_per_class_with_images_of_the_requested_size(tmp_path: Path) -> None:
    shapes.generate(tmp_path, n_per_class=2, size=40, seed=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(shapes.CLASSES)
    for name in shapes.CLASSES:
        files = sorted((tmp_path / name).iterdir())
        assert [f.name for f in files] == [f"{name}_00000.png", f"{name}_00001.png"]
        for f in files:
            with Image.open(f) as image:
                assert image.size == (40, 40) and image.mode == "RGB"
    # The layout is exactly what training and validation read.
    x, y, classes, _ = load_labelled_folder(tmp_path, Preprocessing.simple(40))
    assert classes == sorted(shapes.CLASSES) and x.shape == (10, 40, 40, 3)
    assert np.bincount(y).tolist() == [2] * 5


def test_arrays_match_the_files_and_do_not_depend_on_the_count(tmp_path: Path) -> None:
    shapes.generate(tmp_path, n_per_class=2, size=32, seed=3, classes=["star", "circle"])
    x, y, classes = shapes.generate_arrays(4, size=32, seed=3, classes=["star", "circle"])
    assert classes == ["star", "circle"] and y.tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    assert x.dtype == np.uint8 and x.shape == (8, 32, 32, 3)
    for label, name in enumerate(classes):
        for i in range(2):
            on_disk = np.asarray(Image.open(tmp_path / name / f"{name}_{i:05d}.png"))
            np.testing.assert_array_equal(on_disk, x[label * 4 + i])
    # A class subset renders the same images as the full set.
    full, _, _ = shapes.generate_arrays(1, size=32, seed=3)
    np.testing.assert_array_equal(full[shapes.CLASSES.index("circle")], x[4])


def test_colour_alone_does_not_give_the_class() -> None:
    # Mean colour per image is spread the same way in every class: a nearest-class-mean rule on
    # the average RGB must be close to chance, or the example would not test shape recognition.
    x, y, _ = shapes.generate_arrays(60, size=32, seed=11)
    feats = x.reshape(len(x), -1, 3).mean(axis=1)
    train, test = np.arange(len(x)) % 2 == 0, np.arange(len(x)) % 2 == 1
    centres = np.stack([feats[train & (y == k)].mean(axis=0) for k in range(5)])
    pred = np.argmin(((feats[test, None, :] - centres[None]) ** 2).sum(-1), axis=1)
    assert np.mean(pred == y[test]) < 0.4


def test_refuses_a_non_empty_folder_unless_overwrite(tmp_path: Path) -> None:
    shapes.generate(tmp_path, n_per_class=2, size=16, seed=0, classes=["cross"])
    with pytest.raises(UsageError, match="exists and is not empty.*overwrite=True"):
        shapes.generate(tmp_path, n_per_class=1, size=16, seed=0, classes=["cross"])
    shapes.generate(tmp_path, n_per_class=1, size=16, seed=0, classes=["cross"], overwrite=True)
    assert [p.name for p in (tmp_path / "cross").iterdir()] == ["cross_00000.png"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_per_class": 0}, "n_per_class must be an integer >= 1"),
        ({"size": 8}, f"size must be an integer >= {shapes.MIN_SIZE}"),
        ({"seed": -1}, "seed must be an integer >= 0"),
        ({"classes": ["circle", "hexagon"]}, "pick distinct names from circle"),
        ({"classes": ["circle", "circle"]}, "pick distinct names"),
    ],
)
def test_bad_arguments_are_usage_errors(kwargs: dict, message: str) -> None:
    args = {"n_per_class": 1, "size": 16, "seed": 0} | kwargs
    with pytest.raises(UsageError, match=message):
        shapes.generate_arrays(**args)


def test_command_line_writes_the_dataset(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert shapes_cli.main([str(tmp_path / "d"), "--n-per-class", "1", "--size", "16",
                        "--classes", "square,triangle"]) == 0
    assert "wrote 2 images" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["square", "triangle"]
    assert shapes_cli.main([str(tmp_path / "d"), "--n-per-class", "1"]) == 2
    assert "--force" in capsys.readouterr().err
