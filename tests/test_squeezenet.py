"""SqueezeNet builders: parameter counts, structure, meta-parameters, determinism, errors."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from converter.errors import UsageError
from converter.models.squeezenet import (
    SqueezeNetConfig,
    build_squeezenet,
    builtin_names,
    config_for_builtin,
    fire_specs,
    is_builtin,
    min_input_size,
)

# Shapes do not affect parameter counts, so most structural tests use a small input to stay fast.
SMALL = (64, 64, 3)


def conv_params(cin: int, cout: int, k: int = 1) -> int:
    return k * k * cin * cout + cout


def layer(model: keras.Model, name: str) -> keras.layers.Layer:
    return model.get_layer(name)


def inbound_names(model: keras.Model, name: str) -> list[str]:
    """Names of the layers feeding ``name``, in input order."""
    node = layer(model, name)._inbound_nodes[0]
    return [t._keras_history.operation.name for t in node.input_tensors]


@pytest.mark.parametrize(
    ("name", "params"),
    [("squeezenet1_0", 1_248_424), ("squeezenet1_1", 1_235_496)],
)
def test_param_counts_match_paper_and_torchvision(name: str, params: int) -> None:
    model = build_squeezenet(config_for_builtin(name, input_shape=(224, 224, 3), classes=1000))
    assert model.count_params() == params


@pytest.mark.parametrize(("version", "stem"), [("1.0", 96), ("1.1", 64)])
def test_bypass_param_counts(version: str, stem: int) -> None:
    plain = build_squeezenet(SqueezeNetConfig(version=version, input_shape=SMALL))
    simple = build_squeezenet(SqueezeNetConfig(version=version, input_shape=SMALL, bypass="simple"))
    complex_ = build_squeezenet(
        SqueezeNetConfig(version=version, input_shape=SMALL, bypass="complex")
    )
    assert simple.count_params() == plain.count_params()
    # 1x1 shortcuts around fire2 (stem -> 128), fire4 (128 -> 256), fire6 (256 -> 384) and
    # fire8 (384 -> 512), each with a bias.
    extra = (
        conv_params(stem, 128)
        + conv_params(128, 256)
        + conv_params(256, 384)
        + conv_params(384, 512)
    )
    assert complex_.count_params() == plain.count_params() + extra


def test_v11_spatial_sizes_match_pretrained_weights() -> None:
    model = build_squeezenet(config_for_builtin("squeezenet1_1"))
    sizes = [layer(model, n).output.shape[1:3] for n in ("conv1", "pool1", "pool3", "pool5")]
    assert [tuple(s) for s in sizes] == [(111, 111), (55, 55), (27, 27), (13, 13)]
    assert tuple(model.output.shape) == (None, 1000)


def test_v10_layout() -> None:
    model = build_squeezenet(config_for_builtin("squeezenet1_0"))
    conv1 = layer(model, "conv1")
    assert (conv1.filters, conv1.kernel_size, conv1.strides) == (96, (7, 7), (2, 2))
    assert tuple(conv1.output.shape[1:3]) == (109, 109)
    assert inbound_names(model, "pool4") == ["fire4_concat"]
    assert inbound_names(model, "pool8") == ["fire8_concat"]
    assert inbound_names(model, "fire9_squeeze1x1") == ["pool8"]


@pytest.mark.parametrize("name", builtin_names())
def test_structure_of_every_builtin(name: str) -> None:
    model = build_squeezenet(config_for_builtin(name, input_shape=SMALL, classes=7))
    assert not any(isinstance(lyr, keras.layers.Dense) for lyr in model.layers)
    convs = [lyr for lyr in model.layers if isinstance(lyr, keras.layers.Conv2D)]
    assert all(c.activation is keras.activations.relu for c in convs)

    for i in range(2, 10):
        assert inbound_names(model, f"fire{i}_concat") == [
            f"fire{i}_expand1x1",
            f"fire{i}_expand3x3",
        ]
        assert layer(model, f"fire{i}_expand3x3").padding == "same"
        assert layer(model, f"fire{i}_expand1x1").padding == "valid"

    fire9_out = "fire9_concat" if name.endswith(("1_0", "1_1")) else "fire9_bypass"
    assert isinstance(layer(model, "drop9"), keras.layers.Dropout)
    assert inbound_names(model, "drop9") == [fire9_out]
    assert inbound_names(model, "conv10") == ["drop9"]
    assert model.layers[-1].name == "softmax"
    assert tuple(model.output.shape) == (None, 7)


def test_bypass_wiring() -> None:
    model = build_squeezenet(config_for_builtin("squeezenet1_1_complex_bypass", input_shape=SMALL))
    assert inbound_names(model, "fire3_bypass") == ["fire2_bypass", "fire3_concat"]
    assert inbound_names(model, "fire2_bypass") == ["fire2_bypass_conv", "fire2_concat"]
    assert inbound_names(model, "fire2_bypass_conv") == ["pool1"]
    assert layer(model, "fire8_bypass_conv").filters == 512

    simple = build_squeezenet(config_for_builtin("squeezenet1_0_simple_bypass", input_shape=SMALL))
    names = {lyr.name for lyr in simple.layers}
    assert {"fire3_bypass", "fire5_bypass", "fire7_bypass", "fire9_bypass"} <= names
    assert not any("bypass_conv" in n or n == "fire2_bypass" for n in names)


@pytest.mark.parametrize(("shape", "classes"), [((96, 96, 3), 10), ((64, 48, 1), 3)])
def test_configurable_input_and_classes(shape: tuple[int, int, int], classes: int) -> None:
    model = build_squeezenet(
        config_for_builtin("squeezenet1_1", input_shape=shape, classes=classes)
    )
    x = np.random.default_rng(0).random((2, *shape), dtype=np.float32)
    y = model.predict(x, verbose=0)
    assert y.shape == (2, classes)
    np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-5)
    assert layer(model, "conv1").kernel.shape[2] == shape[2]


def test_softmax_off_outputs_pooled_logits() -> None:
    model = build_squeezenet(SqueezeNetConfig(input_shape=SMALL, classes=4, softmax=False))
    assert model.layers[-1].name == "pool10"
    assert tuple(model.output.shape) == (None, 4)


def test_default_fire_sizes() -> None:
    specs = [(s.squeeze, s.expand1x1, s.expand3x3) for s in fire_specs(SqueezeNetConfig())]
    assert (
        specs
        == [(16, 64, 64)] * 2 + [(32, 128, 128)] * 2 + [(48, 192, 192)] * 2 + [(64, 256, 256)] * 2
    )


def test_meta_parameters_change_fire_sizes() -> None:
    config = SqueezeNetConfig(
        input_shape=SMALL, base_e=64, incr_e=32, pct_3x3=0.25, freq=1, sr=0.25
    )
    model = build_squeezenet(config)
    for i in range(8):
        e = 64 + 32 * i  # freq=1: every module grows
        fire = f"fire{i + 2}"
        assert layer(model, f"{fire}_squeeze1x1").filters == e // 4
        assert layer(model, f"{fire}_expand3x3").filters == e // 4
        assert layer(model, f"{fire}_expand1x1").filters == e - e // 4
        assert layer(model, f"{fire}_concat").output.shape[-1] == e


def test_meta_parameter_rounding_and_freq() -> None:
    # e = 10 + 6 * floor(i / 3): 10, 10, 10, 16, 16, 16, 22, 22
    # e3 = round_half_up(0.25 e): 2.5 -> 3, 4, 5.5 -> 6; squeeze = max(1, round(0.125 e)): 1, 2, 3
    config = SqueezeNetConfig(input_shape=SMALL, base_e=10, incr_e=6, pct_3x3=0.25, freq=3)
    got = [(s.squeeze, s.expand1x1, s.expand3x3) for s in fire_specs(config)]
    assert got == [(1, 7, 3)] * 3 + [(2, 12, 4)] * 3 + [(3, 16, 6)] * 2
    model = build_squeezenet(config)
    assert layer(model, "fire9_expand3x3").filters == 6
    assert layer(model, "fire5_squeeze1x1").filters == 2


def test_pct_3x3_of_one_omits_the_1x1_branch() -> None:
    model = build_squeezenet(SqueezeNetConfig(input_shape=SMALL, pct_3x3=1.0))
    names = {lyr.name for lyr in model.layers}
    assert "fire2_expand1x1" not in names and "fire2_concat" not in names
    assert layer(model, "fire2_expand3x3").filters == 128
    assert inbound_names(model, "fire3_squeeze1x1") == ["fire2_expand3x3"]


def test_same_builtin_builds_identical_weights() -> None:
    a = build_squeezenet(config_for_builtin("squeezenet1_1_complex_bypass", input_shape=SMALL))
    keras.utils.set_random_seed(12345)  # global RNG state must not leak into the weights
    b = build_squeezenet(config_for_builtin("squeezenet1_1_complex_bypass", input_shape=SMALL))
    wa, wb = a.get_weights(), b.get_weights()
    assert len(wa) == len(wb)
    for x, y in zip(wa, wb, strict=True):
        np.testing.assert_array_equal(x, y)
    # Layers must not share a seed, or every same-shaped kernel would be identical.
    kernels = [lyr.kernel.numpy() for lyr in a.layers if isinstance(lyr, keras.layers.Conv2D)]
    assert not np.array_equal(kernels[2], kernels[6])  # fire2/fire3 expand1x1, same shape
    c = build_squeezenet(
        config_for_builtin("squeezenet1_1_complex_bypass", input_shape=SMALL, seed=1)
    )
    assert not np.array_equal(a.get_weights()[0], c.get_weights()[0])


def test_registry() -> None:
    assert builtin_names() == [
        "squeezenet1_0",
        "squeezenet1_1",
        "squeezenet1_0_simple_bypass",
        "squeezenet1_0_complex_bypass",
        "squeezenet1_1_simple_bypass",
        "squeezenet1_1_complex_bypass",
    ]
    assert is_builtin("squeezenet1_1") and not is_builtin("resnet50")
    config = config_for_builtin("squeezenet1_0_complex_bypass", classes=5)
    assert (config.version, config.bypass, config.classes) == ("1.0", "complex", 5)
    assert build_squeezenet(config_for_builtin("squeezenet1_1", input_shape=SMALL)).name == (
        "squeezenet1_1"
    )


def test_min_input_size() -> None:
    assert min_input_size("1.1") == 31
    assert min_input_size("1.0") == 35
    model = build_squeezenet(SqueezeNetConfig(version="1.0", input_shape=(35, 35, 3)))
    assert tuple(layer(model, "pool8").output.shape[1:3]) == (1, 1)


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"input_shape": (30, 64, 3)}, r"input 30x64 is too small .* at least 31x31"),
        ({"version": "1.0", "input_shape": (64, 34, 3)}, r"v1\.0.*at least 35x35"),
        ({"input_shape": (224, 224)}, r"\(height, width, channels\)"),
        ({"pct_3x3": 1.5}, r"pct_3x3 must be between 0 and 1"),
        ({"sr": 0.0}, r"sr \(squeeze ratio\) must be in \(0, 1\]"),
        ({"classes": 0}, r"classes must be a positive integer, got 0"),
        ({"freq": 2.0}, r"freq must be a positive integer"),
        ({"dropout": 1.0}, r"dropout must be in \[0, 1\)"),
        ({"version": "2.0"}, r"version '2\.0' is not supported; use one of 1\.0, 1\.1"),
        ({"bypass": "dense"}, r"bypass 'dense' is not supported"),
        (
            {"bypass": "simple", "freq": 1},
            r"simple bypass around fire3 needs equal input and output channels .* 128 in and "
            r"256 out; use an even freq",
        ),
    ],
)
def test_config_errors(kwargs: dict, pattern: str) -> None:
    with pytest.raises(UsageError, match=pattern):
        SqueezeNetConfig(**kwargs)


def test_builtin_errors() -> None:
    with pytest.raises(
        UsageError, match=r"unknown model 'squeezenet2'.*squeezenet1_1_simple_bypass"
    ):
        config_for_builtin("squeezenet2")
    with pytest.raises(
        UsageError, match=r"bypass cannot be overridden for builtin 'squeezenet1_1'"
    ):
        config_for_builtin("squeezenet1_1", bypass="simple")
    with pytest.raises(UsageError, match=r"unknown option 'clases'.*classes"):
        config_for_builtin("squeezenet1_1", clases=10)
