"""One-op golden tests: every kernel against LiteRT BUILTIN_REF, bit for bit.

Hypothesis sweeps shapes, kernel sizes, strides, padding, channel counts, scales and zero
points. Each example builds a .tflite, converts it with sqz, compiles the generated C and
compares its int8 outputs with the reference interpreter's. The ops that have kernel variants
(CONV_2D, the pools) run for every architecture (converter.arch): on the host, a variant's
sources compile to their portable equivalents (e.g. firmware/src/arch/armv7em/dsp.h), so its
layouts, padding and requantization are checked here, and on QEMU by tests/test_qemu_kernels.py.
"""

from __future__ import annotations

import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as s
from golden import reference
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from tflbuild import GraphBuilder, add_conv, add_depthwise, conv_out_size, pool_options

from converter import arch as archs

# Every architecture whose kernels build and run on the host (portable; armv7em through the C
# that computes what its DSP instructions do); the emulated boards run their own kernels in
# tests/test_kernels_target.py.
ARCHS = pytest.mark.parametrize("arch", [a for a in archs.available() if archs.runs_on_host(a)])

# No shrinking: each example compiles C, and a failure is readable as generated. 30 per
# test and architecture (CI time); the emulated boards sweep their own in test_kernels_target.
EXAMPLES = settings(max_examples=30, deadline=None,
                    phases=[Phase.explicit, Phase.reuse, Phase.generate],
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])

scales = st.floats(min_value=1e-3, max_value=2.0).map(lambda v: float(np.float32(v)))
zero_points = st.integers(-128, 127)
acts = st.sampled_from(["none", "relu", "relu6"])


def _inputs(rng, shape, n=6):
    return rng.integers(-128, 128, size=(n, *shape[1:]), dtype=np.int8)


def _check(runner, buf, inputs, **convert_kw):
    ours = runner.run(buf, inputs, **convert_kw)
    ref = reference(buf, inputs)
    assert ours.shape == ref.shape
    diff = np.abs(ours.astype(np.int32) - ref.astype(np.int32))
    assert diff.max() == 0, (
        f"{int((diff > 0).sum())} of {diff.size} values differ, max {diff.max()}")


@st.composite
def conv_cases(draw):
    k = (draw(st.sampled_from([1, 2, 3, 5])), draw(st.sampled_from([1, 3, 4])))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = draw(st.sampled_from(["same", "valid"]))
    h = draw(st.integers(1, 12))
    w = draw(st.integers(1, 12))
    if padding == "valid":
        h = max(h, (k[0] - 1) * dilation[0] + 1)
        w = max(w, (k[1] - 1) * dilation[1] + 1)
    cin = draw(st.integers(1, 12))
    cout = draw(st.integers(1, 12))
    per_channel = draw(st.booleans())
    return dict(shape=(1, h, w, cin), cout=cout, k=k, stride=stride, dilation=dilation,
                padding=padding, act=draw(acts), in_q=(draw(scales), draw(zero_points)),
                out_q=(draw(scales), draw(zero_points)), per_channel=per_channel,
                w_scale=draw(st.floats(1e-4, 5e-2)), seed=draw(st.integers(0, 2**31)))


def build_conv2d(case):
    rng = np.random.default_rng(case["seed"])
    g = GraphBuilder()
    x = g.tensor("x", case["shape"], "int8", *case["in_q"])
    n = case["cout"]
    ws = (rng.uniform(0.2, 1.0, n) * case["w_scale"] if case["per_channel"]
          else [case["w_scale"]])
    y, _ = add_conv(g, x, case["shape"], case["in_q"], n, case["k"], case["stride"],
                    case["padding"], case["act"], ws, case["out_q"], rng,
                    dilation=case["dilation"])
    return g.build([x], [y]), _inputs(rng, case["shape"])


@ARCHS
@EXAMPLES
@given(conv_cases())
def test_conv2d(sqz_runner, arch, case):
    _check(sqz_runner, *build_conv2d(case), arch=arch)


