"""Accuracy of the example on a labelled folder: the float Keras model, and the int8 model.

    python examples/shapes/evaluate.py                                # float, on heldout/
    sqz-convert examples/shapes/shapes.keras --target host --out /tmp/ex \\
        --calib examples/shapes/calib
    python examples/shapes/evaluate.py --tflite /tmp/ex/model.tflite  # float and int8

Images are preprocessed with the model's own ``shapes.keras.preprocess.json``, exactly as
sqz-convert and sqz-validate do.  The int8 model runs in LiteRT with its reference kernels
(BUILTIN_REF, the kernels sqz's C is bit-exact with); its input is quantized from the same
preprocessed floats with the model's input scale and zero point.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def float_predictions(model_path: Path, x: np.ndarray) -> np.ndarray:
    from sqz_mcu.frontend.sources import load_keras

    model = load_keras(model_path)
    return np.concatenate([np.argmax(np.asarray(model(x[i:i + 100], training=False)), axis=1)
                           for i in range(0, len(x), 100)])


def int8_predictions(tflite_path: Path, x: np.ndarray) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    from sqz_mcu.frontend.preprocess import quantize_input

    interp = Interpreter(model_content=tflite_path.read_bytes(),
                         experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    if inp["dtype"] != np.int8:
        sys.exit(f"{tflite_path}: input is {inp['dtype']}, expected an int8 model")
    scale, zero_point = inp["quantization"]
    q = quantize_input(x, scale, zero_point)
    preds = []
    for sample in q:
        interp.set_tensor(inp["index"], sample[None])
        interp.invoke()
        # argmax over int8 scores: dequantization is monotonic, so it picks the same class.
        preds.append(int(np.argmax(interp.get_tensor(out["index"])[0])))
    return np.asarray(preds)


def main() -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from sqz_mcu.frontend.preprocess import Preprocessing, load_labelled_folder

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", type=Path, default=HERE / "shapes.keras")
    p.add_argument("--data", type=Path, default=HERE / "heldout")
    p.add_argument("--tflite", type=Path, help="int8 model.tflite written by sqz-convert")
    args = p.parse_args()

    pre = Preprocessing.from_dict(json.loads(Path(f"{args.model}.preprocess.json").read_text()))
    classes = json.loads(Path(f"{args.model}.classes.json").read_text())
    x, y, folder_classes, _ = load_labelled_folder(args.data, pre)
    if folder_classes != classes:
        sys.exit(f"{args.data}: classes {folder_classes} differ from the model's {classes}")
    f = float_predictions(args.model, x)
    print(f"float accuracy {np.mean(f == y):.2%} ({int(np.sum(f == y))}/{len(y)}) on {args.data}")
    if args.tflite:
        q = int8_predictions(args.tflite, x)
        print(f"int8  accuracy {np.mean(q == y):.2%} ({int(np.sum(q == y))}/{len(y)}); "
              f"int8 and float disagree on {int(np.sum(q != f))} image(s)")
        change = 100 * (np.mean(q == y) - np.mean(f == y))
        print(f"int8 minus float: {change:+.2f} percentage points")
    return 0


if __name__ == "__main__":
    sys.exit(main())
