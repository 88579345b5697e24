"""The ESP32-S3 PIE kernels (firmware/src/arch/esp32s3/, converter/arch/esp32s3.py).

On the host, without the emulator: the converter's requantization records, run through a
Python mirror of the assembly's integer steps, equal TFLite's MultiplyByQuantizedMultiplier
wherever `prove` accepts a layer (ties and extreme multipliers included), `prove` declines what
it cannot show with a reason, the layout and the scratch-size mirror agree with the C.

On the emulated ESP32-S3 (QEMU, bundle needed): one-op convs and max pools shaped to reach every
path of the kernels (1 to 7 vectors per pass, chunked patches, in-place 1x1 inputs, gathered
patches with padding, strides, odd channel counts, ReLU / ReLU6 / no activation, general zero
points), a batch per firmware boot, bit for bit against LiteRT BUILTIN_REF; and a SqueezeNet
with odd meta-parameters whose expand convs write in-place concatenation slices at odd channel
offsets. Every case asserts the PIE variant, not the portable fallback, ran."""

from __future__ import annotations

import ctypes
import re
import subprocess

import numpy as np
import pytest
from golden import reference as in_process_reference
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from qemu_batch import QemuBatch, missing_tools
from tflbuild import GraphBuilder, add_conv, conv_out_size, pool_options

from converter import arch, convert, targets
from converter.arch import esp32s3, portable
from converter.device import build, qemu
from converter.device.client import DeviceClient
from converter.frontend import reference
from converter.frontend.quantize import quantize_keras, synthetic_calibration
from converter.ir.quantmath import multiply_by_quantized_multiplier
from converter.ir.steps import ConvStep, Dims
from converter.models import squeezenet
from converter.paths import FIRMWARE

PIE = esp32s3
BOARD = "esp32s3-qemu"
ARCH_DIR = FIRMWARE / "src" / "arch" / "esp32s3"


def _step(*, n=3, h=1, w=1, c=16, bias=None, mult=None, shift=None, zp=-128, act=(-128, 127),
          weights=None, stride=(1, 1), padding=(0, 0), dilation=(1, 1), out_w=5):
    rng = np.random.default_rng(0)
    f = Dims(n, h, w, c)
    wt = weights if weights is not None else rng.integers(-127, 128, size=(n, h, w, c))
    return ConvStep(name="c", op_index=0, reads=(0,), writes=(1,), input=0, output=1,
                    input_dims=Dims(1, 9, 9, c), filter_dims=f, output_dims=Dims(1, 4, out_w, n),
                    filter=np.asarray(wt, np.int8).tobytes(),
                    bias=tuple(bias if bias is not None else [0] * n),
                    multiplier=tuple(mult if mult is not None else [1 << 30] * n),
                    shift=tuple(shift if shift is not None else [-1] * n), input_offset=128,
                    output_offset=zp, stride=stride, padding=padding, dilation=dilation,
                    act_min=act[0], act_max=act[1], output_pixel_stride=n)


def _as_int32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v


def _mirror(acc: int, rec, general: bool, act) -> int:
    """The assembly's PIE_REQUANT on a sum of products `acc`, step by step in 32-bit
    registers."""
    init, r, m2, k = (int(v) & 0xFFFFFFFF for v in rec[:4])
    a11 = (init + acc) & 0xFFFFFFFF       # rur.accx_0: ACCX after the MACs
    below = a11 < (int(rec[4]) & 0xFFFFFFFF) if general else False  # saltu a12, a11, a10
    a11 = (a11 * m2) >> 32                # muluh
    a11 = (a11 - below + k) & 0xFFFFFFFF  # sub, add
    a11 = _as_int32(a11) >> r             # sra, SAR = r
    return max(act[0], min(act[1], a11))


# ---- host: the proof and the layout --------------------------------------------------------

