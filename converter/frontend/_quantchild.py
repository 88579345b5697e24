"""Child process of frontend/quantize.py: TensorFlow's full-integer quantization of one model.

TensorFlow's converter is native code, and some inputs crash it (SIGSEGV) instead of raising:
run here, a crash ends only this process, and sqz reports it. Kept free of sqz imports, like
_refchild.py, because the package is `converter` in a checkout and `sqz_mcu` when installed.
Usage: python _quantchild.py DIR  (DIR holds model.keras, calib.npy and spec.json; the child
writes model.tflite, or error.json with the stage that failed and the message)
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def convert(tf, model, calib, per_channel: bool) -> bytes:
    """The one place the converter's settings live (the parent's in-process fallback uses it
    too): full-integer int8, int8 input and output."""
    import numpy as np

    def representative():
        for sample in calib:
            yield [sample[None].astype(np.float32)]

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = representative
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    if not per_channel:
        conv._experimental_disable_per_channel = True
    return bytes(conv.convert())


def _fail(d: Path, stage: str, exc: BaseException) -> int:
    text = str(exc).strip()
    (d / "error.json").write_text(json.dumps({
        "stage": stage, "type": type(exc).__name__,
        "message": text.splitlines()[0] if text else type(exc).__name__}))
    return 1


def main(directory: str) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    d = Path(directory)
    spec = json.loads((d / "spec.json").read_text())
    import numpy as np

    calib = np.load(d / "calib.npy", allow_pickle=False)
    try:
        import keras
        import tensorflow as tf

        tf.get_logger().setLevel("ERROR")
        model = keras.models.load_model(d / "model.keras", compile=False)
    except Exception as exc:  # e.g. custom layers: the parent quantizes in-process then
        return _fail(d, "load", exc)
    try:
        buf = convert(tf, model, calib, spec["per_channel"])
    except Exception as exc:  # the converter raises many types; the message matters
        return _fail(d, "convert", exc)
    (d / "model.tflite").write_bytes(buf)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
