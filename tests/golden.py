"""Run a .tflite through sqz (convert, compile, run the C) and through LiteRT BUILTIN_REF.

Both return one flattened row of int8 outputs per input.
"""

from __future__ import annotations

import itertools
import subprocess
from pathlib import Path

import numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType

from converter import convert, targets
from converter.device import build

_counter = itertools.count()


def reference(buf: bytes, inputs: np.ndarray) -> np.ndarray:
    """In-process BUILTIN_REF run; only for models whose reference cannot abort."""
    it = Interpreter(model_content=buf, experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    it.allocate_tensors()
    i = it.get_input_details()[0]
    o = it.get_output_details()[0]
    outs = []
    for x in inputs:
        it.set_tensor(i["index"], x.reshape(i["shape"]))
        it.invoke()
        outs.append(it.get_tensor(o["index"]).reshape(-1).copy())
    return np.stack(outs)


class SqzRunner:
    """Converts and compiles models against a runtime built once per test session."""

    def __init__(self, workdir: Path, *, sanitize: bool = False, opt: str = "-O1"):
        self.workdir = workdir
        self.sanitize = sanitize
        self.opt = opt
        self.objects = build.build_runtime_objects(workdir / "runtime", opt=opt,
                                                   sanitize=sanitize)

    def compile(self, buf: bytes, *, target: str = "host", **convert_kw) -> tuple[Path, object]:
        out = self.workdir / f"m{next(_counter)}"
        conv = convert.convert_tflite(buf, targets.load(target), model_name="test",
                                      source_name="test.tflite", **convert_kw)
        convert.write(conv, buf, out)
        exe = build.build_runner(out, out / "runner", opt=self.opt, sanitize=self.sanitize,
                                 runtime_objects=self.objects)
        return exe, conv

    def run(self, buf: bytes, inputs: np.ndarray, *, logits: bool = False, **convert_kw):
        exe, conv = self.compile(buf, **convert_kw)
        args = [str(exe)] + (["--logits"] if logits else [])
        proc = subprocess.run(args, input=np.ascontiguousarray(inputs).tobytes(),
                              capture_output=True, timeout=600)
        if proc.returncode != 0:
            raise AssertionError(f"runner failed ({proc.returncode}): {proc.stderr.decode()}")
        g = conv.lowered.graph
        out_shape = g.tensor(conv.lowered.output).shape
        n_out = int(np.prod(out_shape))
        data = np.frombuffer(proc.stdout, np.int8)
        if logits and conv.lowered.logits is not None:
            n_lg = int(np.prod(g.tensor(conv.lowered.logits).shape))
            data = data.reshape(len(inputs), n_out + n_lg)
            return data[:, :n_out], data[:, n_out:]
        return data.reshape(len(inputs), n_out)