# Shapes the hypothesis sweep does not reach: rows wide and filters deep enough that the
# armv7em conv runs a row in several blocks of pixel pairs (odd pixels and channels at the
# ends), 1x1 convs over many channels, and conv1's shape (3 channels, stride 2).
WIDE_CONVS = [
    # (h, w, cin, cout, kernel, stride, padding, act)
    (5, 27, 128, 6, (3, 3), (1, 1), "same", "relu"),
    (3, 31, 130, 5, (3, 3), (2, 2), "same", "relu6"),
    (4, 40, 64, 7, (1, 1), (1, 1), "valid", "none"),
    (9, 33, 3, 9, (3, 3), (2, 2), "valid", "relu"),
    (6, 23, 16, 64, (3, 3), (1, 1), "same", "relu"),
]


@ARCHS
@pytest.mark.parametrize("case", WIDE_CONVS, ids=[
    f"{c[0]}x{c[1]}x{c[2]}-{c[3]}-k{c[4][0]}s{c[5][0]}-{c[6]}-{c[7]}" for c in WIDE_CONVS])
def test_conv2d_wide_rows(sqz_runner, arch, case):
    h, w, cin, cout, k, stride, padding, act = case
    rng = np.random.default_rng(h * 1000 + w)
    g = GraphBuilder()
    shape = (1, h, w, cin)
    in_q = (0.02, -3)
    x = g.tensor("x", shape, "int8", *in_q)
    ws = rng.uniform(0.2, 1.0, cout) * 2e-3
    y, _ = add_conv(g, x, shape, in_q, cout, k, stride, padding, act, ws, (0.05, -20), rng)
    _check(sqz_runner, g.build([x], [y]), _inputs(rng, shape, n=3), arch=arch)


@st.composite
def depthwise_cases(draw):
    """DEPTHWISE_CONV_2D: any multiplier, stride, padding and dilation."""
    case = draw(conv_cases())
    m = draw(st.sampled_from([1, 1, 2, 3]))
    case.update(multiplier=m, cout=case["shape"][3] * m,
                k=(draw(st.sampled_from([1, 3, 5])), draw(st.sampled_from([1, 3, 5]))))
    if case["padding"] == "valid":
        _, h, w, c = case["shape"]
        case["shape"] = (1, max(h, (case["k"][0] - 1) * case["dilation"][0] + 1),
                         max(w, (case["k"][1] - 1) * case["dilation"][1] + 1), c)
    return case


def _channel_scales(rng, case, n):
    return (rng.uniform(0.2, 1.0, n) * case["w_scale"] if case["per_channel"]
            else [case["w_scale"]])


def build_depthwise(case):
    rng = np.random.default_rng(case["seed"])
    g = GraphBuilder()
    x = g.tensor("x", case["shape"], "int8", *case["in_q"])
    ws = _channel_scales(rng, case, case["cout"])
    y, _ = add_depthwise(g, x, case["shape"], case["in_q"], case["multiplier"], case["k"],
                         case["stride"], case["padding"], case["act"], ws, case["out_q"], rng,
                         dilation=case["dilation"])
    return g.build([x], [y]), _inputs(rng, case["shape"])


@st.composite
def grouped_cases(draw):
    """Grouped CONV_2D: groups dividing both channel counts, 1 to 4 channels per group."""
    case = draw(conv_cases())
    groups = draw(st.integers(2, 4))
    per_in, per_out = draw(st.integers(1, 4)), draw(st.integers(1, 3))
    case.update(groups=groups, cout=groups * per_out,
                shape=(*case["shape"][:3], groups * per_in))
    return case


def build_grouped(case):
    rng = np.random.default_rng(case["seed"])
    g = GraphBuilder()
    x = g.tensor("x", case["shape"], "int8", *case["in_q"])
    ws = _channel_scales(rng, case, case["cout"])
    y, _ = add_conv(g, x, case["shape"], case["in_q"], case["cout"], case["k"], case["stride"],
                    case["padding"], case["act"], ws, case["out_q"], rng,
                    dilation=case["dilation"], groups=case["groups"])
    return g.build([x], [y]), _inputs(rng, case["shape"])


