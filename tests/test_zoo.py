"""The networks beyond SqueezeNet (converter/models/zoo.py): MobileNet v1 and v2, ResNet-8 and
DS-CNN, quantized by TensorFlow, converted by sqz and compared bit for bit with LiteRT
BUILTIN_REF on the host (every host-runnable architecture) and on the emulated boards. Also a
keras.applications MobileNet, whose Reshape needs a static batch."""

from __future__ import annotations

import numpy as np
import pytest
from qemu_batch import QemuBatch, missing_tools

from converter import arch as archs
from converter import targets
from converter.device import qemu
from converter.errors import UsageError
from converter.frontend import reference, sources
from converter.ir.steps import ConvStep
from converter.models import zoo

# Small inputs keep TensorFlow's quantization and the emulators quick; every layer kind of each
# network is still there (MobileNet v2's residual ADDs need 32x32 to survive its strides).
NETS = {
    "mobilenet_v1": dict(input_size=(32, 32), classes=3),
    "mobilenet_v2": dict(input_size=(32, 32), classes=4),
    "resnet8": dict(input_size=(32, 32), classes=10),
    "ds_cnn": dict(input_size=(49, 10), classes=12),
}
HOST_ARCHS = [a for a in archs.available() if archs.runs_on_host(a)]


@pytest.fixture(scope="module")
def tflites():
    """Each network quantized once for the module (TensorFlow takes seconds per model)."""
    return {name: sources.resolve(name, calib_samples=8, **kw).tflite
            for name, kw in NETS.items()}


def _inputs(buf: bytes, n: int, seed: int = 0) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter

    shape = Interpreter(model_content=buf).get_input_details()[0]["shape"]
    return np.random.default_rng(seed).integers(-128, 128, size=(n, *shape[1:]), dtype=np.int8)


def _reference(buf: bytes, x: np.ndarray) -> np.ndarray:
    ref = reference.run_reference(buf, x)
    assert ref.outputs is not None, ref.note
    return ref.outputs.reshape(len(x), -1)


# Every network on the portable kernels; the one with the most layer kinds (depthwise,
# residual ADDs) also on each architecture's kernels as the host builds them.
HOST_CASES = [("portable", name) for name in sorted(NETS)] + [
    (a, "mobilenet_v2") for a in HOST_ARCHS if a != "portable"]


@pytest.mark.parametrize("arch,name", HOST_CASES, ids=[f"{a}-{n}" for a, n in HOST_CASES])
def test_network_bit_exact_on_the_host(sqz_runner, tflites, name, arch):
    buf = tflites[name]
    x = _inputs(buf, 3)
    ours = sqz_runner.run(buf, x, arch=arch)
    assert np.array_equal(ours, _reference(buf, x))


def test_depthwise_layers_are_lowered_and_reported(sqz_runner, tflites):
    _, conv = sqz_runner.compile(tflites["mobilenet_v1"])
    convs = [s for s in conv.lowered.steps if isinstance(s, ConvStep)]
    depthwise = [s for s in convs if s.grouped]
    # MobileNet v1: 13 depthwise layers, each a group per channel, 14 dense convs.
    assert len(depthwise) == 13 and len(convs) == 27
    assert all(s.groups == s.input_dims.c and s.filter_dims.c == 1 for s in depthwise)
    # Random weights leave the record kernels' proof plenty of room (runtime/depthwise.h).
    assert all(s.kernel == "sqz_depthwise_s8_row" for s in depthwise)


# One emulated board per architecture (the 128 KB profile runs the same kernels as its board).
BOARDS = sorted({targets.load(b).arch: b for b in sorted(qemu.BOARDS, reverse=True)}.values())


@pytest.mark.parametrize("board", BOARDS)
def test_networks_bit_exact_on_the_board(board, tflites, tmp_path):
    missing = missing_tools(board)
    if missing:
        pytest.skip(f"{', '.join(missing)} not found: {qemu.BOARDS[board].install_hint}")
    batch = QemuBatch(board, tmp_path)
    cases = []
    for name in sorted(NETS):
        x = _inputs(tflites[name], 2, seed=1)
        batch.add(tflites[name], x)
        cases.append((name, x))
    for (name, x), ours in zip(cases, batch.run(), strict=True):
        assert np.array_equal(ours, _reference(tflites[name], x)), f"{name} on {board}"


