"""The Armv7E-M kernels (firmware/src/arch/armv7em/) on the emulated Cortex-M4, bit for bit with
LiteRT BUILTIN_REF: one-op models of odd shapes (odd channel counts, rows that take several
blocks, conv1's 3 channels and stride 2, narrow activations, padding, max pools) and a SqueezeNet
with odd meta-parameters, whose in-place concatenations put channel slices at odd offsets. On
the host the same sources compile to their portable equivalents (tests/test_kernels_golden.py);
here their assembly and DSP instructions run. One firmware per model (a few seconds each)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from golden import reference as in_process_reference
from tflbuild import GraphBuilder, add_conv, conv_out_size, pool_options

from converter import convert, targets
from converter.device import qemu
from converter.device.client import DeviceClient
from converter.frontend import reference
from converter.frontend.quantize import quantize_keras, synthetic_calibration
from converter.models import squeezenet

MISSING = [t for t in (qemu.QEMU, qemu.CC) if shutil.which(t) is None]
pytestmark = pytest.mark.skipif(
    bool(MISSING), reason=f"{', '.join(MISSING)} not installed: {qemu.APT_HINT}")


@pytest.fixture(scope="module")
def build_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("qemu-kernels")


def _convert(buf: bytes, out, **kw):
    conv = convert.convert_tflite(buf, targets.load(qemu.TARGET), model_name="test",
                                  source_name="test.tflite", **kw)
    convert.write(conv, buf, out)
    return conv


def _run_on_qemu(model_dir, build_dir, inputs: np.ndarray):
    with qemu.start_qemu_firmware(model_dir, build_dir=build_dir) as q:
        dev = DeviceClient(q.port)
        dev.hello()
        return [dev.infer(x.tobytes()) for x in inputs]


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


ONE_OP = {
    # conv1's shape: 3 channels (gathered patches), stride 2, an odd output width.
    "conv-3x3s2-c3-odd": lambda: _conv_model(17, 21, 3, 9, (3, 3), (2, 2), "valid", "relu",
                                             (0.02, 5), (0.03, -128), 1),
    # Several blocks of pixel pairs per row, an odd last channel, ReLU6 clamping.
    "conv-3x3-deep-wide": lambda: _conv_model(4, 27, 130, 7, (3, 3), (1, 1), "same", "relu6",
                                              (0.02, -7), (0.04, -30), 2),
    # A 1x1 over many channels, no activation, odd pixels and channels.
    "conv-1x1-odd": lambda: _conv_model(3, 13, 68, 5, (1, 1), (1, 1), "valid", "none",
                                        (0.05, 3), (0.1, 11), 3),
    # 24 channels: six quads per pixel (the unrolled loop's pair-of-quads entry), one output
    # column (a lone pixel, no pair).
    "conv-1x1-c24-one-column": lambda: _conv_model(5, 1, 24, 10, (1, 1), (1, 1), "valid",
                                                   "relu", (0.04, 0), (0.05, -128), 5),
    # A 5x3 filter with padding on every side and stride 2 x 1, 5 channels in.
    "conv-5x3-pad": lambda: _conv_model(7, 9, 5, 6, (5, 3), (2, 1), "same", "relu",
                                        (0.03, -100), (0.02, 40), 4),
    # Max pools: overlapping windows, padding that clips, an activation, odd channels.
    "maxpool-3x3s2-same": lambda: _pool_model(13, 15, 11, (3, 3), (2, 2), "same", "relu6",
                                              (0.05, -10)),
    "maxpool-3x2s1": lambda: _pool_model(6, 8, 20, (3, 2), (1, 1), "valid", "none",
                                         (0.1, 0)),
}


@pytest.mark.parametrize("name", list(ONE_OP))
def test_one_op_bit_exact_on_qemu(name, tmp_path, build_dir):
    buf, shape = ONE_OP[name]()
    conv = _convert(buf, tmp_path / name)
    kernels = {s.kernel for s in conv.lowered.steps if hasattr(s, "kernel")}
    assert all("armv7em" in k for k in kernels), kernels  # the variants, not the fallback
    rng = np.random.default_rng(7)
    xs = rng.integers(-128, 128, size=(3, *shape[1:]), dtype=np.int8)
    ours = _run_on_qemu(tmp_path / name, build_dir, xs)
    ref = in_process_reference(buf, xs)
    for got, want in zip(ours, ref, strict=True):
        assert np.array_equal(np.frombuffer(got.output, np.int8), want)


def _odd_squeezenet() -> bytes:
    """v1.1 with odd meta-parameters: every fire's squeeze, expand1x1 and expand3x3 have odd
    channel counts, so the in-place concatenation writes slices at odd offsets."""
    cfg = squeezenet.config_for_builtin("squeezenet1_1", input_shape=(45, 39, 3), classes=5,
                                        base_e=37, incr_e=18, pct_3x3=0.4, sr=0.3)
    km = squeezenet.build_squeezenet(cfg)
    return quantize_keras(km, synthetic_calibration((45, 39, 3), 8))


@pytest.mark.parametrize("stream", ["auto", "off"])
def test_odd_squeezenet_bit_exact_on_qemu(stream, tmp_path, build_dir):
    buf = _odd_squeezenet()
    out = tmp_path / f"odd-{stream}"
    conv = _convert(buf, out, stream=stream)
    strides = {s.output_pixel_stride - s.filter_dims.n for s in conv.lowered.steps
               if hasattr(s, "output_pixel_stride")}
    assert any(v % 2 for v in strides)  # slices of concatenations at odd channel offsets
    rng = np.random.default_rng(11)
    xs = rng.integers(-128, 128, size=(2, 45, 39, 3), dtype=np.int8)
    ours = _run_on_qemu(out, build_dir, xs)
    ref = reference.run_reference(buf, xs, want_logits=True)
    for i, r in enumerate(ours):
        assert np.array_equal(np.frombuffer(r.logits, np.int8), ref.logits[i].reshape(-1))
        if ref.outputs is not None:
            assert np.array_equal(np.frombuffer(r.output, np.int8), ref.outputs[i].reshape(-1))
    assert ref.outputs is not None or ref.softmax_aborted