@settings(max_examples=300, deadline=None)
@given(mult=st.one_of(st.integers(0, 2**31 - 1),
                      st.sampled_from([0, 1 << 30, (1 << 30) + 1, 3 << 29, 2**31 - 1])),
       shift=st.integers(-25, 0), zp=st.integers(-128, 127), lo=st.integers(-128, 127),
       hi=st.integers(-128, 127), bias=st.integers(-(2**22), 2**22), seed=st.integers(0, 2**31))
def test_records_requantize_exactly_like_tflite(mult, shift, zp, lo, hi, bias, seed):
    lo, hi = min(lo, hi), max(lo, hi)
    s = _step(n=1, c=16, bias=[bias], mult=[mult], shift=[shift], zp=zp, act=(lo, hi),
              weights=np.random.default_rng(seed).integers(-127, 128, size=(1, 1, 1, 16)))
    if PIE.prove(s) is not None:
        return
    rec = PIE.records(s)
    general = PIE.general_mode(s)
    # x = sum of products + bias, the sum bounded by 128 * sum|w|.
    reach = 128 * int(np.abs(np.frombuffer(s.filter, np.int8).astype(int)).sum())
    lo_x, hi_x = bias - reach, bias + reach
    rng = np.random.default_rng(seed)
    xs = {lo_x, hi_x, bias, *rng.integers(lo_x, hi_x + 1, 200).tolist()}
    # Values next to the ties of both roundings (the doubling high multiply's and the shift's).
    right = max(-shift, 0)
    if mult:
        for q in rng.integers(-200, 200, 20).tolist():
            t = (q * 2 + 1) << max(right - 1, 0) if right else q
            x0 = (t << 31) // mult
            xs.update(v for v in (x0 - 1, x0, x0 + 1) if lo_x <= v <= hi_x)
    for x in xs:
        want = max(lo, min(hi, multiply_by_quantized_multiplier(x, mult, shift) + zp))
        assert _mirror(x - bias, rec, general, (lo, hi)) == want, (x, mult, shift, zp, lo, hi)


def test_prove_declines_what_it_cannot_show_exact():
    ok = _step()
    assert PIE.prove(ok) is None
    assert "reaches 2^30" in PIE.prove(_step(bias=[2**30, 0, 0]))
    assert "left shift 1" in PIE.prove(_step(shift=[-1, 1, -1]))
    # No ReLU-style clamp (act_min < zero point): needs a right shift and M > 2^30.
    assert "sign fix-up" in PIE.prove(_step(zp=0, shift=[0, -1, -1]))
    assert "sign fix-up" in PIE.prove(_step(zp=0, mult=[1 << 30] * 3))
    assert PIE.prove(_step(zp=0, mult=[(1 << 30) + 1] * 3)) is None
    assert "overflow int32" in PIE.prove(_step(shift=[-30, -1, -1]))
    assert "out of the kernel's range" in PIE.prove(_step(shift=[-32, -1, -1]))
    assert PIE.prove(_step(dilation=(2, 2), h=3, w=3)) == "dilated filter"
    assert arch.select_conv(_step(dilation=(2, 2), h=3, w=3), PIE.ARCH) is \
        portable.PORTABLE_CONV
    assert arch.select_conv(ok, PIE.ARCH) is PIE.PIE_CONV


def test_layout_is_records_then_rows_padded_per_filter_row():
    s = _step(n=2, h=3, w=3, c=3)  # conv1-like: 9 taps per filter row, padded to 16
    blob = s.filter_values() if s.kernel == PIE.PIE_CONV.symbol else PIE.filter_layout(s)
    assert PIE.row_len(s) == 48 and blob.size == 2 * (48 + PIE.RECORD)
    rec = blob[:2 * PIE.RECORD].view("<i4").reshape(-1)
    assert np.array_equal(rec, PIE.records(s))
    w = np.frombuffer(s.filter, np.int8).reshape(2, 3, 9)
    rows = blob[2 * PIE.RECORD:].reshape(2, 3, 16)
    assert np.array_equal(rows[:, :, :9], w) and not rows[:, :, 9:].any()


