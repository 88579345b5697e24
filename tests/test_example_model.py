"""The bundled example (examples/shapes): loads, sidecars agree, accuracy as documented.

Accuracies are computed here, not read from the train.json, so a retrained or corrupted model
cannot pass on the strength of its own record.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from PIL import Image

from converter.frontend import sources
from converter.frontend.example import EXAMPLE_DIR, example_model_args
from converter.frontend.preprocess import Preprocessing, load_image_folder, load_labelled_folder
from converter.models.squeezenet import SqueezeNetConfig, build_squeezenet
from converter.training.train import sidecar_paths

MODEL = EXAMPLE_DIR / "shapes.keras"
HELDOUT = EXAMPLE_DIR / "heldout"
CALIB = EXAMPLE_DIR / "calib"


@pytest.fixture(scope="module")
def model():
    return sources.load_keras(MODEL)


@pytest.fixture(scope="module")
def sidecars() -> dict:
    return {kind: json.loads(path.read_text()) for kind, path in sidecar_paths(MODEL).items()}


@pytest.fixture(scope="module")
def heldout(sidecars):
    pre = Preprocessing.from_dict(sidecars["preprocess"])
    x, y, classes, _ = load_labelled_folder(HELDOUT, pre)
    return x, y, classes


@pytest.fixture(scope="module")
def float_predictions(model, heldout) -> np.ndarray:
    x = heldout[0]
    return np.concatenate([np.argmax(np.asarray(model(x[i:i + 100], training=False)), axis=1)
                           for i in range(0, len(x), 100)])


def test_sqz_convert_default_is_this_example() -> None:
    model, calib, preprocess = example_model_args()
    assert (model, calib, preprocess) == (str(MODEL), str(CALIB), None)


def test_sidecars_match_the_model_and_the_folders(model, sidecars, heldout) -> None:
    pre = Preprocessing.from_dict(sidecars["preprocess"])
    shape = tuple(model.inputs[0].shape[1:])
    assert pre.input_shape == shape == (64, 64, 3)
    # What sqz-convert will use without being told.
    assert sources.preprocessing_for(None, MODEL, shape) == pre
    classes = sidecars["classes"]
    assert classes == heldout[2] == sidecars["train"]["classes"]
    assert sorted(p.name for p in CALIB.iterdir() if p.is_dir()) == classes
    assert tuple(model.outputs[0].shape) == (None, len(classes))

    config = SqueezeNetConfig(**{k: tuple(v) if isinstance(v, list) else v
                                 for k, v in sidecars["train"]["config"].items()})
    reference = build_squeezenet(config)
    assert [layer.name for layer in model.layers] == [layer.name for layer in reference.layers]
    assert model.count_params() == reference.count_params() == sidecars["train"]["params"]


def test_shipped_files_stay_small() -> None:
    assert MODEL.stat().st_size < 3 * 1024 * 1024
    images = sorted(CALIB.rglob("*.png")) + sorted(HELDOUT.rglob("*.png"))
    assert sum(p.stat().st_size for p in images) < 2.1 * 1000 * 1000
    calib, _ = load_image_folder(CALIB, Preprocessing.simple(64))
    assert 64 <= len(calib) <= 100
    for path in images:
        with Image.open(path) as image:
            assert image.size == (64, 64)


def test_float_accuracy_on_heldout(heldout, float_predictions, sidecars) -> None:
    y = heldout[1]
    assert len(y) == 200 and np.bincount(y).tolist() == [40] * 5
    accuracy = float(np.mean(float_predictions == y))
    assert accuracy >= 0.95
    # The figure sqz-train recorded (--eval examples/shapes/heldout) is the one measured here.
    assert accuracy == pytest.approx(sidecars["train"]["metrics"]["eval_accuracy"])


def test_int8_loses_at_most_one_point(model, heldout, float_predictions) -> None:
    from ai_edge_litert.interpreter import Interpreter

    from converter.frontend.preprocess import quantize_input
    from converter.frontend.quantize import captured_output
    from converter.frontend.reference import run_reference

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    x, y, _ = heldout
    with captured_output():
        src = sources.resolve(str(MODEL), calib=str(CALIB))
    details = Interpreter(model_content=src.tflite).get_input_details()[0]
    scale, zero_point = details["quantization"]
    result = run_reference(src.tflite, quantize_input(x, scale, zero_point))
    assert result.outputs is not None, result.note
    int8_predictions = np.argmax(result.outputs.reshape(len(x), -1), axis=1)
    float_accuracy = float(np.mean(float_predictions == y))
    int8_accuracy = float(np.mean(int8_predictions == y))
    assert int8_accuracy >= float_accuracy - 0.01