# Once per architecture, since each selects its own kernel (grouped layers: the portable
# grouped kernel everywhere; depthwise with multiplier 1: each architecture's record kernel).
# Fewer examples than the dense sweeps (CI time): the boards sweep 24 more each.
GROUPED_EXAMPLES = settings(EXAMPLES, max_examples=10)


@ARCHS
@GROUPED_EXAMPLES
@given(depthwise_cases())
def test_depthwise_conv2d(sqz_runner, arch, case):
    _check(sqz_runner, *build_depthwise(case), arch=arch)


@ARCHS
@GROUPED_EXAMPLES
@given(grouped_cases())
def test_grouped_conv2d(sqz_runner, arch, case):
    _check(sqz_runner, *build_grouped(case), arch=arch)


# MobileNet's depthwise shapes: 3x3 at stride 1 and 2 over wide rows and many channels.
DEPTHWISE_SHAPES = [
    # (h, w, c, multiplier, kernel, stride, padding)
    (6, 24, 64, 1, (3, 3), (1, 1), "same"),
    (7, 25, 48, 1, (3, 3), (2, 2), "same"),
    (5, 12, 17, 1, (5, 5), (1, 1), "same"),
    (5, 9, 8, 4, (3, 3), (1, 1), "valid"),
]


@ARCHS
@pytest.mark.parametrize("case", DEPTHWISE_SHAPES, ids=[
    f"{c[0]}x{c[1]}x{c[2]}-m{c[3]}-k{c[4][0]}s{c[5][0]}-{c[6]}" for c in DEPTHWISE_SHAPES])
def test_depthwise_wide_rows(sqz_runner, arch, case):
    h, w, c, m, k, stride, padding = case
    rng = np.random.default_rng(h * 100 + c)
    g = GraphBuilder()
    shape = (1, h, w, c)
    in_q = (0.03, 7)
    x = g.tensor("x", shape, "int8", *in_q)
    ws = rng.uniform(0.2, 1.0, c * m) * 1e-2
    y, _ = add_depthwise(g, x, shape, in_q, m, k, stride, padding, "relu6", ws, (0.05, -128),
                         rng)
    buf = g.build([x], [y])
    _, conv = sqz_runner.compile(buf, arch=arch)
    kernel = next(s.kernel for s in conv.lowered.steps if hasattr(s, "kernel"))
    if m == 1:  # each architecture's own depthwise kernel where it has one that takes it
        assert kernel == {"armv7em": "sqz_depthwise_s8_armv7em_row",
                          "esp32s3": ("sqz_depthwise_s8_pie_row" if c % 16 == 0
                                      else "sqz_depthwise_s8_row")}.get(
                                          arch, "sqz_depthwise_s8_row")
    _check(sqz_runner, buf, _inputs(rng, shape, n=3), arch=arch)


@ARCHS
def test_depthwise_beyond_the_records_proof(sqz_runner, arch):
    """Biases near 2^30 leave no room for the record kernels' 32-bit output stage: the layer
    falls back to the grouped kernel (its multiplier-1 path), still bit-exact."""
    rng = np.random.default_rng(7)
    g = GraphBuilder()
    shape = (1, 5, 6, 12)
    in_q = (0.02, 3)
    x = g.tensor("x", shape, "int8", *in_q)
    ws = rng.uniform(0.2, 1.0, 12) * 1e-2
    y, _ = add_depthwise(g, x, shape, in_q, 1, (3, 3), (1, 1), "same", "none", ws, (0.5, 0),
                         rng, bias=[(-1) ** i * (2**30 - 7 * i) for i in range(12)])
    buf = g.build([x], [y])
    _, conv = sqz_runner.compile(buf, arch=arch)
    assert [s.kernel for s in conv.lowered.steps if hasattr(s, "kernel")] == [
        "sqz_conv_s8_grouped_row"]
    _check(sqz_runner, buf, _inputs(rng, shape, n=3), arch=arch)


