"""The Helium (MVE) architecture and its emulated board, mps3-an547 (QEMU's Cortex-M55):

* the profile, the board and the linker script agree; ELFs of the two Arm boards are told apart;
* the converter picks the MVE kernels and lays the weights out as the assembly reads them;
* the fast output stage (VQRDMULH, VRSHL, saturating narrowing) equals TFLite's reference
  requantization under the conditions the kernel checks, and not without them;
* the C twin (what the sources compute without MVE) is bit-exact on the host, under ASan too;
* on the emulated M55: one-op models that take each assembly loop (one, two and more chunks
  per pixel, a narrower activation, a last quad of fewer than four channels, odd pixels,
  patches and in-place inputs, the reference stage) bit-exact in one boot; the counter exact
  and repeatable; SqueezeNet 1.1 at 96x96 bit-exact and within half of TFLM + CMSIS-NN's MVE
  instruction count.

The kernels' hypothesis batches run on this board in tests/test_kernels_target.py."""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess

import numpy as np
import pytest
from clirun import cli
from golden import reference
from hypothesis import given, settings
from hypothesis import strategies as st
from qemu_batch import QemuBatch, missing_tools
from test_qemu import FIXTURE, ROOT, _mps2_model_dir
from tflbuild import GraphBuilder, add_conv, conv_out_size, pool_options

from converter import arch, codegen, targets
from converter.arch import mve, portable
from converter.device import qemu
from converter.device.client import DeviceClient
from converter.device.hostsim import start_host_firmware
from converter.ir.quantmath import multiply_by_quantized_multiplier
from converter.ir.steps import ConvStep, Dims, PoolStep

BOARD = qemu.MPS3_AN547
TARGET = "mps3-an547"
# TFLM + CMSIS-NN's MVE kernels on the same emulator, SqueezeNet 1.1 at 96x96, 10 classes,
# the same input (../shared/anchors/README.md, "Cortex-M55 with Helium").
CMSIS_NN_MVE_96 = 15_495_344
needs_board = pytest.mark.skipif(
    bool(missing_tools(TARGET)),
    reason=f"{', '.join(missing_tools(TARGET))} not found: {BOARD.install_hint}")


# ---- the profile and the board ---------------------------------------------------------------

def test_profile_board_and_linker_script_agree() -> None:
    t = targets.load(TARGET)
    assert (t.arch, t.port, t.counter_unit) == ("mve", "mps3_an547", "instructions")
    assert qemu.board_for_target(TARGET) is BOARD
    script = BOARD.linker_script_path().read_text()
    limits = {r.name: r.limit for r in BOARD.regions}
    found = {m.group(1): (int(m.group(2), 16), int(m.group(3)) * {"K": 1024, "M": 1 << 20}[
        m.group(4)]) for m in re.finditer(
        r"^\s*(\w+)\s+\(\w+\)\s*: ORIGIN = (0x[0-9A-Fa-f]+), LENGTH = (\d+)([KM])", script,
        re.M)}
    assert {k: v[1] for k, v in found.items()} == limits
    # QEMU's AN547 memory map: the ITCM where the core boots, the QSPI flash, the SSE-300 SRAM.
    assert {k: v[0] for k, v in found.items()} == {"ITCM": 0, "FLASH": 0x28000000,
                                                    "RAM": 0x21000000}
    assert t.flash_bytes == limits["FLASH"]
    # An arena of sram_bytes, the 16 KiB stack and the app's buffers fit the RAM.
    assert limits["RAM"] >= t.sram_bytes + 16 * 1024 + 16 * 1024
    port = (BOARD.port_dir() / "port_mps3_an547.c").read_text()
    # CP10/CP11 on before any C (which the compiler may vectorize) runs.
    reset = port[port.index("sqz_reset_handler:"):port.index(".size sqz_reset_handler")]
    assert "0xE000ED88" in reset and "0x00F00000" in reset
    assert reset.index("isb") < reset.index("b     sqz_mps3_start")


def _elf(tmp_path, cpu: str, float_abi: str) -> str:
    src = tmp_path / "start.c"
    src.write_text("void _start(void) { for (;;) { } }\n")
    out = tmp_path / f"{cpu}.elf"
    subprocess.run([qemu.CC, f"-mcpu={cpu}", "-mthumb", f"-mfloat-abi={float_abi}",
                    "-nostdlib", str(src), "-o", str(out)], check=True, capture_output=True)
    return str(out)


