"""Turn the MODEL argument into an int8 .tflite: builtin name, Keras file or .tflite.

Keras models are quantized here (full-integer int8, int8 input and output) with calibration
data from --calib (a .npy array or an image folder) or, with a warning, synthetic data.
"""

from __future__ import annotations

import json
import os
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import CalibrationError, InputFileError, ModelError, UsageError
from ..ir import graph as ir
from ..ir.lower import check_integer_model
from . import tflite_reader
from .preprocess import Preprocessing, load_image_folder

KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")
PREPROCESS_SIDECAR = ".preprocess.json"  # stored next to a .keras model by sqz-train
CLASSES_SIDECAR = ".classes.json"  # class names in output order, also from sqz-train


@dataclass
class ModelSource:
    """What the converter needs from the user's MODEL argument."""

    tflite: bytes
    name: str  # for banners and reports
    source_name: str  # file name or builtin name, never an absolute path (determinism)
    keras_model: object | None  # the float model, when there is one
    preprocessing: Preprocessing | None
    calibration: str  # how the int8 model was calibrated, for the report
    warnings: list[str]
    class_names: list[str] | None = None  # output index -> name, when the model records it
    compression: dict | None = None  # sqz-compress's sidecar, when the model has one
    input_size_option: bool = False  # a builtin: --input-size can change the model's input


def class_names_beside(model_path: Path) -> list[str] | None:
    side = model_path.with_name(model_path.name + CLASSES_SIDECAR)
    if not side.is_file():
        return None
    try:
        names = json.loads(side.read_text())
    except ValueError as exc:
        raise InputFileError(f"{side}: not valid JSON ({exc})") from None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise InputFileError(f"{side}: expected a JSON list of class names")
    return names


def _stem(path: Path) -> str:
    return path.name[: -len(path.suffix)] if path.suffix else path.name


def preprocessing_for(spec: str | None, keras_path: Path | None,
                      input_shape: tuple[int, int, int]) -> Preprocessing:
    """--preprocess wins; then the sidecar saved with the model; then plain resize and /255."""
    h, w, c = input_shape
    if spec == "imagenet":
        if c != 3 or h != w:
            raise UsageError("--preprocess imagenet needs a square 3-channel input")
        return Preprocessing.imagenet(size=h)
    if spec == "simple":
        return Preprocessing.simple((h, w), channels=c)
    if spec:
        p = Path(spec)
        if not p.is_file():
            raise InputFileError(f"{p}: preprocessing file not found; use 'imagenet', 'simple' "
                                 "or a JSON file written by sqz-train")
        return _read_preprocessing(p)
    if keras_path is not None:
        side = keras_path.with_name(keras_path.name + PREPROCESS_SIDECAR)
        if side.is_file():
            return _read_preprocessing(side)
    return Preprocessing.simple((h, w), channels=c)


def _read_preprocessing(path: Path) -> Preprocessing:
    try:
        return Preprocessing.from_dict(json.loads(path.read_text()))
    except (ValueError, KeyError, TypeError) as exc:
        raise InputFileError(f"{path}: not a valid preprocessing description ({exc})") from None


def calibration_data(calib: str | None, input_shape: tuple[int, int, int],
                     pre: Preprocessing, limit: int) -> tuple[np.ndarray, str, list[str]]:
    from .quantize import load_calibration_npy, synthetic_calibration

    if calib is None:
        warning = ("no --calib data given: calibrating with seeded synthetic inputs. The int8 "
                   "model is still bit-exact with its reference, but its accuracy on real "
                   "images will be poor; pass --calib IMAGE_DIR or --calib DATA.npy")
        return synthetic_calibration(input_shape), "synthetic (seeded)", [warning]
    p = Path(calib)
    if p.is_dir():
        if tuple(pre.input_shape) != tuple(input_shape):
            raise CalibrationError(
                f"{p}: preprocessing gives {pre.input_shape} images but the model input is "
                f"{input_shape}")
        x, files = load_image_folder(p, pre, limit=limit)
        from . import datagate

        datagate.calibration(x, f"--calib {p} (after preprocessing)")
        return x, f"{len(files)} images from {p.name}", []
    if p.suffix == ".npy" or p.is_file():
        arr = load_calibration_npy(p, input_shape)
        return arr[:limit], f"{min(len(arr), limit)} samples from {p.name}", []
    raise InputFileError(f"{p}: calibration data not found; give an image folder or a .npy file")


