"""sqz-train: a tiny end-to-end run, its sidecar files, determinism, batch-norm folding, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from converter.commands.train import train_main
from converter.datasets import shapes
from converter.errors import InputFileError
from converter.frontend import sources
from converter.frontend.preprocess import Preprocessing
from converter.models.squeezenet import SqueezeNetConfig, build_squeezenet
from converter.training.core import Batches, stratified_split
from converter.training.train import batchnorm_twin, fold_batchnorm, sidecar_paths

CLASSES = ["circle", "square", "triangle"]
# The smallest network and data that still exercise every step: 32x32 is just above v1.1's
# 31x31 minimum.
TINY = ["--input-size", "32", "--base-e", "8", "--incr-e", "8", "--epochs", "2",
        "--batch-size", "8", "--patience", "1", "--warmup-epochs", "1", "-q"]


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("shapes")
    shapes.generate(root, n_per_class=8, size=32, seed=5, classes=CLASSES)
    return root


@pytest.fixture(scope="module")
def trained(tiny_data: Path, tmp_path_factory) -> Path:
    model = tmp_path_factory.mktemp("run") / "tiny.keras"
    assert train_main([str(tiny_data), "-o", str(model), "--eval", str(tiny_data), *TINY]) == 0
    return model


def test_writes_model_and_sidecars(trained: Path, tiny_data: Path) -> None:
    paths = sidecar_paths(trained)
    assert {p.name for p in paths.values()} == {
        "tiny.keras.preprocess.json", "tiny.keras.classes.json", "tiny.keras.train.json"}
    assert json.loads(paths["classes"].read_text()) == CLASSES
    pre = Preprocessing.from_dict(json.loads(paths["preprocess"].read_text()))
    assert pre == Preprocessing.simple((32, 32))
    # sqz-convert finds the same preprocessing next to the model without being told.
    assert sources.preprocessing_for(None, trained, (32, 32, 3)) == pre

    record = json.loads(paths["train"].read_text())
    assert record["options"]["base_e"] == 8 and record["options"]["input_size"] == [32, 32]
    assert record["options"]["data"] == str(tiny_data)
    assert record["config"]["classes"] == 3 and record["config"]["version"] == "1.1"
    assert record["classes"] == CLASSES
    assert record["images"]["per_class"] == dict.fromkeys(CLASSES, 8)
    assert record["images"]["train"] + record["images"]["heldout"] == 24
    metrics = record["metrics"]
    assert 0.0 <= metrics["heldout_accuracy"] <= 1.0 and metrics["eval_images"] == 24
    assert 1 <= metrics["best_epoch"] <= metrics["epochs_run"] <= 2


def test_saved_model_is_exactly_the_builders_network(trained: Path) -> None:
    model = sources.load_keras(trained)
    record = json.loads(sidecar_paths(trained)["train"].read_text())
    config = SqueezeNetConfig(**{k: tuple(v) if isinstance(v, list) else v
                                 for k, v in record["config"].items()})
    reference = build_squeezenet(config)
    assert [layer.name for layer in model.layers] == [layer.name for layer in reference.layers]
    assert [type(layer) for layer in model.layers] == [type(layer) for layer in reference.layers]
    assert model.count_params() == reference.count_params() == record["params"]
    assert tuple(model.outputs[0].shape) == (None, 3)


def test_same_seed_gives_the_same_weights(trained: Path, tiny_data: Path, tmp_path: Path) -> None:
    again = tmp_path / "again.keras"
    assert train_main([str(tiny_data), "-o", str(again), "--eval", str(tiny_data), *TINY]) == 0
    a, b = sources.load_keras(trained), sources.load_keras(again)
    for wa, wb in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_array_equal(wa, wb)


def test_folded_batchnorm_matches_the_training_network() -> None:
    model = build_squeezenet(SqueezeNetConfig(input_shape=(32, 32, 3), classes=4, base_e=8,
                                              incr_e=8, seed=3))
    twin = batchnorm_twin(model)
    rng = np.random.default_rng(0)
    for layer in twin.layers:
        if layer.name.endswith("_bn"):
            n = layer.get_weights()[0].shape[0]
            layer.set_weights([rng.uniform(0.5, 2.0, n).astype(np.float32),
                               rng.normal(0.0, 0.3, n).astype(np.float32),
                               rng.normal(0.0, 0.3, n).astype(np.float32),
                               rng.uniform(0.2, 3.0, n).astype(np.float32)])
    fold_batchnorm(twin, model)
    x = rng.uniform(0.0, 1.0, (6, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(model(x, training=False)),
                               np.asarray(twin(x, training=False)), rtol=1e-4, atol=1e-6)


def test_split_is_stratified_and_augmentation_is_seeded() -> None:
    y = np.repeat(np.arange(3), [10, 4, 2])
    train_idx, held_idx = stratified_split(y, 0.25, 0, ["a", "b", "c"])
    assert np.bincount(y[held_idx]).tolist() == [2, 1, 1]
    assert sorted(np.concatenate([train_idx, held_idx]).tolist()) == list(range(16))
    with pytest.raises(InputFileError, match="class 'c' has 1 image; at least 2"):
        stratified_split(np.array([0, 0, 1, 1, 2]), 0.25, 0, ["a", "b", "c"])

    pre = Preprocessing.simple(8)
    x = np.random.default_rng(1).uniform(0, 1, (20, 8, 8, 3)).astype(np.float32)
    augment = ("flip", "vflip", "rot90", "shift", "brightness", "contrast")
    a = Batches(x, np.arange(20), 4, augment, pre)
    b = Batches(x, np.arange(20), 4, augment, pre)
    xa, ya = a.epoch(3)
    xb, yb = b.epoch(3)
    np.testing.assert_array_equal(xa, xb)
    np.testing.assert_array_equal(ya, yb)
    assert not np.array_equal(a.epoch(4)[0], xa)
    assert xa.min() >= 0.0 and xa.max() <= 1.0  # stays inside the pixel range


def run_error(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str]:
    code = train_main(argv)
    return code, " ".join(capsys.readouterr().err.split())


def test_missing_folder(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code, err = run_error([str(tmp_path / "nope"), "-o", str(tmp_path / "m.keras")], capsys)
    assert code == 3
    assert f"training folder {tmp_path / 'nope'} does not exist" in err
    assert "one subfolder of images per class" in err


def test_fewer_than_two_classes(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    shapes.generate(tmp_path / "d", n_per_class=2, size=16, classes=["star"])
    code, err = run_error([str(tmp_path / "d"), "-o", str(tmp_path / "m.keras")], capsys)
    assert code == 3
    assert "has only 1 class subfolder (star); a classifier needs at least 2" in err


def test_empty_class(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    shapes.generate(tmp_path / "d", n_per_class=2, size=16, classes=["star", "cross"])
    (tmp_path / "d" / "empty").mkdir()
    code, err = run_error([str(tmp_path / "d"), "-o", str(tmp_path / "m.keras")], capsys)
    assert code == 3
    assert "class folder(s) empty contain no images; add images or remove" in err


def test_eval_folder_with_other_classes(tiny_data: Path, tmp_path: Path,
                                        capsys: pytest.CaptureFixture) -> None:
    shapes.generate(tmp_path / "e", n_per_class=2, size=32, classes=["star", "cross"])
    code, err = run_error([str(tiny_data), "-o", str(tmp_path / "m.keras"),
                           "--eval", str(tmp_path / "e"), *TINY], capsys)
    assert code == 3
    assert "its classes (cross, star) differ from the training folder's" in err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["-o", "model.h5"], "--output model.h5: the model file must end in .keras"),
        (["-o", "m.keras", "--augment", "flip,zoom"], "--augment 'flip,zoom': use 'none' or"),
        (["-o", "m.keras", "--sr", "0"], "sr (squeeze ratio) must be in (0, 1]"),
        (["-o", "m.keras", "--input-size", "16"], "input 16x16 is too small for SqueezeNet"),
        (["-o", "m.keras", "--epochs", "0"], "--epochs must be at least 1"),
        (["-o", "m.keras", "--val-split", "1"], "--val-split must be between 0 and 1"),
        (["-o", "m.keras", "--preprocess", "nope.json"], "--preprocess nope.json: no such file"),
        ([], "the following arguments are required: -o/--output"),
    ],
)
def test_bad_options_are_usage_errors(extra: list[str], message: str, tiny_data: Path,
                                      capsys: pytest.CaptureFixture) -> None:
    code, err = run_error([str(tiny_data), *extra], capsys)
    assert code == (3 if "no such file" in message else 2)
    assert message in err


def test_train_a_zoo_network_and_convert_it_bit_exact(tiny_data: Path, tmp_path: Path,
                                                       sqz_runner) -> None:
    """--model trains a network of converter/models/zoo.py (here MobileNet v1, depthwise
    layers and all); the saved model carries its batch normalization, which TFLite folds, and
    converts bit-exact with the training's preprocessing."""
    from converter.frontend import reference

    out = tmp_path / "mnv1.keras"
    assert train_main([str(tiny_data), "-o", str(out), "--model", "mobilenet_v1",
                       "--input-size", "32", "--epochs", "1", "--batch-size", "16", "-q"]) == 0
    record = json.loads(sidecar_paths(out)["train"].read_text())
    assert record["config"]["model"] == "mobilenet_v1"
    src = sources.resolve(str(out), calib=str(tiny_data), calib_samples=8)
    assert any(type(layer).__name__ == "DepthwiseConv2D" for layer in src.keras_model.layers)
    x = np.random.default_rng(0).integers(-128, 128, (2, 32, 32, 3), dtype=np.int8)
    ref = reference.run_reference(src.tflite, x)
    assert np.array_equal(sqz_runner.run(src.tflite, x), ref.outputs.reshape(2, -1))


def test_train_refuses_an_unknown_model(tiny_data: Path, tmp_path: Path, capsys) -> None:
    assert train_main([str(tiny_data), "-o", str(tmp_path / "m.keras"), "--model",
                       "mobilenet_v9"]) == 2
    assert ("--model mobilenet_v9: unknown network; give squeezenet or one of mobilenet_v1, "
            "mobilenet_v2, resnet8, ds_cnn") in capsys.readouterr().err