def test_builders_take_width_input_and_classes():
    m = zoo.build("mobilenet_v2", input_shape=(40, 48, 1), classes=7, alpha=0.5)
    assert tuple(m.input_shape) == (None, 40, 48, 1) and tuple(m.output_shape) == (None, 7)
    kinds = {type(layer).__name__ for layer in m.layers}
    assert {"DepthwiseConv2D", "Add", "ReLU"} <= kinds
    m = zoo.build("resnet8")
    assert tuple(m.input_shape) == (None, 32, 32, 3) and tuple(m.output_shape) == (None, 10)
    assert sum(type(layer).__name__ == "Add" for layer in m.layers) == 3
    m = zoo.build("ds_cnn")
    assert tuple(m.input_shape) == (None, 49, 10, 1) and tuple(m.output_shape) == (None, 12)


def test_builders_refuse_bad_options():
    with pytest.raises(UsageError, match="a width multiplier applies to the MobileNets only"):
        zoo.build("resnet8", alpha=0.5)
    with pytest.raises(UsageError, match="width multiplier 0: must be above 0"):
        zoo.build("mobilenet_v1", alpha=0)
    with pytest.raises(UsageError, match="unknown model 'mobilenet_v3'"):
        zoo.build("mobilenet_v3")


def test_seeded_weights_keep_the_activations_alive():
    """A deep network from the builders gives outputs that vary with the input (Keras's own
    weights=None MobileNets give a constant one), so its int8 softmax can be prepared."""
    m = zoo.build("mobilenet_v1", input_shape=(32, 32, 3), classes=5)
    x = np.random.default_rng(0).uniform(-1, 1, (4, 32, 32, 3)).astype(np.float32)
    import keras

    out = keras.Model(m.input, m.get_layer("logits").output)(x).numpy()
    # About 8e-3 (the 1x1 maps of the last layers see mostly padding); Keras's: about 1e-8.
    assert out.std() > 1e-3


def test_keras_applications_reshape_converts(sqz_runner, tmp_path):
    """keras.applications.MobileNet ends in Reshape((classes,)); with the batch unknown that is
    SHAPE, STRIDED_SLICE and PACK ops, which the device has no use for: the model is rebuilt
    with a batch of one before TensorFlow converts it."""
    import keras

    km = keras.applications.MobileNet(weights=None, alpha=0.25, input_shape=(32, 32, 3),
                                      classes=3, classifier_activation=None)
    # Keras's own initial weights make the output constant (zoo.py says why): seeded
    # variance-preserving ones instead, so the comparison below compares something.
    rng = np.random.default_rng(0)
    for layer in km.layers:
        if isinstance(layer, keras.layers.Conv2D | keras.layers.DepthwiseConv2D |
                      keras.layers.Dense):
            w = layer.get_weights()
            k = w[0]
            fan_in = (k.shape[0] * k.shape[1] if isinstance(layer, keras.layers.DepthwiseConv2D)
                      else int(np.prod(k.shape[:-1])))
            w[0] = rng.normal(0, np.sqrt(2 / fan_in), k.shape).astype(np.float32)
            layer.set_weights(w)
    km.save(tmp_path / "mobilenet.keras")
    buf = sources.resolve(str(tmp_path / "mobilenet.keras"), calib_samples=4).tflite
    x = _inputs(buf, 4)
    ref = _reference(buf, x)
    assert len({bytes(r) for r in ref}) > 1, "the outputs do not depend on the input"
    assert np.array_equal(sqz_runner.run(buf, x), ref)


def test_compressed_zoo_network_is_packed_and_bit_exact(sqz_runner, tmp_path, capsys):
    """sqz-compress takes a zoo builtin (its convs pruned and shared) and the result converts
    with packed filters, bit-exact."""
    from converter.commands.compress import compress_main

    out = tmp_path / "r8.keras"
    assert compress_main(["resnet8", "--input-size", "16", "--sparsity", "0.5", "-o", str(out),
                          "-q"]) == 0, capsys.readouterr().err
    buf = sources.resolve(str(out), calib_samples=4).tflite
    _, conv = sqz_runner.compile(buf)
    packed = [s for s in conv.lowered.steps if isinstance(s, ConvStep) and s.packed is not None]
    assert len(packed) >= 5
    x = _inputs(buf, 2)
    assert np.array_equal(sqz_runner.run(buf, x), _reference(buf, x))
