"""Child process of frontend/reference.py: one model over a batch with BUILTIN_REF kernels.

Kept tiny and separate so that an abort inside LiteRT only ends this process.
Usage: python _refchild.py DIR  (DIR holds model.tflite and inputs.npy)
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np


def main(directory: str) -> int:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    d = Path(directory)
    interp = Interpreter(
        model_content=(d / "model.tflite").read_bytes(),
        experimental_op_resolver_type=OpResolverType.BUILTIN_REF,
        num_threads=1,
    )
    interp.allocate_tensors()
    inp = interp.get_input_details()[0]
    out = interp.get_output_details()[0]
    inputs = np.load(d / "inputs.npy")
    results = []
    for x in inputs:
        interp.set_tensor(inp["index"], x[None].astype(inp["dtype"]))
        interp.invoke()
        results.append(interp.get_tensor(out["index"])[0].copy())
    np.save(d / "outputs.npy", np.stack(results))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