@st.composite
def pad_cases(draw):
    """PAD of height and width, folded into the CONV_2D or DEPTHWISE_CONV_2D it feeds."""
    case = draw(conv_cases())
    pads = [draw(st.integers(0, 3)) for _ in range(4)]
    kind = draw(st.sampled_from(["conv", "depthwise"]))
    _, h, w, c = case["shape"]
    # VALID after the pad, as keras.layers.ZeroPadding2D + a valid conv gives.
    hp, wp = h + pads[0] + pads[1], w + pads[2] + pads[3]
    eff_h = (case["k"][0] - 1) * case["dilation"][0] + 1
    eff_w = (case["k"][1] - 1) * case["dilation"][1] + 1
    pads[1] += max(0, eff_h - hp)
    pads[3] += max(0, eff_w - wp)
    case.update(pads=pads, kind=kind, padding=draw(st.sampled_from(["valid", "same"])))
    if kind == "depthwise":
        case.update(multiplier=1, cout=c)
    return case


def build_pad(case):
    rng = np.random.default_rng(case["seed"])
    g = GraphBuilder()
    x = g.tensor("x", case["shape"], "int8", *case["in_q"])
    top, bottom, left, right = case["pads"]
    n, h, w, c = case["shape"]
    padded = (n, h + top + bottom, w + left + right, c)
    pt = g.tensor("paddings", (4, 2), "int32", data=[[0, 0], [top, bottom], [left, right],
                                                      [0, 0]])
    xp = g.tensor("x_padded", padded, "int8", *case["in_q"])
    g.op("PAD", [x, pt], [xp], "PadOptions", s.PadOptionsT())
    ws = _channel_scales(rng, case, case["cout"])
    if case["kind"] == "depthwise":
        y, _ = add_depthwise(g, xp, padded, case["in_q"], 1, case["k"], case["stride"],
                             case["padding"], case["act"], ws, case["out_q"], rng,
                             dilation=case["dilation"])
    else:
        y, _ = add_conv(g, xp, padded, case["in_q"], case["cout"], case["k"], case["stride"],
                        case["padding"], case["act"], ws, case["out_q"], rng,
                        dilation=case["dilation"])
    return g.build([x], [y]), _inputs(rng, case["shape"])


@ARCHS
@GROUPED_EXAMPLES
@given(pad_cases())
def test_pad_folded_into_the_conv(sqz_runner, arch, case):
    _check(sqz_runner, *build_pad(case), arch=arch)


def test_pad_that_is_the_model_output_is_refused(sqz_runner):
    """Folding would leave nothing writing the output (found by review: it returned the
    arena's bytes)."""
    from converter.errors import ModelError

    g = GraphBuilder()
    x = g.tensor("x", (1, 4, 4, 3), "int8", 0.1, 0)
    pt = g.tensor("paddings", (4, 2), "int32", data=[[0, 0], [1, 1], [1, 1], [0, 0]])
    xp = g.tensor("x_padded", (1, 6, 6, 3), "int8", 0.1, 0)
    g.op("PAD", [x, pt], [xp], "PadOptions", s.PadOptionsT())
    add_conv(g, xp, (1, 6, 6, 3), (0.1, 0), 2, (3, 3), (1, 1), "valid", "none", [0.01],
             (0.2, 0), np.random.default_rng(0))
    with pytest.raises(ModelError, match="the PAD's output is the model's output"):
        sqz_runner.compile(g.build([x], [xp]))


def test_pad_feeding_anything_but_a_conv_is_refused(sqz_runner):
    from converter.errors import ModelError

    g = GraphBuilder()
    x = g.tensor("x", (1, 4, 4, 3), "int8", 0.1, 0)
    pt = g.tensor("paddings", (4, 2), "int32", data=[[0, 0], [1, 1], [1, 1], [0, 0]])
    xp = g.tensor("x_padded", (1, 6, 6, 3), "int8", 0.1, 0)
    g.op("PAD", [x, pt], [xp], "PadOptions", s.PadOptionsT())
    y = g.tensor("y", (1, 3, 3, 3), "int8", 0.1, 0)
    g.op("MAX_POOL_2D", [xp], [y], "Pool2DOptions", pool_options((2, 2), (2, 2)))
    with pytest.raises(ModelError, match="the PAD feeds MAX_POOL_2D; sqz folds a PAD only into "
                                         "the convolutions it feeds"):
        sqz_runner.compile(g.build([x], [y]))


