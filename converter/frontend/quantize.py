"""Full-integer int8 post-training quantization of a Keras model with the TFLite converter.

Input and output are int8 too, so the device never sees a float. Calibration comes from real
data (an image folder or a .npy array) or, with a warning, from seeded synthetic data.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import tempfile
import warnings
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


# Generous: quantizing a SqueezeNet with a few hundred calibration samples takes under a minute.
QUANTIZE_TIMEOUT_S = 1800
_CHILD = Path(__file__).with_name("_quantchild.py")
_RUN_CHILD = ("import runpy, sys; sys.argv = sys.argv[1:]; "
              "runpy.run_path(sys.argv[0], run_name='__main__')")


# "1": quantize in this process. The test suite sets it (tests/conftest.py): a child costs a
# TensorFlow start-up (3-4 s) per conversion, and the child's own tests (tests/test_issue25.py)
# clear it. Users never need it.
IN_PROCESS_ENV = "SQZ_QUANTIZE_IN_PROCESS"


def quantize_keras(model, calib: np.ndarray, per_channel: bool = True) -> bytes:
    """Convert to a full-integer int8 .tflite (int8 input and output).

    ``per_channel=False`` gives every weight tensor one scale instead of one per output channel:
    a model whose codebook is shared by the whole tensor (sqz-compress) keeps one int8 table.

    TensorFlow's converter runs in a child process (frontend/_quantchild.py): it is native
    code that some inputs crash (SIGSEGV), and a crash must end in a message, not take sqz and
    its cleanup with it. A model the child cannot load again (custom layers) is quantized here.
    """
    shape = model_input_shape(model)
    if tuple(calib.shape[1:]) != shape:
        raise CalibrationError(
            f"calibration data has shape {tuple(calib.shape)} but the model input is "
            f"(N, {', '.join(map(str, shape))})"
        )
    calib = np.ascontiguousarray(calib, dtype=np.float32)
    if os.environ.get(IN_PROCESS_ENV) == "1":
        return _quantize_here(model, calib, per_channel)
    with tempfile.TemporaryDirectory(prefix="sqz-quant-") as tmp:
        d = Path(tmp)
        try:
            with captured_output():
                model.save(d / "model.keras")
        except Exception:  # not saveable as .keras: no child, the converter runs here
            return _quantize_here(model, calib, per_channel)
        np.save(d / "calib.npy", calib)
        (d / "spec.json").write_text(json.dumps({"per_channel": per_channel}))
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
        try:
            proc = subprocess.run([sys.executable, "-c", _RUN_CHILD, str(_CHILD), str(d)],
                                  capture_output=True, text=True, env=env,
                                  timeout=QUANTIZE_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise ModelError(f"TFLite full-integer quantization did not finish in "
                             f"{QUANTIZE_TIMEOUT_S} s; try fewer --calib-samples") from None
        out, err_file = d / "model.tflite", d / "error.json"
        if proc.returncode == 0 and out.is_file():
            return out.read_bytes()
        if err_file.is_file():
            err = json.loads(err_file.read_text())
            if err["stage"] == "load":
                return _quantize_here(model, calib, per_channel)
            raise ModelError(f"TFLite full-integer quantization failed: {err['message']}")
        raise ModelError(_crash_text(proc.returncode, proc.stderr))


def _crash_text(code: int, stderr: str) -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        how = f"crashed ({name})"
    else:
        how = f"ended with exit {code} and no result"
    lines = [ln for ln in stderr.strip().splitlines() if ln.strip()]
    tail = f"; its last words: {lines[-1].strip()}" if lines else ""
    return (f"TensorFlow's quantizer {how} while converting the model to int8{tail}. sqz "
            "checked the calibration data (finite, in range), so the cause is in the model or "
            "in TensorFlow: check that the float model runs on that data (model.predict), try "
            "another --calib set or fewer --calib-samples, and report it with the model if it "
            "persists")


def _quantize_here(model, calib: np.ndarray, per_channel: bool) -> bytes:
    from . import _quantchild

    tf = _quiet_tensorflow()
    with captured_output():
        try:
            return _quantchild.convert(tf, model, calib, per_channel)
        except Exception as exc:  # the converter raises many types; the message matters
            text = str(exc).strip()
            first = text.splitlines()[0] if text else type(exc).__name__
            raise ModelError(f"TFLite full-integer quantization failed: {first}") from None
