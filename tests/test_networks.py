"""Whole SqueezeNets, quantized by TensorFlow, converted by sqz, compiled and compared bit for
bit with LiteRT BUILTIN_REF: both versions, both bypasses, small, non-square and
single-channel inputs, and the 224x224 ImageNet shape."""

from __future__ import annotations

import numpy as np
import pytest

from converter import arch as archs
from converter.frontend import reference, sources

# Every architecture whose kernels build and run on the host (portable; armv7em through the C
# that computes what its DSP instructions do); the emulated boards run their own kernels in
# tests/test_kernels_target.py.
ARCHS = pytest.mark.parametrize("arch", [a for a in archs.available() if archs.runs_on_host(a)])

CASES = [
    # builtin, (h, w), channels, classes
    ("squeezenet1_1", (96, 96), 3, 10),
    ("squeezenet1_0", (96, 96), 3, 10),
    ("squeezenet1_0_simple_bypass", (64, 64), 3, 5),
    ("squeezenet1_0_complex_bypass", (72, 72), 3, 4),
    ("squeezenet1_1_simple_bypass", (48, 64), 1, 3),
    ("squeezenet1_1_complex_bypass", (40, 40), 3, 2),
    ("squeezenet1_1", (31, 33), 1, 6),  # the smallest input v1.1 accepts
]


def _compare(sqz_runner, buf: bytes, n: int = 4, seed: int = 0, **convert_kw):
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=buf)
    shape = it.get_input_details()[0]["shape"]
    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 128, size=(n, *shape[1:]), dtype=np.int8)
    ours, ours_logits = sqz_runner.run(buf, x, logits=True, **convert_kw)
    ref = reference.run_reference(buf, x, want_logits=True)
    assert np.array_equal(ours_logits, ref.logits.reshape(n, -1)), "logits differ"
    if ref.outputs is not None:
        assert np.array_equal(ours, ref.outputs.reshape(n, -1)), "outputs differ"
    else:
        assert ref.softmax_aborted
    return ours


@ARCHS
@pytest.mark.parametrize("name,size,channels,classes", CASES,
                         ids=[f"{c[0]}-{c[1][0]}x{c[1][1]}x{c[2]}-{c[3]}" for c in CASES])
def test_network_bit_exact(sqz_runner, arch, name, size, channels, classes):
    src = sources.resolve(name, input_size=size, channels=channels, classes=classes,
                          calib_samples=8)
    _compare(sqz_runner, src.tflite, arch=arch)


@ARCHS
def test_squeezenet1_1_224_imagenet_shape(sqz_runner, arch):
    src = sources.resolve("squeezenet1_1", calib_samples=4)
    _compare(sqz_runner, src.tflite, n=2, arch=arch)


@pytest.mark.parametrize("name", ["squeezenet1_0_simple_bypass", "squeezenet1_0_complex_bypass"])
def test_squeezenet1_0_bypass_224_streamed(sqz_runner, name):
    """Streamed row by row (the default at this size), both bypasses at 224x224."""
    src = sources.resolve(name, calib_samples=2)
    _compare(sqz_runner, src.tflite, n=1)


@pytest.mark.parametrize("stream", ["off", "full"])
def test_network_in_every_stream_mode(sqz_runner, stream):
    src = sources.resolve("squeezenet1_1_complex_bypass", input_size=(48, 40), classes=3,
                          calib_samples=4)
    ours = _compare(sqz_runner, src.tflite, n=2, stream=stream)
    assert ours.shape == (2, 3)


@ARCHS
def test_network_under_asan_and_ubsan(sqz_runner_asan, arch):
    """The whole runtime on a bypass network, built with AddressSanitizer and UBSan."""
    src = sources.resolve("squeezenet1_0_complex_bypass", input_size=(48, 48), classes=4,
                          calib_samples=4)
    _compare(sqz_runner_asan, src.tflite, n=2, arch=arch)