def _check_tflite(buf: bytes, name: str) -> ir.Graph:
    graph = tflite_reader.read_model_bytes(buf, source=name)
    check_integer_model(graph)
    return graph


_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def load_keras(path: Path, what: str = ""):
    """The Keras model in ``path``; InputFileError (naming option ``what``, if given) for a
    missing, empty or foreign file, before Keras gets to word it."""
    label = f"{what} {path}" if what else str(path)
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"{label}: no such file; check the path")
    size = path.stat().st_size
    if size == 0:
        raise InputFileError(f"{label}: the file is empty (0 bytes), so it holds no model; it "
                             "was cut short while being written or copied: save or copy it "
                             "again")
    with open(path, "rb") as f:
        head = f.read(8)
    if path.suffix == ".keras" and not zipfile.is_zipfile(path):
        raise InputFileError(f"{label}: not a Keras archive (a .keras file is a zip archive, "
                             f"this one is not, or it is truncated: {size:,} bytes); save the "
                             "model again with model.save()")
    if path.suffix in (".h5", ".hdf5") and head != _HDF5_SIGNATURE:
        raise InputFileError(f"{label}: not an HDF5 file (no HDF5 signature); save the model "
                             "again, or as .keras")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    try:
        return keras.models.load_model(path, compile=False)
    except Exception as exc:  # Keras raises many exception types for unreadable files
        raise InputFileError(f"{label}: cannot load the Keras model ({exc}); save it again "
                             "with model.save()") from None


def _check_weights(path: Path) -> None:
    from . import datagate

    if path.is_file():
        datagate.weights_npz(path)


def float_model(model: str, *, weights: str | None = None,
                input_size: tuple[int, int] | None = None, channels: int | None = None,
                classes: int | None = None) -> tuple[object, Path | None, str, str]:
    """A builtin name or a .keras/.h5 file as a float Keras model: (model, the Keras file or
    None, name, source name). A .tflite is not a float model and is refused here."""
    from ..models import squeezenet, zoo
    from ..models.weights import load_weights_npz

    path = Path(model)
    if squeezenet.is_builtin(model) and not path.exists():
        for option, value in (("--classes", classes), ("--channels", channels)):
            if value is not None and value < 1:
                raise UsageError(f"{option} {value}: must be at least 1")
        overrides = {}
        if input_size is not None or channels is not None:
            base = squeezenet.config_for_builtin(model)
            h, w = input_size or base.input_shape[:2]
            overrides["input_shape"] = (h, w, base.input_shape[2] if channels is None
                                        else channels)
        if classes is not None:
            overrides["classes"] = classes
        cfg = squeezenet.config_for_builtin(model, **overrides)
        km = squeezenet.build_squeezenet(cfg)
        if weights:
            _check_weights(Path(weights))
            load_weights_npz(km, Path(weights))
        source_name = model if not weights else f"{model}+{Path(weights).name}"
        return km, None, model, source_name
    if zoo.is_builtin(model) and not path.exists():
        for option, value in (("--classes", classes), ("--channels", channels)):
            if value is not None and value < 1:
                raise UsageError(f"{option} {value}: must be at least 1")
        base = zoo.MODELS[model].input_shape
        h, w = input_size or base[:2]
        km = zoo.build(model, input_shape=(h, w, channels or base[2]), classes=classes)
        if weights:
            _check_weights(Path(weights))
            load_weights_npz(km, Path(weights))
        source_name = model if not weights else f"{model}+{Path(weights).name}"
        return km, None, model, source_name
    if path.suffix in KERAS_SUFFIXES:
        if not path.is_file():
            raise InputFileError(f"{path}: no such model file; check the path")
        if any(v is not None for v in (input_size, channels, classes)):
            raise UsageError("--input-size, --channels and --classes only apply to builtin "
                             "models; a Keras file has its own shapes")
        km = load_keras(path)
        if weights:
            _check_weights(Path(weights))
            load_weights_npz(km, Path(weights))
        return km, path, _stem(path), path.name
    if path.exists():
        raise InputFileError(f"{path}: unsupported model file; give a .keras, .h5 or "
                             ".tflite file or a builtin name")
    raise InputFileError(
        f"{model}: no such model file or builtin model. Builtin models: "
        f"{', '.join([*squeezenet.builtin_names(), *zoo.builtin_names()])}")