@st.composite
def pool_cases(draw):
    k = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    padding = draw(st.sampled_from(["same", "valid"]))
    h = draw(st.integers(1, 12))
    w = draw(st.integers(1, 12))
    if padding == "valid":
        h, w = max(h, k[0]), max(w, k[1])
    return dict(kind=draw(st.sampled_from(["MAX_POOL_2D", "AVERAGE_POOL_2D"])),
                shape=(1, h, w, draw(st.integers(1, 16))), k=k,
                stride=(draw(st.integers(1, 3)), draw(st.integers(1, 3))), padding=padding,
                act=draw(acts), q=(draw(scales), draw(zero_points)),
                seed=draw(st.integers(0, 2**31)))


def build_pool(case):
    rng = np.random.default_rng(case["seed"])
    g = GraphBuilder()
    shape = case["shape"]
    x = g.tensor("x", shape, "int8", *case["q"])
    oh = conv_out_size(shape[1], case["k"][0], case["stride"][0], case["padding"])
    ow = conv_out_size(shape[2], case["k"][1], case["stride"][1], case["padding"])
    y = g.tensor("y", (1, oh, ow, shape[3]), "int8", *case["q"])
    g.op(case["kind"], [x], [y], "Pool2DOptions",
         pool_options(case["k"], case["stride"], case["padding"], case["act"]))
    return g.build([x], [y]), _inputs(rng, shape)


@ARCHS
@EXAMPLES
@given(pool_cases())
def test_pool(sqz_runner, arch, case):
    _check(sqz_runner, *build_pool(case), arch=arch)


mean_cases = st.fixed_dictionaries(dict(
    h=st.integers(1, 14), w=st.integers(1, 14), c=st.integers(1, 40), keep=st.booleans(),
    in_q=st.tuples(scales, zero_points), out_q=st.tuples(scales, zero_points),
    seed=st.integers(0, 2**31)))


def build_mean(case):
    h, w, c, keep, in_q, out_q = (case[k] for k in ("h", "w", "c", "keep", "in_q", "out_q"))
    rng = np.random.default_rng(case["seed"])
    g = GraphBuilder()
    x = g.tensor("x", (1, h, w, c), "int8", *in_q)
    axes = g.tensor("axes", (2,), "int32", data=[1, 2])
    y = g.tensor("y", (1, 1, 1, c) if keep else (1, c), "int8", *out_q)
    opt = s.ReducerOptionsT()
    opt.keepDims = keep
    g.op("MEAN", [x, axes], [y], "ReducerOptions", opt)
    return g.build([x], [y]), _inputs(rng, (1, h, w, c))


@EXAMPLES
@given(mean_cases)
def test_mean(sqz_runner, case):
    _check(sqz_runner, *build_mean(case))


add_cases = st.fixed_dictionaries(dict(
    shape=st.tuples(st.integers(1, 8), st.integers(1, 8), st.integers(1, 24)),
    s1=scales, s2=scales, so=scales, z1=zero_points, z2=zero_points, zo=zero_points, act=acts,
    seed=st.integers(0, 2**31)))


def build_add(case):
    shape, s1, s2, so, z1, z2, zo, act = (case[k] for k in (
        "shape", "s1", "s2", "so", "z1", "z2", "zo", "act"))
    rng = np.random.default_rng(case["seed"])
    full = (1, *shape)
    g = GraphBuilder()
    a = g.tensor("a", full, "int8", s1, z1)
    b = g.tensor("b", full, "int8", s2, z2)
    y = g.tensor("y", full, "int8", so, zo)
    opt = s.AddOptionsT()
    opt.fusedActivationFunction = {"none": 0, "relu": 1, "relu6": 3}[act]
    g.op("ADD", [a, b], [y], "AddOptions", opt)
    # The runner feeds one input, so the second operand is a constant (loaded into the arena).
    bdata = rng.integers(-128, 128, size=full, dtype=np.int8)
    g.tensors[b].buffer = len(g.buffers)
    buf_t = s.BufferT()
    buf_t.data = np.frombuffer(bdata.tobytes(), np.uint8)
    g.buffers.append(buf_t)
    return g.build([a], [y]), _inputs(rng, full)


