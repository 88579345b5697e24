"""Lowering: IR ops -> kernel steps with every integer the C kernels need.

This is TFLite's "Prepare" half, done ahead of time: multipliers and shifts, zero-point offsets,
activation bounds, padding, folded biases. The float and double arithmetic follows LiteRT's
reference kernels operation by operation (which values are float32, which are double, in which
order), because a different rounding of one multiplier breaks bit-exactness.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..arch.portable import MAX_FILTER_ROWS
from ..errors import ModelError
from . import graph as ir
from .quantmath import (
    quantize_multiplier,
    quantize_multiplier_smaller_than_one_exp,
    round_half_away,
)
from .steps import (
    QMAX,
    QMIN,
    AddStep,
    ConcatPart,
    ConcatStep,
    ConstStep,
    ConvStep,
    Dims,
    FullyConnectedStep,
    Lowered,
    MeanStep,
    PoolStep,
    RequantizeStep,
    SoftmaxStep,
    Step,
)

# --- helpers ----------------------------------------------------------------------------------

_TF_SUFFIXES = ("Relu", "Relu6", "BiasAdd", "Conv2D", "MaxPool2d", "MaxPool", "AvgPool",
                "Mean", "Softmax", "concat", "add", "Add", "Reshape", "MatMul", "convolution")


def short_name(tensor_name: str, fallback: str) -> str:
    """A readable layer name for reports and the device's step table.

    TFLite tensor names are the TensorFlow op paths, joined with ';' when ops were fused,
    e.g. 'net_1/fire2_squeeze1x1_1/Relu;net_1/fire2_squeeze1x1_1/BiasAdd'. For display only
    (nothing dispatches on names) keep the layer part: 'fire2_squeeze1x1'.
    """
    first = tensor_name.split(";", 1)[0]
    if ":" in first or not first:
        return fallback
    parts = [p for p in first.split("/") if p]
    while len(parts) > 1 and parts[-1] in _TF_SUFFIXES:
        parts.pop()
    if len(parts) > 1:
        parts = parts[1:]  # the model's own scope
    name = "/".join(parts)
    while name[-2:-1] == "_" and name[-1:].isdigit():
        name = name[:-2]
    return name or fallback


def nhwc_axis_of(rank: int, axis: int) -> int:
    """Where axis `axis` of a rank-`rank` tensor lands in its `Dims.of` NHWC view."""
    return {4: (0, 1, 2, 3), 3: (0, 2, 3), 2: (0, 3), 1: (3,)}[rank][axis]


def _step_name(g: ir.Graph, op: ir.Op) -> str:
    return short_name(g.tensor(op.outputs[0]).name, _op_label(op).lower())


def _where(g: ir.Graph, op: ir.Op) -> str:
    out = g.tensor(op.outputs[0]).name if op.outputs else "?"
    return f"op #{op.index} {_op_label(op)} (output tensor '{out}')"


_LABELS = {
    ir.Conv2D: "CONV_2D", ir.DepthwiseConv2D: "DEPTHWISE_CONV_2D", ir.MaxPool2D: "MAX_POOL_2D",
    ir.AveragePool2D: "AVERAGE_POOL_2D", ir.Mean: "MEAN", ir.Concatenation: "CONCATENATION",
    ir.Add: "ADD", ir.Softmax: "SOFTMAX", ir.Reshape: "RESHAPE",
    ir.FullyConnected: "FULLY_CONNECTED", ir.Quantize: "QUANTIZE", ir.Dequantize: "DEQUANTIZE",
    ir.Pad: "PAD",
}


def _op_label(op: ir.Op) -> str:
    return _LABELS.get(type(op), type(op).__name__)


def _int8_act(g: ir.Graph, t: int, where: str) -> tuple[float, int]:
    """Scale and zero point of a per-tensor int8 activation, or a clear error."""
    tensor = g.tensor(t)
    if tensor.dtype is not ir.DType.INT8:
        raise ModelError(
            f"{where}: tensor '{tensor.name}' is {tensor.dtype.value}; sqz runs full-integer "
            "int8 models only (quantize with int8 input and output)"
        )
    if tensor.quant is None or tensor.quant.per_channel:
        raise ModelError(f"{where}: tensor '{tensor.name}' needs per-tensor quantization")
    return tensor.quant.single()


def activation_range(act: ir.Activation, scale: float, zero_point: int) -> tuple[int, int]:
    """CalculateActivationRangeQuantized: the bound is zp + roundf(f / scale) in float32."""

    def q(f: float) -> int:
        return zero_point + round_half_away(float(np.float32(f) / np.float32(scale)))

    if act is ir.Activation.NONE:
        return QMIN, QMAX
    if act is ir.Activation.RELU:
        return max(QMIN, q(0.0)), QMAX
    if act is ir.Activation.RELU6:
        return max(QMIN, q(0.0)), min(QMAX, q(6.0))
    if act is ir.Activation.RELU_N1_TO_1:
        return max(QMIN, q(-1.0)), min(QMAX, q(1.0))
    raise ModelError(f"activation {act.value} is not supported")


def _pad(in_size: int, k: int, stride: int, dilation: int, out_size: int) -> int:
    eff = (k - 1) * dilation + 1
    total = max(0, (out_size - 1) * stride + eff - in_size)
    return total // 2


def _out_size(padding: ir.Padding, in_size: int, k: int, stride: int, dilation: int) -> int:
    eff = (k - 1) * dilation + 1
    if padding is ir.Padding.SAME:
        return (in_size + stride - 1) // stride
    return (in_size + stride - eff) // stride


def _check_shape(g: ir.Graph, t: int, expected: tuple[int, ...], where: str) -> None:
    actual = g.tensor(t).shape
    if tuple(actual) != tuple(expected):
        raise ModelError(
            f"{where}: tensor '{g.tensor(t).name}' has shape {tuple(actual)}, the op implies "
            f"{tuple(expected)}"
        )


@dataclass(frozen=True)
class FoldedPad:
    """A PAD whose only consumers are convolutions: they read its input and pad it themselves.
    TFLite's int8 PAD fills with the output zero point, which is the input's (the same
    quantization), and an out-of-image tap of sqz's convs reads the input zero point: the
    same values, so the padded tensor never needs to exist."""

    input: int
    top: int
    bottom: int
    left: int
    right: int


def _fold_pad(g: ir.Graph, op: ir.Pad) -> FoldedPad:
    where = _where(g, op)
    x, y = op.inputs[0], op.outputs[0]
    s_in, zp_in = _int8_act(g, x, where)
    s_out, zp_out = _int8_act(g, y, where)
    if (s_in, zp_in) != (s_out, zp_out):
        raise ModelError(f"{where}: input and output quantization differ; an int8 PAD keeps it")
    pt = g.tensor(op.inputs[1]) if len(op.inputs) > 1 else None
    if pt is None or not pt.is_const:
        raise ModelError(f"{where}: the paddings must be a constant tensor")
    pads = pt.array().astype(np.int64).reshape(-1, 2)
    if len(g.tensor(x).shape) != 4 or pads.shape[0] != 4 or np.any(pads < 0) or \
            np.any(pads[0]) or np.any(pads[3]):
        raise ModelError(f"{where}: paddings {pads.tolist()}; sqz folds a PAD of height and "
                         "width of an NHWC tensor into the convolution it feeds, nothing else")
    if y in g.outputs:
        raise ModelError(f"{where}: the PAD's output is the model's output; sqz folds a PAD "
                         "only into the convolutions it feeds, so it cannot be an output")
    users = g.consumers(y)
    if not users or not all(isinstance(u, ir.Conv2D | ir.DepthwiseConv2D) and u.inputs[0] == y
                            for u in users):
        names = ", ".join(_op_label(u) for u in users) or "nothing"
        raise ModelError(f"{where}: the PAD feeds {names}; sqz folds a PAD only into the "
                         "convolutions it feeds (CONV_2D, DEPTHWISE_CONV_2D)")
    (top, bottom), (left, right) = pads[1], pads[2]
    return FoldedPad(input=x, top=int(top), bottom=int(bottom), left=int(left),
                     right=int(right))


def _check_window_rows(rows: int, where: str) -> None:
    if rows > MAX_FILTER_ROWS:
        raise ModelError(f"{where}: a window {rows} rows tall; sqz's kernels take at most "
                         f"{MAX_FILTER_ROWS} (a global average is a MEAN: use "
                         "GlobalAveragePooling2D)")


# --- one lowering function per op ---------------------------------------------------------------

def _conv_weights(g: ir.Graph, op: ir.Op, where: str) -> tuple[ir.Tensor, ir.Tensor]:
    """The constant int8 filter and int32 bias a conv (dense or depthwise) needs."""
    w_t, b_t = (op.inputs + (-1, -1, -1))[1:3]
    wt = g.tensor(w_t)
    if not wt.is_const or wt.dtype is not ir.DType.INT8 or wt.quant is None:
        raise ModelError(f"{where}: weights '{wt.name}' must be constant int8 (a hybrid or "
                         "float model cannot run on the device)")
    if b_t < 0:
        raise ModelError(f"{where}: the conv has no bias tensor; the reference requires one")
    bt = g.tensor(b_t)
    if not bt.is_const or bt.dtype is not ir.DType.INT32:
        raise ModelError(f"{where}: bias '{bt.name}' must be a constant int32 tensor")
    if any(z != 0 for z in wt.quant.zero_point):
        raise ModelError(f"{where}: weights '{wt.name}' have a non-zero zero point")
    return wt, bt


def _conv_step(g: ir.Graph, op: ir.Conv2D | ir.DepthwiseConv2D, where: str, w: np.ndarray,
               wt: ir.Tensor, bt: ir.Tensor, pad: FoldedPad | None = None) -> ConvStep:
    """A ConvStep from an OHWI filter `w` whose depth is the input's or a divisor of it (a
    grouped or depthwise conv): both references compute the same per-channel sums and
    requantize them alike, with PopulateConvolutionQuantizationParams' multipliers. With
    `pad`, the conv reads the PAD's input and pads it itself (lower(): _fold_pad)."""
    x, y = op.inputs[0], op.outputs[0]
    s_in, zp_in = _int8_act(g, x, where)
    s_out, zp_out = _int8_act(g, y, where)
    top = left = 0
    in_d = Dims.of(g.tensor(x).shape)
    if pad is not None:
        x, top, left = pad.input, pad.top, pad.left
        in_d = Dims.of(g.tensor(x).shape)
    padded_h = in_d.h + (pad.top + pad.bottom if pad else 0)
    padded_w = in_d.w + (pad.left + pad.right if pad else 0)
    oc, kh, kw, ic = w.shape
    _check_window_rows(kh, where)
    oh = _out_size(op.padding, padded_h, kh, op.stride_h, op.dilation_h)
    ow = _out_size(op.padding, padded_w, kw, op.stride_w, op.dilation_w)
    _check_shape(g, y, (in_d.n, oh, ow, oc), where)
    scales = wt.quant.scale if wt.quant.per_channel else wt.quant.scale * oc
    if len(scales) != oc:
        raise ModelError(f"{where}: {len(scales)} weight scales for {oc} output channels")
    mults, shifts = [], []
    for s_w in scales:
        # double(in) * double(w) / double(out), left to right, as PopulateConvolutionQuantization
        m, sh = quantize_multiplier(float(s_in) * float(s_w) / float(s_out))
        mults.append(m)
        shifts.append(sh)
    bias = bt.array().astype(np.int64).reshape(-1)
    if bias.size != oc:
        raise ModelError(f"{where}: bias '{bt.name}' has {bias.size} values for {oc} output "
                         "channels")
    input_offset = -zp_in
    folded = bias + input_offset * w.reshape(oc, -1).sum(axis=1)
    if np.any(np.abs(folded) >= 2**31):
        raise ModelError(f"{where}: folded bias overflows int32")
    act_min, act_max = activation_range(op.activation, s_out, zp_out)
    return ConvStep(
        name=_step_name(g, op), op_index=op.index, reads=(x,), writes=(y,), input=x, output=y,
        input_dims=in_d, filter_dims=Dims(oc, kh, kw, ic), output_dims=Dims(in_d.n, oh, ow, oc),
        filter=w.astype(np.int8).tobytes(), bias=tuple(int(v) for v in folded),
        multiplier=tuple(mults),
        shift=tuple(shifts), input_offset=input_offset, output_offset=zp_out,
        stride=(op.stride_h, op.stride_w),
        padding=(top + _pad(padded_h, kh, op.stride_h, op.dilation_h, oh),
                 left + _pad(padded_w, kw, op.stride_w, op.dilation_w, ow)),
        dilation=(op.dilation_h, op.dilation_w), act_min=act_min, act_max=act_max,
        output_pixel_stride=oc,
    )