@pytest.mark.skipif(shutil.which(qemu.CC) is None, reason=f"{qemu.CC} not installed")
def test_elfs_of_the_two_arm_boards_are_told_apart(tmp_path) -> None:
    """Both are ELF machine 40: the build attributes' CPU name decides."""
    assert qemu.board_for_elf(_elf(tmp_path, "cortex-m55", "hard")) is BOARD
    assert qemu.board_for_elf(_elf(tmp_path, "cortex-m4", "soft")) is qemu.MPS2_AN386


# ---- kernel selection and weight layout -----------------------------------------------------

def _step(cin=19, cout=10, k=(3, 3), stride=(1, 1), dilation=(1, 1), w=9, seed=0) -> ConvStep:
    rng = np.random.default_rng(seed)
    oh = ow = w - (k[0] - 1) * dilation[0]
    f = rng.integers(-128, 128, size=(cout, k[0], k[1], cin), dtype=np.int8)
    return ConvStep(name="c", op_index=0, reads=(0,), writes=(1,), input=0, output=1,
                    input_dims=Dims(1, w, w, cin), filter_dims=Dims(cout, k[0], k[1], cin),
                    output_dims=Dims(1, oh, ow, cout), filter=f.tobytes(), bias=(0,) * cout,
                    multiplier=(1 << 30,) * cout, shift=(-1,) * cout, input_offset=0,
                    output_offset=-128, stride=stride, padding=(0, 0), dilation=dilation,
                    act_min=-128, act_max=127, output_pixel_stride=cout)


def test_the_mve_kernels_are_selected() -> None:
    assert arch.select_conv(_step(), "mve") is mve.CONV
    assert arch.select_conv(_step(dilation=(2, 2)), "mve") is portable.PORTABLE_CONV
    pool = PoolStep(name="p", op_index=1, reads=(1,), writes=(2,), kind="max", input=1,
                    output=2, input_dims=Dims(1, 8, 8, 20), filter_hw=(3, 3),
                    output_dims=Dims(1, 3, 3, 20), stride=(2, 2), padding=(0, 0),
                    act_min=-128, act_max=127)
    assert arch.select_pool(pool, "mve") is mve.MAX_POOL_PUSH
    avg = dataclasses.replace(pool, kind="avg", kernel="")
    assert arch.select_pool(avg, "mve").symbol == "sqz_avg_pool_s8_row"


def test_weights_are_interleaved_in_quads_of_channels() -> None:
    """Channel 4q + j's taps 16i .. 16i + 15 at (q * chunks + i) * 64 + 16 j: what one
    post-incremented pointer reads in the assembly; taps and channels zero-padded."""
    s = _step(cin=19, cout=10, k=(3, 3))
    taps = 3 * 3 * 19
    length = mve.filter_row_len(s)
    assert length == 176 and length % 16 == 0 and length >= taps
    flat = mve.filter_layout(s)
    chunks = length // 16
    assert flat.size == 12 * length  # 10 channels padded to 3 quads
    ohwi = np.frombuffer(s.filter, np.int8).reshape(10, taps)
    for oc in range(12):
        q, j = divmod(oc, 4)
        row = np.concatenate([flat[(q * chunks + i) * 64 + 16 * j:][:16] for i in range(chunks)])
        want = np.zeros(length, np.int8)
        if oc < 10:
            want[:taps] = ohwi[oc]
        assert np.array_equal(row, want), oc


def test_inputs_in_place_or_in_patches() -> None:
    """A 1x1 of stride 1 over a multiple of 16 channels needs no scratch; other convs ask for
    patches of up to 8 KiB (at least a pixel pair) and run with one pair's."""
    pointwise = _step(cin=32, cout=8, k=(1, 1))
    assert mve.in_place(pointwise) and mve.scratch_bytes(pointwise) == 0
    assert not mve.in_place(_step(cin=32, cout=8, k=(1, 1), stride=(2, 2)))
    assert not mve.in_place(_step(cin=20, cout=8, k=(1, 1)))
    s = _step(cin=64, cout=8, k=(3, 3), w=40)
    assert mve.scratch_bytes(s) == 576 * 14  # 8192 // 576 pixels, made even
    assert mve.min_scratch_bytes(s) == 576 * 2