@EXAMPLES
@given(add_cases)
def test_add(sqz_runner, case):
    _check(sqz_runner, *build_add(case))


softmax_cases = st.fixed_dictionaries(dict(
    rows=st.integers(1, 4), depth=st.integers(1, 300), s_in=scales, z_in=zero_points,
    beta=st.sampled_from([1.0, 0.5, 2.0]), seed=st.integers(0, 2**31)))


def build_softmax(case):
    rows, depth, s_in, z_in, beta = (case[k] for k in ("rows", "depth", "s_in", "z_in", "beta"))
    rng = np.random.default_rng(case["seed"])
    g = GraphBuilder()
    x = g.tensor("x", (1, rows, depth), "int8", s_in, z_in)
    y = g.tensor("y", (1, rows, depth), "int8", 1.0 / 256, -128)
    opt = s.SoftmaxOptionsT()
    opt.beta = beta
    g.op("SOFTMAX", [x], [y], "SoftmaxOptions", opt)
    return g.build([x], [y]), _inputs(rng, (1, rows, depth))


@EXAMPLES
@given(softmax_cases)
def test_softmax(sqz_runner, case):
    _check(sqz_runner, *build_softmax(case))


concat_cases = st.fixed_dictionaries(dict(
    n_in=st.integers(2, 4), axis=st.integers(1, 3), q=st.tuples(scales, zero_points),
    seed=st.integers(0, 2**31)))


def build_concatenation(case):
    n_in, axis, q = case["n_in"], case["axis"], case["q"]
    rng = np.random.default_rng(case["seed"])
    base = [1, int(rng.integers(1, 6)), int(rng.integers(1, 6)), int(rng.integers(1, 6))]
    g = GraphBuilder()
    x = g.tensor("x", base, "int8", *q)
    inputs = [x]
    sizes = [base[axis]]
    for i in range(1, n_in):
        shp = list(base)
        shp[axis] = int(rng.integers(1, 6))
        sizes.append(shp[axis])
        data = rng.integers(-128, 128, size=shp, dtype=np.int8)
        inputs.append(g.tensor(f"c{i}", shp, "int8", *q, data=data))
    out = list(base)
    out[axis] = sum(sizes)
    y = g.tensor("y", out, "int8", *q)
    opt = s.ConcatenationOptionsT()
    opt.axis = axis
    g.op("CONCATENATION", inputs, [y], "ConcatenationOptions", opt)
    return g.build([x], [y]), _inputs(rng, base)


@EXAMPLES
@given(concat_cases)
def test_concatenation(sqz_runner, case):
    _check(sqz_runner, *build_concatenation(case))


fc_cases = st.fixed_dictionaries(dict(
    rows=st.integers(1, 3), depth=st.integers(1, 64), units=st.integers(1, 16),
    per_channel=st.booleans(), w_zp=st.integers(-5, 5), in_q=st.tuples(scales, zero_points),
    out_q=st.tuples(scales, zero_points), act=acts, seed=st.integers(0, 2**31)))