def _lower_conv(g: ir.Graph, op: ir.Conv2D, pad: FoldedPad | None = None) -> ConvStep:
    where = _where(g, op)
    wt, bt = _conv_weights(g, op, where)
    in_c = Dims.of(g.tensor(op.inputs[0]).shape).c
    w = wt.array().astype(np.int64)  # OHWI
    oc, ic = w.shape[0], w.shape[3]
    # A filter shallower than the input is a grouped conv (TFLite since TF 2.9): the input's
    # channels split into in_c / ic groups, each feeding oc / groups output channels.
    if ic < 1 or in_c % ic or oc % (in_c // ic):
        raise ModelError(
            f"{where}: filter '{wt.name}' is {ic} channels deep and has {oc} output channels, "
            f"which do not divide the input's {in_c} channels into groups")
    return _conv_step(g, op, where, w, wt, bt, pad)


def _lower_depthwise(g: ir.Graph, op: ir.DepthwiseConv2D,
                     pad: FoldedPad | None = None) -> ConvStep:
    """DEPTHWISE_CONV_2D is the grouped conv with one group per input channel: output channel
    c * m + j reads input channel c, so its 1 x kh x kw x (c * m) filter becomes OHWI with
    depth 1."""
    where = _where(g, op)
    wt, bt = _conv_weights(g, op, where)
    in_c = Dims.of(g.tensor(op.inputs[0]).shape).c
    w = wt.array().astype(np.int64)
    if w.ndim != 4 or w.shape[0] != 1:
        raise ModelError(f"{where}: filter '{wt.name}' has shape {tuple(w.shape)}; a depthwise "
                         "filter is 1 x kh x kw x channels")
    oc = w.shape[3]
    # The multiplier is what the shapes say (LiteRT derives it so; some converters write 0
    # in the option).
    if oc % in_c:
        raise ModelError(f"{where}: filter '{wt.name}' has {oc} channels, not a multiple of "
                         f"the input's {in_c}")
    if wt.quant.per_channel and wt.quant.axis != 3:
        raise ModelError(f"{where}: filter '{wt.name}' is quantized along axis "
                         f"{wt.quant.axis}; a depthwise filter's channels are "
                         "axis 3")
    return _conv_step(g, op, where, w.transpose(3, 1, 2, 0), wt, bt, pad)


def _lower_pool(g: ir.Graph, op: ir.Pool2D) -> PoolStep:
    where = _where(g, op)
    x, y = op.inputs[0], op.outputs[0]
    _int8_act(g, x, where)
    s_out, zp_out = _int8_act(g, y, where)
    in_d = Dims.of(g.tensor(x).shape)
    _check_window_rows(op.filter_h, where)
    oh = _out_size(op.padding, in_d.h, op.filter_h, op.stride_h, 1)
    ow = _out_size(op.padding, in_d.w, op.filter_w, op.stride_w, 1)
    _check_shape(g, y, (in_d.n, oh, ow, in_d.c), where)
    act_min, act_max = activation_range(op.activation, s_out, zp_out)
    return PoolStep(
        name=_step_name(g, op), op_index=op.index, reads=(x,), writes=(y,),
        kind="max" if isinstance(op, ir.MaxPool2D) else "avg", input=x, output=y,
        input_dims=in_d, filter_hw=(op.filter_h, op.filter_w),
        output_dims=Dims(in_d.n, oh, ow, in_d.c), stride=(op.stride_h, op.stride_w),
        padding=(_pad(in_d.h, op.filter_h, op.stride_h, 1, oh),
                 _pad(in_d.w, op.filter_w, op.stride_w, 1, ow)),
        act_min=act_min, act_max=act_max,
    )


def mean_multiplier(s_in: float, s_out: float, n: int) -> tuple[int, int]:
    """The reference folds 1/N into QuantizeMultiplier(s_in / s_out) at Eval time, truncating."""
    mult, shift = quantize_multiplier(float(s_in) / float(s_out))
    s = min(n.bit_length() - 1, 32, 31 + shift)
    return int((mult << s) // n), shift - s


def _lower_mean(g: ir.Graph, op: ir.Mean) -> MeanStep:
    where = _where(g, op)
    x, y = op.inputs[0], op.outputs[0]
    s_in, zp_in = _int8_act(g, x, where)
    s_out, zp_out = _int8_act(g, y, where)
    shape = g.tensor(x).shape
    if len(shape) != 4 or op.axes != (1, 2):
        raise ModelError(f"{where}: MEAN over axes {list(op.axes)} of a rank-{len(shape)} "
                         "tensor; only the mean over height and width of NHWC is supported")
    in_d = Dims.of(shape)
    n = in_d.h * in_d.w
    mult, shift = mean_multiplier(s_in, s_out, n)
    out_shape = (in_d.n, 1, 1, in_d.c) if op.keep_dims else (in_d.n, in_d.c)
    _check_shape(g, y, out_shape, where)
    return MeanStep(
        name=_step_name(g, op), op_index=op.index, reads=(x,), writes=(y,), input=x, output=y,
        input_dims=in_d, output_dims=Dims(in_d.n, 1, 1, in_d.c), input_offset=-zp_in,
        output_offset=zp_out, multiplier=mult, shift=shift,
    )


def requantize_params(s_in: float, s_out: float) -> tuple[int, int]:
    """QUANTIZE int8 -> int8: QuantizeMultiplier(double(s_in) / double(s_out))."""
    return quantize_multiplier(float(s_in) / float(s_out))


def _lower_concat(g: ir.Graph, op: ir.Concatenation) -> ConcatStep:
    where = _where(g, op)
    if op.activation is not ir.Activation.NONE:
        raise ModelError(f"{where}: CONCATENATION with a fused activation is not supported")
    y = op.outputs[0]
    s_out, zp_out = _int8_act(g, y, where)
    out_shape = g.tensor(y).shape
    rank = len(out_shape)
    axis = op.axis % rank
    nhwc_axis = nhwc_axis_of(rank, axis)
    parts = []
    offset = 0
    for t in op.inputs:
        s_in, zp_in = _int8_act(g, t, where)
        shape = g.tensor(t).shape
        if len(shape) != rank or any(shape[i] != out_shape[i] for i in range(rank) if i != axis):
            raise ModelError(f"{where}: input '{g.tensor(t).name}' shape {tuple(shape)} does not "
                             f"fit the output {tuple(out_shape)} along axis {axis}")
        same = s_in == s_out and zp_in == zp_out
        m, sh = (0, 0) if same else requantize_params(s_in, s_out)
        parts.append(ConcatPart(input=t, input_dims=Dims.of(shape), axis_offset=offset,
                                requantize=not same, input_offset=-zp_in, output_offset=zp_out,
                                multiplier=m, shift=sh))
        offset += shape[axis]
    if offset != out_shape[axis]:
        raise ModelError(f"{where}: inputs add up to {offset} along axis {axis}, the output has "
                         f"{out_shape[axis]}")
    return ConcatStep(name=_step_name(g, op), op_index=op.index, reads=tuple(op.inputs),
                      writes=(y,), output=y, axis=nhwc_axis, output_dims=Dims.of(out_shape),
                      parts=tuple(parts))


def add_params(s1: float, s2: float, s_out: float) -> tuple[tuple[int, int], ...]:
    """ADD's Prepare: doubled max input scale in float, the 2^20 factor in float, rest double."""
    twice_max = float(np.float32(2) * np.float32(max(s1, s2)))
    r1 = float(s1) / twice_max
    r2 = float(s2) / twice_max
    ro = twice_max / float(np.float32(1 << 20) * np.float32(s_out))
    return (quantize_multiplier_smaller_than_one_exp(r1),
            quantize_multiplier_smaller_than_one_exp(r2),
            quantize_multiplier_smaller_than_one_exp(ro))


def _lower_add(g: ir.Graph, op: ir.Add) -> AddStep:
    where = _where(g, op)
    a, b = op.inputs[0], op.inputs[1]
    y = op.outputs[0]
    s1, zp1 = _int8_act(g, a, where)
    s2, zp2 = _int8_act(g, b, where)
    s_out, zp_out = _int8_act(g, y, where)
    sa, sb, sy = g.tensor(a).shape, g.tensor(b).shape, g.tensor(y).shape
    if not (tuple(sa) == tuple(sb) == tuple(sy)):
        raise ModelError(f"{where}: ADD with broadcasting ({tuple(sa)} + {tuple(sb)}) is not "
                         "supported; both inputs must have the output's shape")
    if not 2 * max(s1, s2) < (1 << 20) * s_out:
        raise ModelError(f"{where}: input scales too large for the output scale (the reference "
                         "rejects this ADD)")
    (m1, e1), (m2, e2), (mo, eo) = add_params(s1, s2, s_out)
    act_min, act_max = activation_range(op.activation, s_out, zp_out)
    return AddStep(
        name=_step_name(g, op), op_index=op.index, reads=(a, b), writes=(y,), input1=a,
        input2=b, output=y, dims=Dims.of(sy), input1_offset=-zp1, input2_offset=-zp2,
        output_offset=zp_out, left_shift=20, input1_multiplier=m1, input1_shift=e1,
        input2_multiplier=m2, input2_shift=e2, output_multiplier=mo, output_shift=eo,
        act_min=act_min, act_max=act_max,
    )


SCALED_DIFF_INTEGER_BITS = 5


def softmax_params(beta: float, s_in: float) -> tuple[int, int, int]:
    """PreprocessSoftmaxScaling + CalculateInputRadius, in double as the reference does."""
    real = min(float(beta) * float(s_in) * float(1 << (31 - SCALED_DIFF_INTEGER_BITS)),
               float(2**31 - 1))
    if not real > 1.0:
        raise ValueError("softmax input scale too small")
    m, left_shift = quantize_multiplier(real)
    if left_shift < 0:
        raise ValueError("softmax multiplier below one")
    radius = math.floor(
        1.0 * ((1 << SCALED_DIFF_INTEGER_BITS) - 1) * (1 << (31 - SCALED_DIFF_INTEGER_BITS))
        / (1 << left_shift)
    )
    return m, left_shift, -radius


def _lower_softmax(g: ir.Graph, op: ir.Softmax) -> SoftmaxStep:
    where = _where(g, op)
    x, y = op.inputs[0], op.outputs[0]
    s_in, _ = _int8_act(g, x, where)
    s_out, zp_out = _int8_act(g, y, where)
    if zp_out != -128 or abs(s_out - 1.0 / 256) > 0.001 / 256:
        raise ModelError(f"{where}: int8 SOFTMAX output must have scale 1/256 and zero point "
                         f"-128 (has {s_out}, {zp_out})")
    try:
        m, ls, diff_min = softmax_params(op.beta, s_in)
    except ValueError:
        # The reference's Prepare aborts here (QuantizeMultiplierGreaterThanOne), so there is
        # no output to match; it happens when the logits are constant to float precision.
        raise ModelError(
            f"{where}: its input '{g.tensor(x).name}' has scale {s_in:.3g}, so the logits span "
            f"at most {255 * s_in:.3g}: the model's output is constant (untrained or collapsed "
            "weights, e.g. keras.applications with weights=None, whose activations shrink "
            "layer after layer). LiteRT's reference cannot run this SOFTMAX, so there is no "
            "output to match. Train the model (sqz-train) or load trained weights, or leave "
            "the softmax out of the model") from None
    d = Dims.of(g.tensor(x).shape)
    return SoftmaxStep(name=_step_name(g, op), op_index=op.index, reads=(x,), writes=(y,),
                       input=x, output=y, dims=d, input_multiplier=m, input_left_shift=ls,
                       diff_min=diff_min)


def exact_double(value: float) -> tuple[int, int]:
    """(mantissa, exponent) with value == mantissa * 2**exponent and a 53-bit mantissa."""
    if value == 0.0:
        return 0, 0
    frac, exp = math.frexp(value)
    mant = int(frac * (1 << 53))
    return mant, exp - 53


def _lower_fc(g: ir.Graph, op: ir.FullyConnected) -> FullyConnectedStep:
    where = _where(g, op)
    x, w_t = op.inputs[0], op.inputs[1]
    b_t = op.inputs[2] if len(op.inputs) > 2 else -1
    y = op.outputs[0]
    s_in, zp_in = _int8_act(g, x, where)
    s_out, zp_out = _int8_act(g, y, where)
    wt = g.tensor(w_t)
    if not wt.is_const or wt.dtype is not ir.DType.INT8 or wt.quant is None:
        raise ModelError(f"{where}: weights '{wt.name}' must be constant int8")
    w = wt.array().astype(np.int64)
    units, depth = w.shape
    in_elems = g.tensor(x).num_elements
    if in_elems % depth:
        raise ModelError(f"{where}: input of {in_elems} values is not a multiple of {depth}")
    rows = in_elems // depth
    if g.tensor(y).num_elements != rows * units:
        raise ModelError(f"{where}: output tensor has the wrong number of values")
    per_channel = wt.quant.per_channel
    scales = wt.quant.scale if per_channel else wt.quant.scale * units
    filter_offset = 0 if per_channel else -wt.quant.zero_point[0]
    if b_t >= 0:
        bias = g.tensor(b_t).array().astype(np.int64).reshape(-1)
    else:
        bias = np.zeros(units, np.int64)
    input_offset = -zp_in
    folded = (bias + input_offset * w.sum(axis=1)
              + depth * input_offset * filter_offset)
    exact = [exact_double(float(s_in) * float(s_w) / float(s_out)) for s_w in scales]
    act_min, act_max = activation_range(op.activation, s_out, zp_out)
    return FullyConnectedStep(
        name=_step_name(g, op), op_index=op.index, reads=(x,), writes=(y,), input=x, output=y,
        input_dims=Dims(rows, 1, 1, depth), filter_dims=Dims(units, 1, 1, depth),
        output_dims=Dims(rows, 1, 1, units), filter=wt.data or b"",
        bias=tuple(int(v) for v in folded), scale_mantissa=tuple(m for m, _ in exact),
        scale_exponent=tuple(e for _, e in exact), filter_offset=filter_offset,
        output_offset=zp_out,
        act_min=act_min, act_max=act_max,
    )


def _lower_quantize(g: ir.Graph, op: ir.Quantize) -> RequantizeStep:
    where = _where(g, op)
    x, y = op.inputs[0], op.outputs[0]
    if g.tensor(x).dtype is ir.DType.FLOAT32:
        raise ModelError(f"{where}: a float -> int8 QUANTIZE inside the graph; only the input "
                         "edge may be float (the device takes int8 input)")
    s_in, zp_in = _int8_act(g, x, where)
    s_out, zp_out = _int8_act(g, y, where)
    m, sh = requantize_params(s_in, s_out)
    return RequantizeStep(name=_step_name(g, op), op_index=op.index, reads=(x,), writes=(y,),
                          input=x, output=y, dims=Dims.of(g.tensor(x).shape),
                          input_offset=-zp_in, output_offset=zp_out, multiplier=m, shift=sh)


_LOWER = {
    ir.Conv2D: _lower_conv,
    ir.DepthwiseConv2D: _lower_depthwise,
    ir.MaxPool2D: _lower_pool,
    ir.AveragePool2D: _lower_pool,
    ir.Mean: _lower_mean,
    ir.Concatenation: _lower_concat,
    ir.Add: _lower_add,
    ir.Softmax: _lower_softmax,
    ir.FullyConnected: _lower_fc,
    ir.Quantize: _lower_quantize,
}


def check_integer_model(g: ir.Graph) -> None:
    """Reject float and hybrid models up front, with the reason in terms the user knows."""
    int8_weights = any(t.is_const and t.dtype is ir.DType.INT8 for t in g.tensors)
    for op in g.ops:
        if isinstance(op, ir.Quantize | ir.Dequantize):
            continue
        for t in (*op.inputs, *op.outputs):
            if t < 0:
                continue
            tensor = g.tensor(t)
            if tensor.is_const:
                continue
            if tensor.dtype is ir.DType.FLOAT32:
                kind = "hybrid (int8 weights, float activations)" if int8_weights else "float"
                raise ModelError(
                    f"{g.source}: this is a {kind} model ({_where(g, op)} has float32 tensor "
                    f"'{tensor.name}'). sqz needs a full-integer int8 model: give the Keras "
                    "model to sqz-convert, which quantizes it, or convert with "
                    "TFLITE_BUILTINS_INT8 and int8 input and output"
                )


def lower(g: ir.Graph) -> Lowered:
    check_integer_model(g)
    if len(g.inputs) != 1 or len(g.outputs) != 1:
        raise ModelError(f"{g.source}: the model has {len(g.inputs)} inputs and "
                         f"{len(g.outputs)} outputs; sqz supports exactly one of each")
    inp, out = g.inputs[0], g.outputs[0]
    steps: list[Step] = []
    aliases: dict[int, int] = {}
    pads: dict[int, FoldedPad] = {}  # a PAD's output -> what the convs it feeds read
    loaded: set[int] = set()
    for op in g.ops:
        # Float edges are the host's business: the device starts and ends in int8.
        if isinstance(op, ir.Quantize) and op.inputs[0] == inp and \
                g.tensor(inp).dtype is ir.DType.FLOAT32:
            inp = op.outputs[0]
            continue
        if isinstance(op, ir.Dequantize):
            if op.outputs[0] == out:
                out = op.inputs[0]
                continue
            raise ModelError(f"{_where(g, op)}: DEQUANTIZE inside the graph; the device has no "
                             "float")
        if isinstance(op, ir.Reshape):
            aliases[op.outputs[0]] = op.inputs[0]
            continue
        if isinstance(op, ir.Pad):
            pads[op.outputs[0]] = _fold_pad(g, op)
            continue
        fn = _LOWER.get(type(op))
        if fn is None:
            raise ModelError(f"unsupported op: {_op_label(op)} at op #{op.index} (output tensor "
                             f"'{g.tensor(op.outputs[0]).name}')")
        folded = pads.get(op.inputs[0]) if op.inputs else None
        step = fn(g, op, folded) if folded is not None else fn(g, op)
        for t in step.reads:
            tensor = g.tensor(t)
            if tensor.is_const and t not in loaded:
                _int8_act(g, t, _where(g, op))
                steps.append(ConstStep(name=short_name(tensor.name, "constant"),
                                       op_index=op.index, reads=(), writes=(t,), output=t,
                                       data=tensor.data or b""))
                loaded.add(t)
        steps.append(step)
    if not steps:
        raise ModelError(f"{g.source}: the model computes nothing the device would run (no ops "
                         "besides reshapes and edge conversions)")
    _int8_act(g, inp, "model input")
    _int8_act(g, out, "model output")
    logits = None
    if steps and isinstance(steps[-1], SoftmaxStep) and steps[-1].output == out:
        logits = steps[-1].input
    return Lowered(graph=g, steps=tuple(steps), aliases=aliases, input=inp, output=out,
                   logits=logits)