# ---- the output stage ------------------------------------------------------------------------

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


def _sat(v, lo, hi):
    return np.clip(v, lo, hi)


def mve_stage(acc, mult, shift, zp):
    """The assembly's output stage (conv_mve.h), instruction by instruction, in int64 numpy:
    VQRDMULH.S32, VRSHL.S32 by a negative shift, VQMOVN to int16, VQADD.S16 of the zero
    point, VQMOVN to int8."""
    acc, mult = acc.astype(np.int64), mult.astype(np.int64)
    y = _sat((2 * acc * mult + (1 << 31)) >> 32, INT32_MIN, INT32_MAX)
    r = -shift.astype(np.int64)
    y = np.where(r > 0, (y + (np.int64(1) << np.maximum(r - 1, 0))) >> r, y)
    y = _sat(y, -(2**15), 2**15 - 1)
    y = _sat(y + zp, -(2**15), 2**15 - 1)
    return _sat(y, -128, 127)


def reference_stage(acc, mult, shift, zp, lo, hi):
    return np.array([max(lo, min(hi, multiply_by_quantized_multiplier(int(a), int(m), int(s))
                                 + zp)) for a, m, s in zip(acc, mult, shift, strict=True)])


@settings(max_examples=300, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), zp=st.integers(-128, 127), hi=st.integers(-128, 127),
       relu=st.booleans())