_UNSUPPORTED = re.compile(r"unsupported op: (.+?) at op #\d+ \(output tensor '([^']*)'\)\. ?(.*)",
                          re.S)


def _unsupported_layer(message: str, km, source_name: str) -> str | None:
    """The reader's "unsupported op" error in terms of the Keras model: which layer (found by
    the name TensorFlow gives the op's output tensor) became which op."""
    m = _UNSUPPORTED.search(message)
    if m is None:
        return None
    op, tensor, rest = m.groups()
    parts = [re.sub(r"_\d+$", "", p) for p in tensor.split("/")]
    layers = {layer.name: layer for layer in getattr(km, "layers", [])}
    hit = next((layers[p] for p in parts if p in layers), None)
    if hit is None:
        hit = next((layers[n] for p in tensor.split("/") for n in layers if n == p), None)
    what = (f"layer '{hit.name}' ({type(hit).__name__})" if hit is not None
            else f"the layer that makes tensor '{tensor}'")
    return (f"{source_name}: {what} becomes the TFLite op {op}, which sqz has no kernel for. "
            f"{rest.strip()}")


def resolve(model: str, *, weights: str | None = None, input_size: tuple[int, int] | None = None,
            channels: int | None = None, classes: int | None = None,
            calib: str | None = None, calib_samples: int = 100,
            preprocess: str | None = None) -> ModelSource:
    path = Path(model)
    if path.suffix == ".tflite":
        if not path.is_file():
            raise InputFileError(f"{path}: no such model file; check the path")
        if weights or any(v is not None for v in (input_size, channels, classes)):
            raise UsageError("--weights, --input-size, --channels and --classes apply to Keras "
                             "and builtin models, not to a .tflite")
        buf = path.read_bytes()
        _check_tflite(buf, path.name)
        pre = None
        side = path.with_name(path.name + PREPROCESS_SIDECAR)
        if preprocess or side.is_file():
            g = tflite_reader.read_model_bytes(buf, source=path.name)
            shape = g.tensor(g.inputs[0]).shape
            pre = preprocessing_for(preprocess or str(side), None, tuple(shape[1:]))
        return ModelSource(tflite=buf, name=_stem(path), source_name=path.name,
                           keras_model=None, preprocessing=pre,
                           calibration="already int8 (quantization skipped)", warnings=[],
                           class_names=class_names_beside(path))
    km, keras_path, name, source_name = float_model(model, weights=weights,
                                                    input_size=input_size, channels=channels,
                                                    classes=classes)

    from .quantize import model_input_shape, quantize_keras

    shape = model_input_shape(km)
    pre = preprocessing_for(preprocess, keras_path, shape)
    data, how, warnings = calibration_data(calib, shape, pre, calib_samples)
    if len(data) == 0:
        raise CalibrationError("calibration data is empty")
    # A model from sqz-compress says, in its sidecar, how its weights must be quantized for
    # its codebooks to survive int8 (per-tensor scales for per-tensor codebooks).
    from .compression import Compression

    comp = Compression.beside(keras_path) if keras_path else None
    buf = quantize_keras(km, data, per_channel=comp is None or comp.per_channel_quantization)
    try:
        _check_tflite(buf, source_name)
    except ModelError as exc:
        unsupported = _unsupported_layer(str(exc), km, source_name)
        if unsupported is not None:  # not a quantization problem: a layer sqz cannot run
            raise ModelError(unsupported) from None
        raise ModelError(f"quantization did not give a full-integer model: {exc}") from None
    if comp is not None:
        comp.check_quantized(buf, km)
    return ModelSource(tflite=buf, name=name, source_name=source_name, keras_model=km,
                       preprocessing=pre, calibration=how, warnings=warnings,
                       class_names=class_names_beside(keras_path) if keras_path else None,
                       compression=comp.record if comp is not None else None,
                       input_size_option=keras_path is None)