@pytest.fixture(scope="module")
def size_lib(tmp_path_factory):
    out = tmp_path_factory.mktemp("pie") / "libpiesize.so"
    cmd = [build.compiler(), *build.WARN_FLAGS, "-O1", "-shared", "-fPIC", "-I",
           str(build.include_dirs()[0]), str(ARCH_DIR / "conv_pie_size.c"), "-o", str(out)]
    subprocess.run(cmd, check=True, capture_output=True)
    return ctypes.CDLL(str(out))


class _CDims(ctypes.Structure):
    _fields_ = [(n, ctypes.c_int32) for n in ("n", "h", "w", "c")]


class _CParams(ctypes.Structure):
    _fields_ = [(n, ctypes.c_int32) for n in (
        "input_offset", "output_offset", "stride_h", "stride_w", "pad_h", "pad_w", "dil_h",
        "dil_w", "act_min", "act_max", "output_pixel_stride")]


@settings(max_examples=200, deadline=None)
@given(cin=st.integers(1, 600), cout=st.integers(1, 70), kh=st.integers(1, 5),
       kw=st.integers(1, 5), out_w=st.integers(1, 120), pad=st.integers(0, 2))
def test_scratch_and_row_length_mirror_the_c(size_lib, cin, cout, kh, kw, out_w, pad):
    s = _step(n=cout, h=kh, w=kw, c=cin, padding=(pad, pad), out_w=out_w,
              weights=np.zeros((cout, kh, kw, cin), np.int64))
    p = _CParams(128, -128, 1, 1, pad, pad, 1, 1, -128, 127, cout)
    args = [ctypes.byref(p), ctypes.byref(_CDims(*s.input_dims.as_tuple())),
            ctypes.byref(_CDims(*s.filter_dims.as_tuple())),
            ctypes.byref(_CDims(*s.output_dims.as_tuple()))]
    assert size_lib.sqz_conv_s8_pie_scratch_size(*args) == PIE.scratch_bytes(s)
    assert size_lib.sqz_conv_s8_pie_filter_row_len(args[0], args[2]) == PIE.row_len(s)
    assert PIE.PIE_CONV.filter_row_len(s) == PIE.row_len(s) + PIE.record_bytes(s)


# ---- the emulated ESP32-S3 ------------------------------------------------------------------

def _skip_without_bundle() -> None:
    missing = missing_tools(BOARD)
    if missing:
        pytest.skip(f"{', '.join(missing)} not found: {qemu.BOARDS[BOARD].install_hint}")


def _conv_model(h, w, cin, cout, k, stride, padding, act, in_q, out_q, seed, w_scale=3e-3):
    rng = np.random.default_rng(seed)
    g = GraphBuilder()
    shape = (1, h, w, cin)
    x = g.tensor("x", shape, "int8", *in_q)
    ws = rng.uniform(0.2, 1.0, cout) * w_scale
    y, _ = add_conv(g, x, shape, in_q, cout, k, stride, padding, act, ws, out_q, rng)
    return g.build([x], [y]), shape


def _pool_model(h, w, c, k, stride, padding, act, q):
    g = GraphBuilder()
    shape = (1, h, w, c)
    x = g.tensor("x", shape, "int8", *q)
    oh = conv_out_size(h, k[0], stride[0], padding)
    ow = conv_out_size(w, k[1], stride[1], padding)
    y = g.tensor("y", (1, oh, ow, c), "int8", *q)
    g.op("MAX_POOL_2D", [x], [y], "Pool2DOptions", pool_options(k, stride, padding, act))
    return g.build([x], [y]), shape