def build_fully_connected(case):
    rows, depth, units, per_channel, w_zp, in_q, out_q, act = (case[k] for k in (
        "rows", "depth", "units", "per_channel", "w_zp", "in_q", "out_q", "act"))
    rng = np.random.default_rng(case["seed"])
    g = GraphBuilder()
    x = g.tensor("x", (rows, depth), "int8", *in_q)
    w = rng.integers(-127, 128, size=(units, depth), dtype=np.int64)
    if per_channel:
        ws = (rng.uniform(1e-3, 2e-2, units)).astype(np.float32)
        wt = g.tensor("w", (units, depth), "int8", ws, np.zeros(units), 0, w)
        bias_scale = (np.float32(in_q[0]) * ws).astype(np.float32)
    else:
        ws = np.float32(rng.uniform(1e-3, 2e-2))
        wt = g.tensor("w", (units, depth), "int8", ws, w_zp, 0, w)
        bias_scale = np.float32(np.float32(in_q[0]) * ws)
    b = rng.integers(-3000, 3000, size=(units,), dtype=np.int64)
    bt = g.tensor("b", (units,), "int32", bias_scale, 0, 0, b)
    y = g.tensor("y", (rows, units), "int8", *out_q)
    opt = s.FullyConnectedOptionsT()
    opt.fusedActivationFunction = {"none": 0, "relu": 1, "relu6": 3}[act]
    g.op("FULLY_CONNECTED", [x, wt, bt], [y], "FullyConnectedOptions", opt)
    # One batch row per runner input: the runner feeds whole (rows, depth) tensors.
    xs = rng.integers(-128, 128, size=(5, rows, depth), dtype=np.int8)
    return g.build([x], [y]), xs


@EXAMPLES
@given(fc_cases)
def test_fully_connected(sqz_runner, case):
    _check(sqz_runner, *build_fully_connected(case))


requantize_cases = st.fixed_dictionaries(dict(
    shape=st.tuples(st.integers(1, 6), st.integers(1, 6), st.integers(1, 8)),
    in_q=st.tuples(scales, zero_points), out_q=st.tuples(scales, zero_points),
    seed=st.integers(0, 2**31)))


def build_quantize_requantize(case):
    shape, in_q, out_q = case["shape"], case["in_q"], case["out_q"]
    rng = np.random.default_rng(case["seed"])
    full = (1, *shape)
    g = GraphBuilder()
    x = g.tensor("x", full, "int8", *in_q)
    y = g.tensor("y", full, "int8", *out_q)
    g.op("QUANTIZE", [x], [y])
    return g.build([x], [y]), _inputs(rng, full)


@EXAMPLES
@given(requantize_cases)
def test_quantize_requantize(sqz_runner, case):
    _check(sqz_runner, *build_quantize_requantize(case))


concat_requantize_cases = st.fixed_dictionaries(dict(
    n_in=st.integers(2, 3), qs=st.lists(st.tuples(scales, zero_points), min_size=4, max_size=4),
    seed=st.integers(0, 2**31)))


def build_concatenation_with_differing_scales(case):
    """The model, its inputs, and the model the reference runs: LiteRT refuses int8 concat
    inputs at another scale, so sqz defines them as QUANTIZE + concat, made explicit there."""
    from converter.frontend import tflite_edit

    n_in, qs = case["n_in"], case["qs"]
    rng = np.random.default_rng(case["seed"])
    base = [1, int(rng.integers(1, 6)), int(rng.integers(1, 6)), int(rng.integers(1, 6))]
    g = GraphBuilder()
    x = g.tensor("x", base, "int8", *qs[0])
    inputs = [x]
    for i in range(1, n_in):
        data = rng.integers(-128, 128, size=base, dtype=np.int8)
        inputs.append(g.tensor(f"c{i}", base, "int8", *qs[i], data=data))
    out = list(base)
    out[3] = base[3] * n_in
    y = g.tensor("y", out, "int8", *qs[3])
    opt = s.ConcatenationOptionsT()
    opt.axis = 3
    g.op("CONCATENATION", inputs, [y], "ConcatenationOptions", opt)
    buf = g.build([x], [y])
    return buf, _inputs(rng, base), tflite_edit.explicit_concat_requantize(buf)


@EXAMPLES
@given(concat_requantize_cases)
def test_concatenation_with_differing_scales(sqz_runner, case):
    """Inputs at other scales are requantized (int8 QUANTIZE semantics) into the output."""
    buf, xs, ref_buf = build_concatenation_with_differing_scales(case)
    assert np.array_equal(sqz_runner.run(buf, xs), reference(ref_buf, xs))
