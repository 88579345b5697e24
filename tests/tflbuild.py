"""Build small int8 .tflite graphs directly with the schema bindings, for golden tests.

Going through Keras and the TFLite converter takes seconds per model; building the flatbuffer
takes milliseconds, and it lets a test choose every scale, zero point and padding exactly, which
is what the property tests sweep.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as s

_TYPES = {
    "float32": s.TensorType.FLOAT32,
    "int8": s.TensorType.INT8,
    "int32": s.TensorType.INT32,
    "int16": s.TensorType.INT16,
    "uint8": s.TensorType.UINT8,
}


@dataclass
class GraphBuilder:
    tensors: list = field(default_factory=list)
    buffers: list = field(default_factory=lambda: [s.BufferT()])
    ops: list = field(default_factory=list)
    codes: list = field(default_factory=list)

    def tensor(self, name, shape, dtype="int8", scale=None, zero_point=None, axis=0, data=None):
        t = s.TensorT()
        t.name = name.encode()
        t.shape = [int(d) for d in shape]
        t.type = _TYPES[dtype]
        if scale is not None:
            scales = np.atleast_1d(np.asarray(scale, dtype=np.float32))
            zps = np.zeros(len(scales), np.int64) if zero_point is None else np.atleast_1d(
                np.asarray(zero_point, dtype=np.int64))
            if len(zps) == 1 and len(scales) > 1:
                zps = np.repeat(zps, len(scales))
            q = s.QuantizationParametersT()
            q.scale = [float(x) for x in scales]
            q.zeroPoint = [int(x) for x in zps]
            q.quantizedDimension = axis
            t.quantization = q
        if data is not None:
            arr = np.ascontiguousarray(np.asarray(data, dtype=dtype)).reshape(shape)
            b = s.BufferT()
            b.data = np.frombuffer(arr.tobytes(), dtype=np.uint8)
            self.buffers.append(b)
            t.buffer = len(self.buffers) - 1
        else:
            t.buffer = 0
        self.tensors.append(t)
        return len(self.tensors) - 1

    def op(self, name, inputs, outputs, options_name=None, options=None):
        code = getattr(s.BuiltinOperator, name)
        if code not in self.codes:
            self.codes.append(code)
        o = s.OperatorT()
        o.opcodeIndex = self.codes.index(code)
        o.inputs = list(inputs)
        o.outputs = list(outputs)
        if options_name is not None:
            o.builtinOptionsType = getattr(s.BuiltinOptions, options_name)
            o.builtinOptions = options
        self.ops.append(o)

    def build(self, inputs, outputs) -> bytes:
        m = s.ModelT()
        m.version = 3
        m.operatorCodes = []
        for code in self.codes:
            oc = s.OperatorCodeT()
            oc.builtinCode = code
            oc.deprecatedBuiltinCode = min(code, 127)
            oc.version = 1
            m.operatorCodes.append(oc)
        sg = s.SubGraphT()
        sg.tensors = self.tensors
        sg.operators = self.ops
        sg.inputs = list(inputs)
        sg.outputs = list(outputs)
        m.subgraphs = [sg]
        m.buffers = self.buffers
        b = flatbuffers.Builder(1024)
        b.Finish(m.Pack(b), file_identifier=b"TFL3")
        return bytes(b.Output())


_PAD = {"same": s.Padding.SAME, "valid": s.Padding.VALID}
_ACT = {"none": s.ActivationFunctionType.NONE, "relu": s.ActivationFunctionType.RELU,
        "relu6": s.ActivationFunctionType.RELU6}


def conv_options(stride=(1, 1), padding="same", act="none", dilation=(1, 1)):
    o = s.Conv2DOptionsT()
    o.strideH, o.strideW = stride
    o.padding = _PAD[padding]
    o.fusedActivationFunction = _ACT[act]
    o.dilationHFactor, o.dilationWFactor = dilation
    return o


def pool_options(filt, stride, padding="valid", act="none"):
    o = s.Pool2DOptionsT()
    o.filterHeight, o.filterWidth = filt
    o.strideH, o.strideW = stride
    o.padding = _PAD[padding]
    o.fusedActivationFunction = _ACT[act]
    return o


def conv_out_size(size, k, stride, padding, dilation=1):
    eff = (k - 1) * dilation + 1
    if padding == "same":
        return (size + stride - 1) // stride
    return (size - eff + stride) // stride


def add_conv(g, x, in_shape, in_q, filters, kernel, stride, padding, act, w_scales, out_q,
             rng, dilation=(1, 1), name="conv", groups=1):
    """Append a per-channel int8 CONV_2D (grouped: a filter c / groups deep); returns (output
    tensor, output shape)."""
    n, h, w, c = in_shape
    kh, kw = kernel
    wdata = rng.integers(-127, 128, size=(filters, kh, kw, c // groups), dtype=np.int64)
    w_scales = np.asarray(w_scales, dtype=np.float32)
    bias_scale = (np.float32(in_q[0]) * w_scales).astype(np.float32)
    bdata = rng.integers(-2000, 2000, size=(filters,), dtype=np.int64)
    wt = g.tensor(f"{name}/w", wdata.shape, "int8", w_scales, np.zeros(len(w_scales)), 0, wdata)
    bt = g.tensor(f"{name}/b", (filters,), "int32", bias_scale, np.zeros(len(w_scales)), 0,
                  bdata)
    oh = conv_out_size(h, kh, stride[0], padding, dilation[0])
    ow = conv_out_size(w, kw, stride[1], padding, dilation[1])
    out_shape = (n, oh, ow, filters)
    y = g.tensor(f"{name}/out", out_shape, "int8", out_q[0], out_q[1])
    g.op("CONV_2D", [x, wt, bt], [y], "Conv2DOptions",
         conv_options(stride, padding, act, dilation))
    return y, out_shape


def add_depthwise(g, x, in_shape, in_q, multiplier, kernel, stride, padding, act, w_scales,
                  out_q, rng, dilation=(1, 1), name="dw", bias=None):
    """Append a DEPTHWISE_CONV_2D (filter 1 x kh x kw x c*m, per channel along axis 3);
    returns (output tensor, output shape)."""
    n, h, w, c = in_shape
    kh, kw = kernel
    oc = c * multiplier
    wdata = rng.integers(-127, 128, size=(1, kh, kw, oc), dtype=np.int64)
    w_scales = np.asarray(w_scales, dtype=np.float32)
    bias_scale = (np.float32(in_q[0]) * w_scales).astype(np.float32)
    bdata = (rng.integers(-2000, 2000, size=(oc,), dtype=np.int64) if bias is None
             else np.asarray(bias, dtype=np.int64))
    wt = g.tensor(f"{name}/w", wdata.shape, "int8", w_scales, np.zeros(len(w_scales)), 3, wdata)
    bt = g.tensor(f"{name}/b", (oc,), "int32", bias_scale, np.zeros(len(w_scales)), 0, bdata)
    oh = conv_out_size(h, kh, stride[0], padding, dilation[0])
    ow = conv_out_size(w, kw, stride[1], padding, dilation[1])
    out_shape = (n, oh, ow, oc)
    y = g.tensor(f"{name}/out", out_shape, "int8", out_q[0], out_q[1])
    o = s.DepthwiseConv2DOptionsT()
    o.strideH, o.strideW = stride
    o.padding = _PAD[padding]
    o.fusedActivationFunction = _ACT[act]
    o.depthMultiplier = multiplier
    o.dilationHFactor, o.dilationWFactor = dilation
    g.op("DEPTHWISE_CONV_2D", [x, wt, bt], [y], "DepthwiseConv2DOptions", o)
    return y, out_shape


def maxpool_model() -> bytes:
    """A one-op model (2x2/2 max pool, 1x32x32x8 -> 1x16x16x8): a 10 KiB arena, no weights."""
    g = GraphBuilder()
    x = g.tensor("x", (1, 32, 32, 8), "int8", 0.1, 0)
    y = g.tensor("pool", (1, 16, 16, 8), "int8", 0.1, 0)
    g.op("MAX_POOL_2D", [x], [y], "Pool2DOptions", pool_options((2, 2), (2, 2)))
    return g.build([x], [y])