# name: (model, kernel the case must run on)
ONE_OP = {
    # conv1 of SqueezeNet: 3 channels (9 taps per filter row, 3 vectors), stride 2, valid.
    "conv1-3x3s2-c3": (lambda: _conv_model(19, 23, 3, 20, (3, 3), (2, 2), "valid", "relu",
                                           (0.02, -128), (0.03, -128), 1), "pie_row"),
    # Every vector count 1..7 of one pass: 1x1 over 16..112 channels, in place (direct).
    **{f"conv-1x1-c{16 * v}": (lambda v=v: _conv_model(3, 7, 16 * v, 9 + v, (1, 1), (1, 1),
                                                       "valid", "relu", (0.02, -128),
                                                       (0.05, -128), 10 + v), "pie_row")
       for v in range(1, 8)},
    # Chunked: 9 vectors (7 + 2), 17 vectors (7 + 7 + 3): fire expand3x3 shapes, pad 1.
    "conv-3x3-c16-chunked": (lambda: _conv_model(6, 11, 16, 21, (3, 3), (1, 1), "same", "relu",
                                                 (0.02, -128), (0.1, -128), 2), "pie_row"),
    "conv-3x3-c30-chunked-odd": (lambda: _conv_model(5, 7, 30, 7, (3, 3), (1, 1), "same",
                                                     "relu6", (0.02, -7), (0.04, -30), 3),
                                 "pie_row"),
    # 1x1 over 520 channels: 33 vectors, four full chunks and a last pass of 5.
    "conv-1x1-c520": (lambda: _conv_model(2, 5, 520, 6, (1, 1), (1, 1), "valid", "relu",
                                          (0.01, -128), (0.05, -128), 4, 1e-3), "pie_row"),
    # Odd channels in a 1x1 (gathered patches), stride 2, no activation (general mode).
    "conv-1x1-c37-s2-none": (lambda: _conv_model(7, 9, 37, 13, (1, 1), (2, 2), "valid", "none",
                                                 (0.05, 3), (0.1, 11), 5), "pie_row"),
    # A 5x3 filter with padding on every side, stride 2 x 1, 5 channels, general mode, ReLU6.
    "conv-5x3-pad-general": (lambda: _conv_model(7, 9, 5, 6, (5, 3), (2, 1), "same", "relu6",
                                                 (0.03, -100), (0.02, 40), 6), "pie_row"),
    # Rows in blocks of pixels (patches over 8 KB): a 7x7 conv1 of v1.0 over 3 channels,
    # padded; a chunked 3x3 over 64 channels in three blocks.
    "conv-7x7s2-c3-blocks": (lambda: _conv_model(9, 100, 3, 11, (7, 7), (2, 2), "same", "relu",
                                                 (0.02, -128), (0.05, -128), 8), "pie_row"),
    "conv-3x3-c64-blocks": (lambda: _conv_model(4, 40, 64, 5, (3, 3), (1, 1), "same", "relu",
                                                (0.02, -128), (0.1, -128), 9), "pie_row"),
    # One output column, one output row.
    "conv-3x3-one-pixel": (lambda: _conv_model(3, 3, 32, 4, (3, 3), (1, 1), "valid", "relu",
                                               (0.02, -128), (0.03, -128), 7), "pie_row"),
    # Max pools: SqueezeNet's 3x3/2, padding that clips, ReLU6 clamp, 2x2 windows, width 1.
    "maxpool-3x3s2-c64": (lambda: _pool_model(15, 17, 64, (3, 3), (2, 2), "valid", "none",
                                              (0.05, -128)), "pie_push"),
    "maxpool-3x3s2-same-relu6": (lambda: _pool_model(13, 15, 32, (3, 3), (2, 2), "same",
                                                     "relu6", (0.05, -10)), "pie_push"),
    "maxpool-2x2s2-c48": (lambda: _pool_model(8, 9, 48, (2, 2), (2, 2), "valid", "none",
                                              (0.1, 0)), "pie_push"),
    "maxpool-3x1s2x1-c16": (lambda: _pool_model(6, 5, 16, (3, 1), (2, 1), "valid", "relu",
                                              (0.1, 3)), "pie_push"),
}


