"""Read a .tflite flatbuffer into the typed IR (`converter.ir`).

The flatbuffer is decoded with LiteRT's generated schema bindings (`schema_py_generated`), never by
hand. Each supported builtin opcode has one reader function; any other opcode is rejected with an
error naming the op, its index and its output tensor.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
from ai_edge_litert import schema_py_generated as schema

from ..errors import InputFileError, ModelError
from ..ir import graph as ir

_DTYPES = {
    schema.TensorType.FLOAT32: ir.DType.FLOAT32,
    schema.TensorType.FLOAT16: ir.DType.FLOAT16,
    schema.TensorType.INT32: ir.DType.INT32,
    schema.TensorType.INT8: ir.DType.INT8,
    schema.TensorType.UINT8: ir.DType.UINT8,
    schema.TensorType.INT16: ir.DType.INT16,
    schema.TensorType.INT64: ir.DType.INT64,
    schema.TensorType.BOOL: ir.DType.BOOL,
}

_PADDING = {schema.Padding.SAME: ir.Padding.SAME, schema.Padding.VALID: ir.Padding.VALID}

_ACTIVATION = {
    schema.ActivationFunctionType.NONE: ir.Activation.NONE,
    schema.ActivationFunctionType.RELU: ir.Activation.RELU,
    schema.ActivationFunctionType.RELU6: ir.Activation.RELU6,
    schema.ActivationFunctionType.RELU_N1_TO_1: ir.Activation.RELU_N1_TO_1,
}

_OP_NAMES = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}


def op_name(code: int) -> str:
    return _OP_NAMES.get(code, f"builtin #{code}")


def _activation(code: int, where: str) -> ir.Activation:
    try:
        return _ACTIVATION[code]
    except KeyError:
        raise ModelError(
            f"{where}: fused activation #{code} is not supported (NONE, RELU, RELU6, "
            "RELU_N1_TO_1 are); use one of those in the model"
        ) from None


def _padding(code: int) -> ir.Padding:
    return _PADDING[code]


# One reader per builtin opcode: (index, inputs, outputs, options) -> typed op.
_Reader = Callable[[int, tuple[int, ...], tuple[int, ...], object, str], ir.Op]


def _conv2d(i, ins, outs, o, where):
    return ir.Conv2D(
        i, ins, outs, stride_h=o.strideH, stride_w=o.strideW, dilation_h=o.dilationHFactor,
        dilation_w=o.dilationWFactor, padding=_padding(o.padding),
        activation=_activation(o.fusedActivationFunction, where),
    )


def _depthwise(i, ins, outs, o, where):
    return ir.DepthwiseConv2D(
        i, ins, outs, stride_h=o.strideH, stride_w=o.strideW, dilation_h=o.dilationHFactor,
        dilation_w=o.dilationWFactor, depth_multiplier=o.depthMultiplier,
        padding=_padding(o.padding), activation=_activation(o.fusedActivationFunction, where),
    )


def _pool(cls):
    def read(i, ins, outs, o, where):
        return cls(
            i, ins, outs, filter_h=o.filterHeight, filter_w=o.filterWidth, stride_h=o.strideH,
            stride_w=o.strideW, padding=_padding(o.padding),
            activation=_activation(o.fusedActivationFunction, where),
        )

    return read


def _mean(i, ins, outs, o, where):
    return ir.Mean(i, ins, outs, axes=(), keep_dims=bool(o.keepDims) if o else False)


def _concat(i, ins, outs, o, where):
    return ir.Concatenation(
        i, ins, outs, axis=o.axis, activation=_activation(o.fusedActivationFunction, where)
    )


def _add(i, ins, outs, o, where):
    act = _activation(o.fusedActivationFunction, where) if o else ir.Activation.NONE
    return ir.Add(i, ins, outs, activation=act)


def _softmax(i, ins, outs, o, where):
    return ir.Softmax(i, ins, outs, beta=float(np.float32(o.beta)) if o else 1.0)


def _reshape(i, ins, outs, o, where):
    return ir.Reshape(i, ins, outs)


def _fully_connected(i, ins, outs, o, where):
    act = _activation(o.fusedActivationFunction, where) if o else ir.Activation.NONE
    return ir.FullyConnected(
        i, ins, outs, activation=act, keep_num_dims=bool(o.keepNumDims) if o else False
    )


def _pad(i, ins, outs, o, where):
    return ir.Pad(i, ins, outs)


def _quantize(i, ins, outs, o, where):
    return ir.Quantize(i, ins, outs)


def _dequantize(i, ins, outs, o, where):
    return ir.Dequantize(i, ins, outs)


_READERS: dict[int, _Reader] = {
    schema.BuiltinOperator.CONV_2D: _conv2d,
    schema.BuiltinOperator.DEPTHWISE_CONV_2D: _depthwise,
    schema.BuiltinOperator.MAX_POOL_2D: _pool(ir.MaxPool2D),
    schema.BuiltinOperator.AVERAGE_POOL_2D: _pool(ir.AveragePool2D),
    schema.BuiltinOperator.MEAN: _mean,
    schema.BuiltinOperator.CONCATENATION: _concat,
    schema.BuiltinOperator.ADD: _add,
    schema.BuiltinOperator.SOFTMAX: _softmax,
    schema.BuiltinOperator.RESHAPE: _reshape,
    schema.BuiltinOperator.FULLY_CONNECTED: _fully_connected,
    schema.BuiltinOperator.PAD: _pad,
    schema.BuiltinOperator.QUANTIZE: _quantize,
    schema.BuiltinOperator.DEQUANTIZE: _dequantize,
}


def supported_op_names() -> list[str]:
    return sorted(op_name(code) for code in _READERS)


def _quant(t) -> ir.Quant | None:
    q = t.quantization
    if q is None or q.scale is None or len(q.scale) == 0:
        return None
    scales = tuple(float(np.float32(s)) for s in np.asarray(q.scale).ravel())
    zps = np.asarray(q.zeroPoint if q.zeroPoint is not None else [0] * len(scales)).ravel()
    return ir.Quant(scale=scales, zero_point=tuple(int(z) for z in zps),
                    axis=int(q.quantizedDimension))


def _name(t) -> str:
    n = t.name
    return n.decode("utf-8", "replace") if isinstance(n, bytes) else str(n or "")


def read_model_bytes(buf: bytes, source: str = "<memory>") -> ir.Graph:
    """Decode a .tflite flatbuffer into the IR. Raises ModelError for anything unusable."""
    if len(buf) < 8 or buf[4:8] != b"TFL3":
        raise ModelError(
            f"{source}: not a TFLite flatbuffer (file identifier 'TFL3' missing); "
            "give a .tflite produced by the TFLite converter or a Keras model"
        )
    try:
        model = schema.ModelT.InitFromPackedBuf(bytearray(buf), 0)
    except Exception:  # the bindings raise assorted struct/index errors on damaged buffers
        raise ModelError(
            f"{source}: the TFLite file is truncated or corrupt: its contents point past its "
            f"{len(buf):,} bytes or make no sense. Copy or export it again (an interrupted "
            "download or copy leaves such files)") from None
    if not model.subgraphs:
        raise ModelError(f"{source}: the model has no subgraph")
    if len(model.subgraphs) > 1:
        raise ModelError(
            f"{source}: the model has {len(model.subgraphs)} subgraphs; only single-subgraph "
            "models (no control flow) are supported"
        )
    sg = model.subgraphs[0]
    buffers = model.buffers or []

    tensors = []
    for idx, t in enumerate(sg.tensors or []):
        dtype = _DTYPES.get(t.type, ir.DType.OTHER)
        data = None
        if t.buffer and t.buffer < len(buffers):
            b = buffers[t.buffer].data
            if b is not None and len(b) > 0:
                data = np.asarray(b, dtype=np.uint8).tobytes()
        shape = tuple(int(d) for d in (t.shape if t.shape is not None else []))
        tensors.append(
            ir.Tensor(index=idx, name=_name(t), shape=shape, dtype=dtype, quant=_quant(t),
                      data=data)
        )

    codes = model.operatorCodes or []
    ops: list[ir.Op] = []
    for i, op in enumerate(sg.operators or []):
        oc = codes[op.opcodeIndex]
        code = max(int(oc.builtinCode), int(oc.deprecatedBuiltinCode))
        ins = tuple(int(x) for x in (op.inputs if op.inputs is not None else []))
        outs = tuple(int(x) for x in (op.outputs if op.outputs is not None else []))
        out_name = tensors[outs[0]].name if outs else "<none>"
        where = f"op #{i} {op_name(code)} (output tensor '{out_name}')"
        if code == schema.BuiltinOperator.CUSTOM:
            custom = oc.customCode.decode() if isinstance(oc.customCode, bytes) else oc.customCode
            raise ModelError(
                f"unsupported op: custom op '{custom}' at op #{i} (output tensor '{out_name}'). "
                f"Supported ops: {', '.join(supported_op_names())}"
            )
        reader = _READERS.get(code)
        if reader is None:
            raise ModelError(
                f"unsupported op: {op_name(code)} at op #{i} (output tensor '{out_name}'). "
                f"Supported ops: {', '.join(supported_op_names())}. Remove or replace this "
                "layer in the model"
            )
        typed = reader(i, ins, outs, op.builtinOptions, where)
        if isinstance(typed, ir.Mean):
            typed = _with_mean_axes(typed, tensors, where)
        ops.append(typed)

    return ir.Graph(
        tensors=tuple(tensors),
        ops=tuple(ops),
        inputs=tuple(int(x) for x in sg.inputs),
        outputs=tuple(int(x) for x in sg.outputs),
        sha256=hashlib.sha256(buf).hexdigest(),
        source=source,
    )


def _with_mean_axes(op: ir.Mean, tensors: list[ir.Tensor], where: str) -> ir.Mean:
    axes_t = tensors[op.inputs[1]]
    if not axes_t.is_const:
        raise ModelError(f"{where}: MEAN axes must be a constant tensor")
    rank = len(tensors[op.inputs[0]].shape)
    axes = tuple(sorted({int(a) % rank for a in axes_t.array().ravel()}))
    return ir.Mean(op.index, op.inputs, op.outputs, axes=axes, keep_dims=op.keep_dims)


def read_model(path: str | Path) -> ir.Graph:
    p = Path(path)
    if not p.is_file():
        raise InputFileError(f"{p}: no such model file; check the path")
    return read_model_bytes(p.read_bytes(), source=str(p))
