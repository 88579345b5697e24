"""Small, exact rewrites of .tflite models with the schema bindings' object API.

Used by the host reference: to stop a model before its final SOFTMAX (whose reference kernel can
abort the process), and to drop float QUANTIZE/DEQUANTIZE ops at the edges so the reference
consumes and produces the same int8 tensors as the device.
"""

from __future__ import annotations

import flatbuffers
from ai_edge_litert import schema_py_generated as schema

from .errors import ModelError

_FILE_IDENTIFIER = b"TFL3"


def _load(buf: bytes) -> schema.ModelT:
    return schema.ModelT.InitFromPackedBuf(bytearray(buf), 0)


def _save(model: schema.ModelT) -> bytes:
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=_FILE_IDENTIFIER)
    return bytes(builder.Output())


def _code(model: schema.ModelT, op) -> int:
    oc = model.operatorCodes[op.opcodeIndex]
    return max(int(oc.builtinCode), int(oc.deprecatedBuiltinCode))


def final_softmax_input(buf: bytes) -> int | None:
    """Index of the tensor feeding a SOFTMAX that produces the model's only output, if any."""
    model = _load(buf)
    sg = model.subgraphs[0]
    outs = list(sg.outputs)
    if len(outs) != 1:
        return None
    for op in sg.operators or []:
        if _code(model, op) == schema.BuiltinOperator.SOFTMAX and list(op.outputs) == outs:
            return int(op.inputs[0])
    return None


def cut_before_final_softmax(buf: bytes) -> bytes:
    """The same model with its final SOFTMAX removed: the output becomes the logits."""
    model = _load(buf)
    sg = model.subgraphs[0]
    outs = list(sg.outputs)
    keep = []
    cut = None
    for op in sg.operators or []:
        if (cut is None and _code(model, op) == schema.BuiltinOperator.SOFTMAX
                and list(op.outputs) == outs):
            cut = int(op.inputs[0])
            continue
        keep.append(op)
    if cut is None:
        raise ModelError("the model does not end in SOFTMAX; nothing to cut")
    sg.operators = keep
    sg.outputs = [cut]
    model.signatureDefs = None  # they name the removed output tensor
    return _save(model)


def strip_float_edges(buf: bytes) -> bytes:
    """Remove a float->int8 QUANTIZE feeding the input and int8->float DEQUANTIZE outputs.

    Returns the buffer unchanged when there is nothing to strip, so the model's SHA-256 stays
    that of the original whenever possible.
    """
    model = _load(buf)
    sg = model.subgraphs[0]
    tensors = sg.tensors
    ins = list(sg.inputs)
    outs = list(sg.outputs)
    keep = []
    changed = False
    for op in sg.operators or []:
        code = _code(model, op)
        src = int(op.inputs[0]) if len(op.inputs) else -1
        dst = int(op.outputs[0]) if len(op.outputs) else -1
        if (code == schema.BuiltinOperator.QUANTIZE and src in ins
                and tensors[src].type == schema.TensorType.FLOAT32
                and tensors[dst].type == schema.TensorType.INT8):
            ins[ins.index(src)] = dst
            changed = True
            continue
        if (code == schema.BuiltinOperator.DEQUANTIZE and dst in outs
                and tensors[dst].type == schema.TensorType.FLOAT32
                and tensors[src].type == schema.TensorType.INT8):
            outs[outs.index(dst)] = src
            changed = True
            continue
        keep.append(op)
    if not changed:
        return buf
    sg.operators = keep
    sg.inputs = ins
    sg.outputs = outs
    model.signatureDefs = None
    return _save(model)