def test_one_op_models_bit_exact_on_the_emulated_s3(tmp_path):
    _skip_without_bundle()
    batch = QemuBatch(BOARD, tmp_path)
    cases = []
    rng = np.random.default_rng(5)
    for name, (make, kernel) in ONE_OP.items():
        buf, shape = make()
        xs = rng.integers(-128, 128, size=(3, *shape[1:]), dtype=np.int8)
        i = batch.add(buf, xs)
        used = {s.kernel for s in batch.cases[i].conv.lowered.steps if hasattr(s, "kernel")}
        assert used and all(kernel in k for k in used), (name, used)
        cases.append((name, buf, xs))
    for (name, buf, xs), ours in zip(cases, batch.run(), strict=True):
        ref = in_process_reference(buf, xs).reshape(len(xs), -1)
        assert np.array_equal(ours, ref), name


def test_pie_layers_store_no_separate_bias_or_requantization():
    """The PIE conv reads each channel's bias and requantization from its record in the filter
    blob, so its layers emit no bias, multiplier and shift arrays (NULL in the schedule), and
    the weight bytes count only the blob; a portable layer of the same model keeps its own."""
    buf, _ = _conv_model(6, 11, 16, 21, (3, 3), (1, 1), "same", "relu", (0.02, -128),
                         (0.1, -128), 2)
    target = targets.load(BOARD)
    pie = convert.convert_tflite(buf, target, model_name="m", source_name="m.tflite")
    plain = convert.convert_tflite(buf, target, model_name="m", source_name="m.tflite",
                                   arch="portable")
    (s,) = [s for s in pie.lowered.steps if isinstance(s, ConvStep)]
    (p,) = [s for s in plain.lowered.steps if isinstance(s, ConvStep)]
    assert s.kernel == esp32s3.PIE_CONV.symbol and p.kernel == portable.PORTABLE_CONV.symbol
    data, schedule = pie.files["model_data.c"], pie.files["model.c"]
    assert not re.search(r"\bsqz_(bias|multiplier|shift)_1\b", data)
    assert ".quant = { NULL, NULL }" in schedule and ".bias = NULL" in schedule
    assert s.weight_bytes == s.filter_values().size
    assert re.search(r"\bsqz_bias_1\b", plain.files["model_data.c"])  # step 0: the input
    assert p.weight_bytes == p.filter_values().size + 4 * 21 + 5 * 21


ONE_BATCH = settings(max_examples=1, deadline=None,
                     phases=[Phase.explicit, Phase.reuse, Phase.generate],
                     suppress_health_check=[HealthCheck.function_scoped_fixture,
                                            HealthCheck.too_slow, HealthCheck.data_too_large])


@st.composite
def pie_conv_cases(draw):
    """Shapes the PIE conv takes, in all its paths; scales that keep most layers provable."""
    kh, kw = draw(st.sampled_from([1, 2, 3, 5])), draw(st.sampled_from([1, 3, 4]))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = draw(st.sampled_from(["same", "valid"]))
    cin = draw(st.one_of(st.integers(1, 40), st.sampled_from([16, 32, 48, 64, 96, 112, 128])))
    h, w = draw(st.integers(1, 9)), draw(st.integers(1, 14))
    if padding == "valid":
        h, w = max(h, kh), max(w, kw)
    return dict(shape=(h, w, cin), cout=draw(st.integers(1, 40)), k=(kh, kw), stride=stride,
                padding=padding, act=draw(st.sampled_from(["none", "relu", "relu6"])),
                in_q=(draw(st.floats(5e-3, 0.1)), draw(st.integers(-128, 127))),
                out_q=(draw(st.floats(0.01, 0.5)), draw(st.integers(-128, 127))),
                w_scale=draw(st.floats(1e-4, 1e-2)), seed=draw(st.integers(0, 2**31)))


