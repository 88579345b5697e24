"""The host reference: LiteRT with its reference kernels (OpResolverType.BUILTIN_REF).

The interpreter runs in a child process. LiteRT's reference int8 SOFTMAX aborts the whole
process (SIGABRT) when many classes have nearly equal logits (its fixed-point exponent check
fails), so a crash must cost us only the child. When that happens we say so and fall back to
comparing the tensor that feeds the softmax: the same model cut before its final SOFTMAX.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ReferenceFailure
from . import tflite_edit

CHILD_TIMEOUT_S = 1800
# The child runs by file path, not `python -m <package>._refchild`: the package is `converter`
# in a checkout and `sqz_mcu` when installed, and the child needs neither.
_CHILD = Path(__file__).with_name("_refchild.py")
_RUN_CHILD = ("import runpy, sys; sys.argv = sys.argv[1:]; "
              "runpy.run_path(sys.argv[0], run_name='__main__')")


@dataclass(frozen=True)
class ReferenceResult:
    outputs: np.ndarray | None  # int8 (N, ...) from the full model; None when it aborted
    logits: np.ndarray | None  # int8 (N, ...) pre-softmax tensor, when computed
    softmax_aborted: bool
    note: str


def _run_child(model: bytes, inputs: np.ndarray) -> tuple[int, np.ndarray | None, str]:
    with tempfile.TemporaryDirectory(prefix="sqz-ref-") as tmp:
        t = Path(tmp)
        (t / "model.tflite").write_bytes(model)
        np.save(t / "inputs.npy", inputs)
        proc = subprocess.run(
            [sys.executable, "-c", _RUN_CHILD, str(_CHILD), str(t)],
            capture_output=True, text=True, timeout=CHILD_TIMEOUT_S,
        )
        out = t / "outputs.npy"
        result = np.load(out) if proc.returncode == 0 and out.is_file() else None
        return proc.returncode, result, proc.stderr


def run_reference(
    model: bytes, inputs: np.ndarray, *, want_logits: bool = False
) -> ReferenceResult:
    """Run int8 `inputs` (N, H, W, C) through `model` with BUILTIN_REF kernels.

    Float QUANTIZE/DEQUANTIZE edges are dropped (the device is int8 end to end) and concat
    inputs at a scale other than the output's get their requantization made explicit, the
    two ways sqz's definition of a model extends what LiteRT itself accepts.
    """
    model = tflite_edit.explicit_concat_requantize(tflite_edit.strip_float_edges(model))
    code, outputs, err = _run_child(model, inputs)
    aborted = code == -signal.SIGABRT or code == 128 + signal.SIGABRT
    if code != 0 and not aborted:
        tail = "\n".join(err.strip().splitlines()[-3:])
        raise ReferenceFailure(f"the LiteRT reference failed (exit {code}): {tail}")
    has_softmax = tflite_edit.final_softmax_input(model) is not None
    logits = None
    note = ""
    if aborted:
        if not has_softmax:
            raise ReferenceFailure(
                "the LiteRT reference aborted (SIGABRT) and the model has no final SOFTMAX to "
                "work around; cannot produce reference outputs"
            )
        note = (
            "LiteRT's reference int8 SOFTMAX aborted (SIGABRT: its fixed-point exponent left "
            "0..31 because many classes have nearly equal logits). Comparing the tensor that "
            "feeds the softmax instead."
        )
    if (aborted or want_logits) and has_softmax:
        cut = tflite_edit.cut_before_final_softmax(model)
        code2, logits, err2 = _run_child(cut, inputs)
        if code2 != 0:
            tail = "\n".join(err2.strip().splitlines()[-3:])
            raise ReferenceFailure(f"the LiteRT reference failed on the pre-softmax model "
                                   f"(exit {code2}): {tail}")
    return ReferenceResult(outputs=outputs, logits=logits, softmax_aborted=aborted, note=note)
