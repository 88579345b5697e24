"""npz weights: round trips, errors that name the layer, and the real ImageNet v1.1 weights."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from converter.errors import InputFileError, ModelError
from converter.frontend.preprocess import Preprocessing, load_image
from converter.models.squeezenet import SqueezeNetConfig, build_squeezenet, config_for_builtin
from converter.models.weights import layer_key_prefix, load_weights_npz, save_weights_npz

PRETRAINED = Path(__file__).resolve().parents[1].parent / "shared" / "pretrained"
SMALL = (48, 48, 3)


def small(**kwargs):
    return build_squeezenet(SqueezeNetConfig(input_shape=SMALL, classes=10, **kwargs))


def test_key_prefix() -> None:
    assert layer_key_prefix("fire2_squeeze1x1") == "fire2/squeeze1x1"
    assert layer_key_prefix("fire12_bypass_conv") == "fire12/bypass_conv"
    assert layer_key_prefix("conv10") == "conv10"


def test_round_trip(tmp_path: Path) -> None:
    source = small(bypass="complex")
    path = tmp_path / "w.npz"
    save_weights_npz(source, path)
    with np.load(path) as data:
        assert "fire2/bypass_conv/kernel" in data.files
        assert data["fire2/squeeze1x1/kernel"].shape == (1, 1, 64, 16)
        assert data["conv10/bias"].dtype == np.float32

    target = small(bypass="complex", seed=7)
    assert not np.array_equal(source.get_weights()[0], target.get_weights()[0])
    load_weights_npz(target, path)
    for a, b in zip(source.get_weights(), target.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_save_is_byte_identical(tmp_path: Path) -> None:
    model = small()
    save_weights_npz(model, tmp_path / "a.npz")
    save_weights_npz(model, tmp_path / "b")  # written exactly there, no ".npz" appended
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b").read_bytes()


def test_float16_kernels_are_cast(tmp_path: Path) -> None:
    model = small()
    path = tmp_path / "w.npz"
    save_weights_npz(model, path)
    with np.load(path) as data:
        arrays = {k: data[k].astype(np.float16) if k.endswith("kernel") else data[k] for k in data}
    np.savez(path, **arrays)
    target = small(seed=3)
    load_weights_npz(target, path)
    kernel = target.get_layer("conv1").kernel
    assert kernel.dtype == "float32"
    np.testing.assert_array_equal(kernel.numpy(), arrays["conv1/kernel"].astype(np.float32))


def test_wrong_classes_names_conv10(tmp_path: Path) -> None:
    path = tmp_path / "w.npz"
    save_weights_npz(small(), path)
    target = build_squeezenet(SqueezeNetConfig(input_shape=SMALL, classes=5))
    before = target.get_weights()
    with pytest.raises(
        ModelError,
        match=r"key 'conv10/kernel' has shape \(1, 1, 512, 10\) but layer 'conv10' .* needs "
        r"\(1, 1, 512, 5\); the file was saved for 10 classes: build with --classes 10",
    ):
        load_weights_npz(target, path)
    # Nothing is assigned unless everything matches.
    for a, b in zip(before, target.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_wrong_channels_names_conv1(tmp_path: Path) -> None:
    path = tmp_path / "w.npz"
    save_weights_npz(small(), path)
    target = build_squeezenet(SqueezeNetConfig(input_shape=(48, 48, 1), classes=10))
    with pytest.raises(ModelError, match=r"layer 'conv1'.*expects 3-channel input"):
        load_weights_npz(target, path)


def test_missing_key_names_layer(tmp_path: Path) -> None:
    path = tmp_path / "w.npz"
    save_weights_npz(small(), path)
    with np.load(path) as data:
        arrays = {k: data[k] for k in data if not k.startswith("fire4/expand3x3")}
    np.savez(path, **arrays)
    with pytest.raises(ModelError, match=r"no values for layer\(s\) fire4_expand3x3 .*"):
        load_weights_npz(small(), path)


def test_extra_key_names_key(tmp_path: Path) -> None:
    path = tmp_path / "w.npz"
    save_weights_npz(small(bypass="complex"), path)
    with pytest.raises(ModelError, match=r"key\(s\) fire2/bypass_conv/kernel.*match no layer"):
        load_weights_npz(small(), path)


def test_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.npz"
    with pytest.raises(
        InputFileError, match=f"weights file {re.escape(str(missing))} does not exist"
    ):
        load_weights_npz(small(), missing)


def test_not_an_npz(tmp_path: Path) -> None:
    text = tmp_path / "weights.npz"
    text.write_text("not weights\n")
    with pytest.raises(InputFileError, match=r"weights\.npz is not a readable \.npz archive"):
        load_weights_npz(small(), text)
    npy = tmp_path / "one.npy"
    np.save(npy, np.zeros(3))
    with pytest.raises(InputFileError, match=r"one\.npy holds a single array"):
        load_weights_npz(small(), npy)


def test_non_finite_values_rejected(tmp_path: Path) -> None:
    path = tmp_path / "w.npz"
    save_weights_npz(small(), path)
    with np.load(path) as data:
        arrays = {k: data[k] for k in data}
    arrays["fire5/squeeze1x1/bias"][0] = np.nan
    np.savez(path, **arrays)
    with pytest.raises(
        InputFileError, match=r"'fire5/squeeze1x1/bias' \(layer 'fire5_squeeze1x1'\)"
    ):
        load_weights_npz(small(), path)


@pytest.mark.skipif(
    not (PRETRAINED / "squeezenet1_1_imagenet.npz").is_file(),
    reason=f"pretrained weights not present at {PRETRAINED} (data lives beside the repo)",
)
def test_pretrained_v11_classifies_cat() -> None:
    model = build_squeezenet(config_for_builtin("squeezenet1_1"))
    load_weights_npz(model, PRETRAINED / "squeezenet1_1_imagenet.npz")
    x = load_image(PRETRAINED / "cat.jpeg", Preprocessing.imagenet())
    probs = np.asarray(model(x[np.newaxis], training=False))[0]
    top = np.argsort(probs)[::-1]
    assert top[0] == 285  # Egyptian cat
    assert probs[285] == pytest.approx(0.564, abs=0.02)
    assert top[1] == 281  # tabby
