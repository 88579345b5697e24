"""Small, exact rewrites of .tflite models with the schema bindings' object API.

Used by the host reference: to stop a model before its final SOFTMAX (whose reference kernel can
abort the process), and to drop float QUANTIZE/DEQUANTIZE ops at the edges so the reference
consumes and produces the same int8 tensors as the device.
"""

from __future__ import annotations

import flatbuffers
from ai_edge_litert import schema_py_generated as schema

from ..errors import ModelError

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


def _opcode_index(model: schema.ModelT, code: int) -> int:
    for i, oc in enumerate(model.operatorCodes):
        if max(int(oc.builtinCode), int(oc.deprecatedBuiltinCode)) == code:
            return i
    oc = schema.OperatorCodeT()
    oc.builtinCode = code
    oc.deprecatedBuiltinCode = min(code, 127)
    oc.version = 1
    model.operatorCodes.append(oc)
    return len(model.operatorCodes) - 1


def _quant_key(t) -> tuple:
    q = t.quantization
    if q is None or q.scale is None:
        return ()
    return (tuple(float(x) for x in q.scale), tuple(int(x) for x in (q.zeroPoint or [])))


def explicit_concat_requantize(buf: bytes) -> bytes:
    """Make the requantization of int8 CONCATENATION inputs explicit QUANTIZE ops.

    LiteRT's int8 concat refuses inputs whose scale or zero point differ from the output's.
    sqz accepts them and defines the result as each such input requantized to the output's
    parameters (the int8 -> int8 QUANTIZE op) and then concatenated; this rewrite gives the
    reference exactly that graph. Returns the buffer unchanged when no input differs.
    """
    model = _load(buf)
    sg = model.subgraphs[0]
    ops = []
    changed = False
    for op in sg.operators or []:
        if _code(model, op) == schema.BuiltinOperator.CONCATENATION:
            out_t = sg.tensors[op.outputs[0]]
            new_inputs = []
            for t in op.inputs:
                src = sg.tensors[t]
                if (src.type == schema.TensorType.INT8 and out_t.type == schema.TensorType.INT8
                        and _quant_key(src) != _quant_key(out_t)):
                    rq = schema.TensorT()
                    rq.name = (src.name or b"") + b"/requantized"
                    rq.shape = list(src.shape)
                    rq.type = schema.TensorType.INT8
                    rq.buffer = 0
                    q = schema.QuantizationParametersT()
                    q.scale = list(out_t.quantization.scale)
                    q.zeroPoint = list(out_t.quantization.zeroPoint)
                    rq.quantization = q
                    sg.tensors.append(rq)
                    qop = schema.OperatorT()
                    qop.opcodeIndex = _opcode_index(model, schema.BuiltinOperator.QUANTIZE)
                    qop.inputs = [int(t)]
                    qop.outputs = [len(sg.tensors) - 1]
                    ops.append(qop)
                    new_inputs.append(len(sg.tensors) - 1)
                    changed = True
                else:
                    new_inputs.append(int(t))
            op.inputs = new_inputs
        ops.append(op)
    if not changed:
        return buf
    sg.operators = ops
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