def test_random_convs_bit_exact_on_the_emulated_s3(tmp_path):
    _skip_without_bundle()

    @ONE_BATCH
    @given(st.lists(pie_conv_cases(), min_size=24, max_size=24))
    def run(cases):
        batch = QemuBatch(BOARD, tmp_path)
        built, on_pie = [], 0
        for case in cases:
            h, w, cin = case["shape"]
            buf, shape = _conv_model(h, w, cin, case["cout"], case["k"], case["stride"],
                                     case["padding"], case["act"], case["in_q"], case["out_q"],
                                     case["seed"], case["w_scale"])
            xs = np.random.default_rng(case["seed"]).integers(-128, 128, size=(2, h, w, cin),
                                                              dtype=np.int8)
            i = batch.add(buf, xs)
            on_pie += any(getattr(s, "kernel", "") == PIE.PIE_CONV.symbol
                          for s in batch.cases[i].conv.lowered.steps)
            built.append((case, buf, xs))
        assert on_pie >= 20, f"only {on_pie} of 24 cases took the PIE conv"
        for (case, buf, xs), ours in zip(built, batch.run(), strict=True):
            ref = in_process_reference(buf, xs).reshape(len(xs), -1)
            assert np.array_equal(ours, ref), case

    run()


def _odd_squeezenet() -> bytes:
    """v1.1 with odd meta-parameters: every fire's squeeze, expand1x1 and expand3x3 have odd
    channel counts, so the in-place concatenation writes slices at odd offsets."""
    cfg = squeezenet.config_for_builtin("squeezenet1_1", input_shape=(45, 39, 3), classes=5,
                                        base_e=37, incr_e=18, pct_3x3=0.4, sr=0.3)
    return quantize_keras(squeezenet.build_squeezenet(cfg), synthetic_calibration((45, 39, 3),
                                                                                  8))


def test_odd_squeezenet_bit_exact_on_the_emulated_s3(tmp_path):
    _skip_without_bundle()
    buf = _odd_squeezenet()
    out = tmp_path / "odd"
    conv = convert.convert_tflite(buf, targets.load(BOARD), model_name="odd",
                                  source_name="odd.tflite")
    convert.write(conv, buf, out)
    convs = [s for s in conv.lowered.steps if isinstance(s, ConvStep)]
    assert all(s.kernel == PIE.PIE_CONV.symbol for s in convs)
    assert any((s.output_pixel_stride - s.filter_dims.n) % 2 for s in convs)  # odd slices
    xs = np.random.default_rng(11).integers(-128, 128, size=(2, 45, 39, 3), dtype=np.int8)
    with qemu.start_qemu_firmware(out, build_dir=tmp_path / "build") as q:
        dev = DeviceClient(q.port)
        dev.hello()
        ours = [dev.infer(x.tobytes()) for x in xs]
    ref = reference.run_reference(buf, xs, want_logits=True)
    for i, r in enumerate(ours):
        assert np.array_equal(np.frombuffer(r.logits, np.int8), ref.logits[i].reshape(-1))
        if ref.outputs is not None:
            assert np.array_equal(np.frombuffer(r.output, np.int8), ref.outputs[i].reshape(-1))


# ---- the real board's build --------------------------------------------------------------

# What Arduino-ESP32 passes its compiler for an ESP32-S3 sketch or library (platform.txt:
# compiler.c.flags with the default -Os, and compiler.S.flags); PlatformIO's espressif32
# Arduino builder passes the same. Nothing is built by PlatformIO itself here: its package
# registry is unreachable, so the bundle's xtensa-esp32s3-elf-gcc (the same GCC 12 / binutils
# with Espressif's ESP32-S3 overlay) stands in for it.
ARDUINO_C = ("-mlongcalls", "-ffunction-sections", "-fdata-sections", "-Os", "-ggdb",
             "-freorder-blocks", "-Wwrite-strings", "-fstack-protector",
             "-fstrict-volatile-bitfields", "-fno-jump-tables", "-fno-tree-switch-conversion",
             "-std=gnu99", "-Wall", "-Wextra", "-Werror")
