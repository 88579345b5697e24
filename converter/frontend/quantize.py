"""Full-integer int8 post-training quantization of a Keras model with the TFLite converter.

Input and output are int8 too, so the device never sees a float. Calibration comes from real
data (an image folder or a .npy array) or, with a warning, from seeded synthetic data.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..errors import CalibrationError, InputFileError, ModelError

SYNTHETIC_SAMPLES = 32
SYNTHETIC_SEED = 1234


def _quiet_tensorflow():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")
    try:
        import absl.logging

        absl.logging.set_verbosity(absl.logging.ERROR)
    except ImportError:  # absl ships with TensorFlow; tolerate its absence anyway
        pass
    return tf


@contextlib.contextmanager
def captured_output():
    """Silence TensorFlow's converter: its C++ logs go to fd 2, Keras' export prints to stdout.

    Yields a callable returning what was captured, for error messages.
    """
    log = tempfile.TemporaryFile(mode="w+b")
    py_out = io.StringIO()
    sys.stderr.flush()
    saved = os.dup(2)
    os.dup2(log.fileno(), 2)

    def text() -> str:
        log.seek(0)
        return py_out.getvalue() + log.read().decode("utf-8", "replace")

    try:
        with contextlib.redirect_stdout(py_out), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield text
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        log.close()


def model_input_shape(model) -> tuple[int, int, int]:
    for kind, tensors in (("input", model.inputs), ("output", model.outputs)):
        if len(tensors) != 1:
            names = ", ".join(f"'{getattr(t, 'name', '?')}' {tuple(t.shape)}" for t in tensors)
            raise ModelError(
                f"model '{model.name}' has {len(tensors)} {kind}s ({names}); sqz supports one "
                f"{kind}{' (an image)' if kind == 'input' else ''}: give a model with one "
                f"{kind}, e.g. a copy that keeps only the branch you want on the device")
    shape = tuple(model.inputs[0].shape[1:])
    if len(shape) != 3 or any(d is None for d in shape):
        raise ModelError(
            f"model input has shape {tuple(model.inputs[0].shape)}; sqz needs a fixed "
            "(batch, height, width, channels) image input"
        )
    return tuple(int(d) for d in shape)  # type: ignore[return-value]


def load_calibration_npy(path: Path, input_shape: tuple[int, ...]) -> np.ndarray:
    if not path.is_file():
        raise InputFileError(f"{path}: calibration file not found; give a .npy array or an "
                             "image folder with --calib")
    from . import datagate

    arr = datagate.load_npy(path, CalibrationError, "--calib")
    if arr.ndim == len(input_shape):
        arr = arr[None]
    if arr.ndim != len(input_shape) + 1 or tuple(arr.shape[1:]) != tuple(input_shape):
        raise CalibrationError(
            f"{path}: calibration data has shape {tuple(arr.shape)} but the model input is "
            f"(N, {', '.join(str(d) for d in input_shape)}); save an array of that shape, "
            "already preprocessed as the model expects"
        )
    if arr.shape[0] == 0:
        raise CalibrationError(f"{path}: calibration array is empty")
    datagate.calibration(arr, f"--calib {path}")
    return arr.astype(np.float32)


def synthetic_calibration(input_shape: tuple[int, ...], n: int = SYNTHETIC_SAMPLES) -> np.ndarray:
    """Seeded standard-normal inputs: deterministic, but says nothing about real activations."""
    rng = np.random.default_rng(SYNTHETIC_SEED)
    return rng.standard_normal((n, *input_shape)).astype(np.float32)


def quantize_keras(model, calib: np.ndarray, per_channel: bool = True) -> bytes:
    """Convert to a full-integer int8 .tflite (int8 input and output).

    ``per_channel=False`` gives every weight tensor one scale instead of one per output channel:
    a model whose codebook is shared by the whole tensor (sqz-compress) keeps one int8 table.
    """
    tf = _quiet_tensorflow()
    shape = model_input_shape(model)
    if tuple(calib.shape[1:]) != shape:
        raise CalibrationError(
            f"calibration data has shape {tuple(calib.shape)} but the model input is "
            f"(N, {', '.join(map(str, shape))})"
        )

    def representative() -> Iterator[list[np.ndarray]]:
        for sample in calib:
            yield [sample[None].astype(np.float32)]

    with captured_output():
        try:
            conv = tf.lite.TFLiteConverter.from_keras_model(model)
            conv.optimizations = [tf.lite.Optimize.DEFAULT]
            conv.representative_dataset = representative
            conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            conv.inference_input_type = tf.int8
            conv.inference_output_type = tf.int8
            if not per_channel:
                conv._experimental_disable_per_channel = True
            return bytes(conv.convert())
        except Exception as exc:  # the converter raises many types; the message matters
            text = str(exc).strip()
            first = text.splitlines()[0] if text else type(exc).__name__
            raise ModelError(f"TFLite full-integer quantization failed: {first}") from None