def test_fast_output_stage_equals_the_reference_with_a_relu(seed, zp, hi, relu):
    """With act_min >= the output zero point, VRSHL's half-up rounding of negative values
    cannot show: both give the clamp's lower bound. Accumulators span int32 (INT32_MIN
    included: VQRDMULH saturates it like the reference)."""
    rng = np.random.default_rng(seed)
    n = 512
    acc = np.concatenate([rng.integers(INT32_MIN, INT32_MAX, n // 2, endpoint=True),
                          rng.integers(-(1 << 20), 1 << 20, n // 2 - 2), [INT32_MIN, INT32_MAX]])
    mult = rng.integers(0, 2**31 - 1, n, endpoint=True)
    mult[:4] = [INT32_MAX, 0, 1 << 30, INT32_MIN + 1]
    shift = rng.integers(-31, 1, n)
    lo = max(zp, -128) if relu else zp
    hi = max(hi, lo)
    ours = np.clip(mve_stage(acc, mult, shift, zp), lo, hi)
    assert np.array_equal(ours, reference_stage(acc, mult, shift, zp, lo, hi))


def test_fast_output_stage_needs_the_relu() -> None:
    """Without a clamp at the zero point, negative halves round differently: the kernel gives
    such layers the reference formula (all_fast in conv_mve.c)."""
    acc = np.array([-3, -5, -7, -1024 - 512])
    mult = np.full(4, 1 << 30)
    shift = np.full(4, -1)
    ours = mve_stage(acc, mult, shift, 0)
    ref = reference_stage(acc, mult, shift, 0, -128, 127)
    assert not np.array_equal(ours, ref)


# ---- the C twin on the host ------------------------------------------------------------------

def _conv_model(h, w, cin, cout, k, stride, padding, act, in_q, out_q, seed):
    rng = np.random.default_rng(seed)
    g = GraphBuilder()
    shape = (1, h, w, cin)
    x = g.tensor("x", shape, "int8", *in_q)
    ws = rng.uniform(0.2, 1.0, cout) * 3e-3
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


# One-op models, each aimed at a path of the kernel (conv_mve.c, conv_mve_loop.S).
ONE_OP = {
    # One chunk per pixel, in place: the k1 loop (weights in registers), an odd width.
    "1x1-c16-k1": lambda: _conv_model(3, 13, 16, 24, (1, 1), (1, 1), "valid", "relu",
                                      (0.04, 3), (0.05, -128), 1),
    # Two chunks, in place: the k2 loop (4-pixel groups), then pairs and a single.
    "1x1-c32-k2": lambda: _conv_model(2, 15, 32, 12, (1, 1), (1, 1), "valid", "relu",
                                      (0.04, -9), (0.05, -128), 2),
    # conv1's shape: 27 taps in two chunks (patches with zero padding), stride 2.
    "3x3s2-c3-conv1": lambda: _conv_model(17, 23, 3, 16, (3, 3), (2, 2), "valid", "relu",
                                          (0.02, 5), (0.03, -128), 3),
    # The general loop (9 chunks), padding on every side (patches in C at the edges), wide
    # rows in several blocks of patches, ReLU6 (the clamp variant).
    "3x3-c16-same-relu6": lambda: _conv_model(5, 70, 16, 8, (3, 3), (1, 1), "same", "relu6",
                                              (0.02, -7), (0.04, -30), 4),
    # A last quad of two channels, and a ReLU with a zero point above -128 (clamp variant).
    "3x3-c48-tail-quad": lambda: _conv_model(4, 9, 48, 10, (3, 3), (1, 1), "same", "relu",
                                             (0.03, 2), (0.02, 40), 5),
    # No activation: the reference output stage throughout.
    "1x1-c64-none": lambda: _conv_model(3, 7, 64, 9, (1, 1), (1, 1), "valid", "none",
                                        (0.05, 3), (0.1, 11), 6),
    # A strided 1x1 (patches, not in place) over channels that are not a multiple of 16.
    "1x1s2-c20": lambda: _conv_model(6, 11, 20, 8, (1, 1), (2, 2), "valid", "relu",
                                     (0.05, 0), (0.05, -128), 7),
    # One output column: a lone pixel in every loop.
    "3x3-one-column": lambda: _conv_model(5, 3, 32, 8, (3, 3), (1, 1), "valid", "relu",
                                          (0.04, 0), (0.05, -128), 8),
    # Max pools: 3-wide windows over 2 vectors, and a narrower clamp over a partial vector.
    "maxpool-3x3s2-c32": lambda: _pool_model(11, 13, 32, (3, 3), (2, 2), "valid", "none",
                                             (0.05, -10)),
    "maxpool-2x3-c21-relu6": lambda: _pool_model(6, 9, 21, (2, 3), (1, 2), "same", "relu6",
                                                 (0.1, 0)),
}


def _inputs(name: str, shape) -> np.ndarray:
    rng = np.random.default_rng(sum(map(ord, name)))
    return rng.integers(-128, 128, size=(3, *shape[1:]), dtype=np.int8)


@pytest.mark.parametrize("name", ["1x1-c32-k2", "3x3s2-c3-conv1", "3x3-c48-tail-quad",
                                  "1x1s2-c20", "maxpool-2x3-c21-relu6"])
def test_c_twin_bit_exact_on_the_host(sqz_runner_asan, name) -> None:
    """What the sources compute without MVE (layout, patches, blocks, tails), under ASan and
    UBSan."""
    buf, shape = ONE_OP[name]()
    xs = _inputs(name, shape)
    ours = sqz_runner_asan.run(buf, xs, arch="mve")
    assert np.array_equal(ours, reference(buf, xs))


# ---- on the emulated Cortex-M55 --------------------------------------------------------------

@needs_board
def test_one_op_models_bit_exact_on_the_m55(tmp_path) -> None:
    batch = QemuBatch(TARGET, tmp_path)
    cases = []
    for name, make in ONE_OP.items():
        buf, shape = make()
        xs = _inputs(name, shape)
        batch.add(buf, xs)
        cases.append((name, buf, xs))
    for c in batch.cases:  # every layer on the MVE kernels, not the portable fallback
        steps = [s for s in c.conv.lowered.steps if hasattr(s, "kernel")]
        assert all("_mve_" in s.kernel for s in steps), [s.kernel for s in steps]
    for (name, buf, xs), ours in zip(cases, batch.run(), strict=True):
        ref = reference(buf, xs).reshape(len(xs), -1)
        assert np.array_equal(ours, ref), name


def _m55_tiny(dest):
    """The tiny fixture with the sqz_target.h sqz-convert renders for mps3-an547."""
    d = _mps2_model_dir(dest)
    t = targets.load(TARGET)
    header = codegen.environment().get_template("sqz_target.h.j2").render(
        target=dataclasses.asdict(t), placement={"arena_in_psram": 0},
        symbols=codegen.symbols(),
        banner={"tool_version": "-", "sha256": "-", "source": "tiny_model fixture",
                "target": t.name})
    (d / "sqz_target.h").write_text(header)
    return d


@needs_board
def test_counts_are_exact_and_repeat_on_the_m55(tmp_path) -> None:
    """The tiny fixture bit-exact and equal to the host firmware; its instruction counts (the
    counter's phase search on the 31.25-instruction SysTick tick) the same at every boot."""
    from test_host_firmware import random_input
    from test_host_firmware import reference as tiny_reference

    tiny = _m55_tiny(tmp_path / "tiny")
    x, y = random_input(11), random_input(12)
    runs = []
    for _ in range(2):  # two boots: the host's timing differs, the counts must not
        with qemu.start_qemu_firmware(tiny, build_dir=tmp_path / "b") as q:
            assert "mps3-an547" in q.description
            dev = DeviceClient(q.port)
            info = dev.hello()
            assert (info.target_name, info.counter_unit) == (TARGET, "instructions")
            runs.append([dev.infer(x, per_layer=True), dev.infer(y), dev.infer(x)])
    first = runs[0][0]
    assert len(first.layer_counts) == 3 and all(c > 0 for c in first.layer_counts)
    assert sum(first.layer_counts) <= first.run.total_count
    for boot in runs:
        assert boot[0].layer_counts == first.layer_counts
        assert boot[2].run.total_count == runs[0][2].run.total_count
        assert boot[1].run.total_count == runs[0][1].run.total_count
    with start_host_firmware(FIXTURE, build_dir=tmp_path / "h") as fw:
        dev = DeviceClient(fw.port)
        on_host = [dev.infer(v) for v in (x, y)]
    for v, a, b in zip((x, y), runs[0][:2], on_host, strict=True):
        out, logits = tiny_reference(v)
        assert a.output == b.output == out and a.logits == b.logits == logits


@needs_board
def test_squeezenet_bit_exact_and_within_half_of_cmsis_nn_mve(tmp_path) -> None:
    """The whole path as a user runs it, and the issue's target: at most 0.5x the instructions
    of TFLM + CMSIS-NN's Helium kernels on the same emulator (SqueezeNet 1.1, 96x96, 10
    classes; counts are deterministic)."""
    out = tmp_path / "sq96"
    conv = subprocess.run([*cli("sqz-convert"), "squeezenet1_1", "--target", TARGET,
                           "--input-size", "96", "--classes", "10", "--out", str(out)],
                          capture_output=True, text=True, cwd=tmp_path)
    assert conv.returncode == 0, conv.stdout + conv.stderr
    assert "sqz_conv_s8_mve_row" in (out / "model.c").read_text()
    val = subprocess.run([*cli("sqz-validate"), "--sim", "qemu", "--model", str(out), "-n",
                          "1"], capture_output=True, text=True, cwd=tmp_path,
                         env={**os.environ, "COLUMNS": "200"})
    text = val.stdout + val.stderr
    assert val.returncode == 0, text
    assert "PASS: all 1 outputs bit-exact" in text and TARGET in text
    count = int(re.findall(r"min ([\d,]+) +median", text)[0].replace(",", ""))
    assert count <= CMSIS_NN_MVE_96 // 2


def test_the_real_board_profile_converts_for_the_helium_kernels(tmp_path) -> None:
    """EK-RA8M1 (Cortex-M85): its memory, the MVE kernels, and the export as the way to its
    firmware (no PlatformIO board exists for it: platformio.ini's env says what one needs)."""
    t = targets.load("ek_ra8m1")
    assert (t.arch, t.counter_unit, t.pio_env) == ("mve", "cycles", None)
    from converter.convert import convert_tflite

    buf, _ = ONE_OP["3x3-c16-same-relu6"]()
    conv = convert_tflite(buf, t, model_name="m", source_name="m.tflite")
    assert {s.kernel for s in conv.lowered.steps if hasattr(s, "kernel")} == {
        "sqz_conv_s8_mve_row"}
    ini = (ROOT / "platformio.ini").read_text()
    env = ini[ini.index("[env:ek_ra8m1]"):]
    assert "board = ek_ra8m1" in env and "armv8.1-m.main+mve" in env
