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

    def run(m) -> bytes:
        conv = tf.lite.TFLiteConverter.from_keras_model(m)
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = representative
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
        if not per_channel:
            conv._experimental_disable_per_channel = True
        return bytes(conv.convert())

    buf = run(model)
    if _computes_shapes(buf):
        single = _batch_of_one(model)
        if single is not None:
            buf = run(single)
    return buf


# Ops a graph has only when a shape is computed at run time: a Keras Reshape with an unknown
# batch (keras.applications' MobileNet) becomes SHAPE, STRIDED_SLICE, PACK and RESHAPE.
_SHAPE_OPS = ("SHAPE",)


def _computes_shapes(buf: bytes) -> bool:
    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAsModel(buf, 0)
    codes = {getattr(schema.BuiltinOperator, n) for n in _SHAPE_OPS}
    used = set()
    for i in range(model.OperatorCodesLength()):
        oc = model.OperatorCodes(i)
        used.add(max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode()))
    return bool(used & codes)


def _batch_of_one(model):
    """The model rebuilt with a batch of 1 in its input (same layers, names and weights), so
    that every shape is known when it is converted: the device runs one image at a time. None
    where Keras cannot rebuild it (a subclassed model)."""
    import keras

    shape = getattr(model, "input_shape", None)
    if not isinstance(shape, tuple) or not shape or shape[0] is not None:
        return None
    try:
        single = keras.models.clone_model(
            model, input_tensors=keras.Input(batch_shape=(1, *shape[1:])))
        single.set_weights(model.get_weights())
    except Exception:  # Keras raises several types here; the first conversion stands then
        return None
    return single


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