ARDUINO_S = ("-x", "assembler-with-cpp", "-mlongcalls")
# sqz's own rules for firmware C (plus the port's -mlongcalls).
SQZ_C = ("-mlongcalls", "-O2", "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic")
HEAP = {"malloc", "calloc", "realloc", "free", "_sbrk", "_malloc_r"}
ALLOWED = {"memcpy", "memset", "memmove", "sqz_max_pool_s8_push", "sqz_pie_conv_layout",
           "__stack_chk_fail", "__stack_chk_guard"}


def _check_hardware_loops(objdump: str, obj) -> int:
    """The LX7 has one set of zero-overhead loop registers: no loop instruction may sit inside
    another loop's body, nor a call (the callee may loop). The kernels' inline-assembly loops
    rely on GCC never wrapping a C loop around them in a hardware loop (it does not make one of
    a loop that holds an asm statement); this checks the compiled code."""
    text = subprocess.run([objdump, "-d", str(obj)], check=True, capture_output=True,
                          text=True).stdout
    # Per function: with -ffunction-sections every function's addresses start at 0.
    functions: list[list[tuple[int, str, str]]] = []
    for line in text.splitlines():
        if re.match(r"[0-9a-f]+ <[^>]+>:$", line):
            functions.append([])
        m = re.match(r"\s+([0-9a-f]+):\s+[0-9a-f]+\s+(\S+)\s*(.*)", line)
        if m and functions:
            functions[-1].append((int(m.group(1), 16), m.group(2), m.group(3)))
    count = 0
    for insns in functions:
        loops = [(a, int(re.search(r"\b([0-9a-f]+) <", ops).group(1), 16))
                 for a, op, ops in insns if op in ("loop", "loopgtz", "loopnez")]
        for start, end in loops:
            inside = [(a, op) for a, op, _ in insns if start < a < end]
            assert not [i for i in inside if i[1].startswith(("loop", "call"))], (
                obj.name, start, inside)
        count += len(loops)
    return count


@pytest.mark.parametrize("flags", [ARDUINO_C, SQZ_C], ids=["arduino", "sqz"])
def test_arch_sources_build_for_the_real_board(flags, tmp_path):
    xcc = qemu.ESP32S3_QEMU.tool(qemu.ESP32S3_QEMU.cc) if not missing_tools(BOARD) else None
    if xcc is None:
        pytest.skip(f"xtensa-esp32s3-elf-gcc not found: {qemu.ESP32S3_BUNDLE_HINT}")
    nm = str(xcc).replace("-gcc", "-nm")
    undefined, defined = set(), set()
    loops = 0
    for src in sorted(ARCH_DIR.iterdir()):
        if src.suffix not in (".c", ".S"):
            continue
        obj = tmp_path / f"{src.name}.o"
        opts = flags if src.suffix == ".c" else ARDUINO_S
        subprocess.run([str(xcc), *opts, "-I", str(FIRMWARE / "include"), "-c", str(src),
                        "-o", str(obj)], check=True, capture_output=True)
        for line in subprocess.run([nm, str(obj)], check=True, capture_output=True,
                                   text=True).stdout.splitlines():
            parts = line.split()
            (undefined if parts[-2:-1] == ["U"] else defined).add(parts[-1])
        loops += _check_hardware_loops(str(xcc).replace("-gcc", "-objdump"), obj)
    assert loops > 100  # the assembly's pixel loops at least
    external = undefined - defined
    # No float, no heap: only the C library's memory functions and the portable pool.
    assert external <= ALLOWED, external - ALLOWED
    assert not external & HEAP
    assert {"sqz_conv_s8_pie_row", "sqz_max_pool_s8_pie_push",
            "sqz_conv_s8_pie_scratch_size"} <= defined
